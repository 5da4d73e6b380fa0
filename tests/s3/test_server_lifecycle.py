"""The server process: generated credentials, the ready line, clean shutdown mid-upload."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import signal
import stat
import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.server import start_server


def test_without_credentials_it_generates_a_pair_once_and_never_runs_open(tmp_path):
    srv = start_server(tmp_path, env={"S3FREE_ACCESS_KEY": "", "S3FREE_SECRET_KEY": ""})
    try:
        found = re.search(r"AWS_ACCESS_KEY_ID=(\S+)\s+AWS_SECRET_ACCESS_KEY=(\S+)", srv.log)
        assert found, srv.log
        access, secret = found.groups()
        stored = tmp_path / "meta.credentials.json"  # beside the index, with the store
        assert f"export S3FREE_ACCESS_KEY={access} S3FREE_SECRET_KEY={secret}" in srv.log
        assert json.loads(stored.read_text()) == {"access_key": access, "secret_key": secret}
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert re.search(
            r"s3free ready: http://127\.0\.0\.1:\d+ \(4 disks, 4 online, RS\(2,2\)", srv.log
        )
        # anonymous: denied
        conn = http.client.HTTPConnection(*urlsplit(srv.endpoint).netloc.split(":"))
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 403 and b"AccessDenied" in response.read()
        client = boto3.client(
            "s3", endpoint_url=srv.endpoint, region_name="us-east-1",
            aws_access_key_id=access, aws_secret_access_key=secret,
        )  # fmt: skip
        client.create_bucket(Bucket="mine")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["mine"]
        wrong = boto3.client(
            "s3", endpoint_url=srv.endpoint, region_name="us-east-1",
            aws_access_key_id=access, aws_secret_access_key=secret + "x",
        )  # fmt: skip
        with pytest.raises(ClientError) as err:
            wrong.list_buckets()
        assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    finally:
        assert srv.stop() == 0
    again = start_server(tmp_path, env={"S3FREE_ACCESS_KEY": "", "S3FREE_SECRET_KEY": ""})
    try:
        assert "AWS_SECRET_ACCESS_KEY" not in again.log  # the stored pair is reused, not shown
        client = boto3.client(
            "s3", endpoint_url=again.endpoint, region_name="us-east-1",
            aws_access_key_id=access, aws_secret_access_key=secret,
        )  # fmt: skip
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["mine"]
    finally:
        again.stop()


def _signed_put(srv, bucket: str, key: str, body: bytes) -> tuple[http.client.HTTPConnection, dict]:
    """Headers of a signed PUT of body, sent; the caller sends the body itself, slowly."""
    size = len(body)
    url = f"{srv.endpoint}/{bucket}/{key}"
    request = AWSRequest(method="PUT", url=url, data=body, headers={"Content-Length": str(size)})
    S3SigV4Auth(Credentials(srv.access_key, srv.secret_key), "s3", "us-east-1").add_auth(request)
    host, port = urlsplit(srv.endpoint).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.putrequest("PUT", f"/{bucket}/{key}", skip_accept_encoding=True)
    for name, value in request.headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn, dict(request.headers)


def test_sigterm_lets_an_upload_in_flight_finish(tmp_path):
    srv = start_server(tmp_path)
    client = boto3.client(
        "s3", endpoint_url=srv.endpoint, region_name="us-east-1",
        aws_access_key_id=srv.access_key, aws_secret_access_key=srv.secret_key,
    )  # fmt: skip
    client.create_bucket(Bucket="bkt")
    data = os.urandom(3 * 1024 * 1024)
    try:
        conn, _ = _signed_put(srv, "bkt", "in-flight", data)
        conn.send(data[: len(data) // 2])
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        conn.send(data[len(data) // 2 :])
        response = conn.getresponse()
        assert response.status == 200, response.read()
        assert response.getheader("ETag") == f'"{hashlib.md5(data).hexdigest()}"'
        srv.proc.wait(60)
        assert srv.proc.returncode == 0
        assert "s3free: stopped" in srv.log
    finally:
        srv.stop()
    again = start_server(tmp_path)
    try:
        client = boto3.client(
            "s3", endpoint_url=again.endpoint, region_name="us-east-1",
            aws_access_key_id=again.access_key, aws_secret_access_key=again.secret_key,
        )  # fmt: skip
        assert client.get_object(Bucket="bkt", Key="in-flight")["Body"].read() == data
        assert not [
            p for i in range(1, 5) for p in (tmp_path / f"disk{i}" / ".s3free.tmp").glob("*")
        ]
    finally:
        again.stop()
