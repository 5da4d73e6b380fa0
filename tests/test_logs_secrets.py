"""No secret reaches the server's output: a real server at log level debug is driven with
signed, presigned (SigV4 and SigV2), badly signed and admin requests, and everything it wrote
is searched for every secret, signature and credential the clients used."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import boto3
import pytest
from botocore.config import Config as BotoConfig

from tests.s3.users_support import admin
from tests.support.server import start_server

USER_SECRET = "user-secret-Zq8v3K1mW9xR2"
METRICS_TOKEN = "metrics-token-Hh7Jk2Lm4Np6"
SIGNATURE = re.compile(r"Signature=([0-9A-Za-z+/=%]+)")
CREDENTIAL = re.compile(r"Credential=([^,\s]+)")


def _client(srv, access: str, secret: str, seen: list[str], **config):
    client = boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )

    def keep(request, **_) -> None:
        auth = request.headers["Authorization"]
        seen.append(auth.decode() if isinstance(auth, bytes) else auth)

    client.meta.events.register("before-send", keep)
    return client


def _tamper(url: str) -> str:
    """The URL with the first character of its signature changed."""
    parts = urllib.parse.urlsplit(url)
    query = [
        (k, ("1" if v[0] == "0" else "0") + v[1:]) if k.endswith("Signature") else (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query)
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _fetch(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_secret_in_server_output(tmp_path) -> None:
    srv = start_server(
        tmp_path / "srv",
        env={
            "S3FREE_LOG_LEVEL": "debug",
            "S3FREE_ACCESS_LOG": "true",
            "S3FREE_METRICS_TOKEN": METRICS_TOKEN,
            "NO_PROXY": "127.0.0.1,localhost",
        },
    )
    sent: list[str] = []  # every Authorization header a client sent
    urls: list[str] = []  # every presigned URL used
    try:
        root = _client(srv, srv.access_key, srv.secret_key, sent)
        root.create_bucket(Bucket="secrets")
        root.put_object(Bucket="secrets", Key="a/b c", Body=b"payload" * 1000)
        assert root.get_object(Bucket="secrets", Key="a/b c")["Body"].read()
        # SigV2 header signing ("Authorization: AWS AK:signature").
        v2 = _client(srv, srv.access_key, srv.secret_key, sent, signature_version="s3")
        assert v2.head_object(Bucket="secrets", Key="a/b c")["ContentLength"] == 7000

        for version in ("s3v4", "s3"):
            signer = _client(srv, srv.access_key, srv.secret_key, [], signature_version=version)
            url = signer.generate_presigned_url(
                "get_object", Params={"Bucket": "secrets", "Key": "a/b c"}, ExpiresIn=300
            )
            urls.append(url)
            assert _fetch(url) == 200
            # The same URL with its signature altered: refused, and still nothing leaks.
            bad = _tamper(url)
            urls.append(bad)
            assert _fetch(bad) == 403

        # A request signed with the wrong secret key.
        wrong = _client(srv, srv.access_key, "not-the-secret-key-123456", sent)
        with pytest.raises(wrong.exceptions.ClientError):
            wrong.list_buckets()

        # Admin: add a user with a secret key; the user then signs a request with it.
        status, doc = admin(
            srv,
            "PUT",
            "/users/leaky",
            {"access_key": "LEAKYUSERKEY0001", "secret_key": USER_SECRET},
        )
        assert status == 200, doc
        user = _client(srv, "LEAKYUSERKEY0001", USER_SECRET, sent)
        user.list_buckets()
        _fetch(srv.endpoint + "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    finally:
        srv.stop()
    output = srv.log

    secrets = {srv.secret_key, USER_SECRET, METRICS_TOKEN, "not-the-secret-key-123456"}
    for header in sent:
        secrets.add(header)
        secrets.update(SIGNATURE.findall(header))
        secrets.update(CREDENTIAL.findall(header))
        if header.startswith("AWS "):  # SigV2: AWS ACCESS:SIGNATURE
            secrets.add(header.rsplit(":", 1)[1])
    for url in urls:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        for name in ("X-Amz-Signature", "X-Amz-Credential", "Signature"):
            for value in query.get(name, []):
                secrets.update({value, urllib.parse.quote(value, safe="")})
    assert len(sent) >= 6 and len(urls) == 4
    leaked = sorted(s for s in secrets if s in output)
    assert not leaked, f"secrets in the server output: {leaked}\n{output}"
    assert srv.access_key not in output  # the access log names users, not access keys

    # The requests were logged (so the search above looked at something): the presigned GETs
    # with their path and without their signature, the refused ones with 403.
    access = [line for line in output.splitlines() if " s3free.access " in line]
    presigned = [line for line in access if "GET /secrets/a/b%20c" in line]
    assert sum(" 200 " in line for line in presigned) >= 3
    assert sum(" 403 " in line for line in presigned) == 2
    assert any("PUT /_s3free/admin/v1/users/leaky 200" in line for line in access)
    assert json.dumps(USER_SECRET) not in output
