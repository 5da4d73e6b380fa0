"""Raw S3 requests for tests: botocore-signed or anonymous requests over http.client and plain
sockets, error parsing, and the checks that a failed request left nothing behind."""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from s3free.format.ids import object_id
from s3free.storage.layout import object_dir
from tests.support.server import Server

REGION = "us-east-1"
UNSIGNED = "UNSIGNED-PAYLOAD"


# ---------------------------------------------------------------------------------------------
# Raw requests


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Signer(S3SigV4Auth):
    """botocore's S3 SigV4 signer, with the x-amz-content-sha256 value chosen by the caller
    (a wrong hash, UNSIGNED-PAYLOAD or a STREAMING-* literal)."""

    def __init__(self, credentials: Credentials, payload: str):
        super().__init__(credentials, "s3", REGION)
        self._payload = payload

    def payload(self, request):
        return self._payload


def object_path(bucket: str, key: str = "") -> str:
    """The request path for bucket[/key], URI-encoded as SDKs send it."""
    return f"/{bucket}/{quote(key, safe='/~')}" if key else f"/{bucket}"


def sign(
    server: Server,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    payload: str | None = None,
    secret_key: str | None = None,
) -> dict[str, str]:
    """The headers (Host, X-Amz-Date, X-Amz-Content-SHA256, Authorization and `headers`) of a
    SigV4-signed request. `payload`: the x-amz-content-sha256 to sign (default: the body's
    real SHA-256)."""
    url = server.endpoint + path + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(server.access_key, secret_key or server.secret_key)
    _Signer(creds, payload if payload is not None else sha256_hex(body)).add_auth(request)
    out = dict(request.headers.items())
    out["Host"] = urlsplit(server.endpoint).netloc
    return out


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lowercased names
    body: bytes

    @property
    def code(self) -> str | None:
        return error_fields(self.body).get("Code") if self.body else None


def error_fields(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    return {child.tag: child.text or "" for child in root}


def raw_request(
    server: Server,
    method: str,
    path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    payload: str | None = None,
    signed: bool = True,
    secret_key: str | None = None,
    timeout: float = 20,
) -> Reply:
    """One request over plain HTTP with http.client; signed (with `secret_key` if given)
    unless `signed` is False."""
    assert server.endpoint.startswith("http://")
    if signed:
        all_headers = sign(
            server,
            method,
            path,
            query=query,
            headers=headers,
            body=body,
            payload=payload,
            secret_key=secret_key,
        )
    else:
        all_headers = {"Host": urlsplit(server.endpoint).netloc, **(headers or {})}
    all_headers.setdefault("Content-Length", str(len(body)))
    parts = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path + (f"?{query}" if query else ""), body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def raw_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """The request line and headers of a request, for sending on a raw socket."""
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(server: Server) -> socket.socket:
    parts = urlsplit(server.endpoint)
    return socket.create_connection((parts.hostname, parts.port), timeout=20)


def read_reply(sock: socket.socket, timeout: float = 20) -> Reply | None:
    """Read one HTTP response from a raw socket (None if the server closed without one)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not piece:
            break
        data += piece
    if b"\r\n\r\n" not in data:
        return None
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length and time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not piece:
            break
        rest += piece
    return Reply(int(status_line.split()[1]), headers, rest[:length])


# ---------------------------------------------------------------------------------------------
# What a request may leave behind


def disks(server: Server) -> list[Path]:
    found = sorted(server.data_dir.glob("disk*"))
    assert found, f"no disks under {server.data_dir}"
    return found


def temp_files(server: Server) -> list[Path]:
    return [p for d in disks(server) for p in (d / ".s3free.tmp").glob("*")]


def version_dirs(server: Server, bucket: str, key: str) -> list[Path]:
    """Every version of the key on every disk: its directories, and its inline files."""
    oid = object_id(bucket, key).hex()
    rel = object_dir(oid)
    return [
        *(v for d in disks(server) for v in (d / rel).glob("*")),
        *(f for d in disks(server) for f in (d / rel).parent.glob(f"{oid}.*.inline")),
    ]


def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def assert_nothing_left(server: Server, client, bucket: str, key: str | None) -> None:
    """No temp file on any disk (waited for, bounded), and when a key is given: no object at
    it (HEAD 404, not listed) and no version directory for it on any disk."""
    wait_until(lambda: not temp_files(server), what=f"empty temp dirs: {temp_files(server)}")
    if key is None:
        return
    with pytest.raises(ClientError) as info:
        client.head_object(Bucket=bucket, Key=key)
    assert info.value.response["Error"]["Code"] == "404"
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert key not in [o["Key"] for o in listed]
    wait_until(
        lambda: not version_dirs(server, bucket, key),
        what=f"no version dir: {version_dirs(server, bucket, key)}",
    )


def client_error(info: pytest.ExceptionInfo) -> tuple[str, int]:
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]
