"""Users for tests: clients signed with a user's keys, anonymous clients, admin API calls."""

from __future__ import annotations

import http.client
import itertools
import json
import os
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import boto3
import botocore
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.support.server import Server

ADMIN = "/_s3free/admin/v1"
user_serial = itertools.count()

# -- helpers shared by the S3 test modules -----------------------------------------------------


def raw_request(
    srv: Server,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    creds: tuple[str, str] | str | None = "root",
    payload: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request, SigV4-signed with `creds` ("root", (access, secret), or None for an
    anonymous request). `path` is sent as given (percent-encode it yourself); query values
    are percent-encoded here. `payload`: the x-amz-content-sha256 to sign and send instead of
    the body's SHA-256 (e.g. UNSIGNED-PAYLOAD, or another body's hash)."""
    qs = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query or [])
    target = path + (f"?{qs}" if qs else "")
    send_headers = dict(headers or {})
    if creds is not None:
        access, secret = (srv.access_key, srv.secret_key) if creds == "root" else creds
        to_sign = AWSRequest(
            method=method, url=srv.endpoint + target, data=body, headers=send_headers
        )
        signer = S3SigV4Auth(Credentials(access, secret), "s3", "us-east-1")
        if payload is not None:
            signer.payload = lambda request: payload
        signer.add_auth(to_sign)
        send_headers = dict(to_sign.headers.items())
    parts = urlsplit(srv.endpoint)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=srv.ca_file)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=30, context=context)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, target, body=body, headers=send_headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error_code(body: bytes) -> str | None:
    """The <Code> of an S3 XML error body."""
    if not body:
        return None
    return ET.fromstring(body).findtext("Code")


def client_for(srv: Server, access: str, secret: str, **config):
    return boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        verify=srv.ca_file if srv.ca_file else None,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def anonymous_client(srv: Server):
    return boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        region_name="us-east-1",
        verify=srv.ca_file if srv.ca_file else None,
        config=Config(
            signature_version=botocore.UNSIGNED, retries={"max_attempts": 1, "mode": "standard"}
        ),
    )


def code_of(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def status_of(exc_info) -> int:
    return exc_info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def admin(srv: Server, method: str, path: str = "", body=None, creds="root", **kwargs):
    """(status, decoded JSON or None) of an admin API call."""
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    status, _, raw = raw_request(srv, method, ADMIN + path, body=data, creds=creds, **kwargs)
    return status, (json.loads(raw) if raw else None)


@dataclass
class MadeUser:
    name: str
    access_key: str
    secret_key: str
    client: object


def new_user(srv: Server) -> MadeUser:
    """Create a user through the admin API."""
    n = next(user_serial)
    name = f"user{os.getpid()}-{n}"
    access = f"AK{os.getpid()}X{n}"
    secret = f"secret-{os.urandom(12).hex()}"
    status, doc = admin(srv, "PUT", f"/users/{name}", {"access_key": access, "secret_key": secret})
    assert status == 200, doc
    return MadeUser(name, access, secret, client_for(srv, access, secret))
