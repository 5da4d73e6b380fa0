"""The Expect header against a real server: `100-continue` gets the interim response before
the client sends the body; any other value is ignored, as S3 does (aiohttp alone answers 417).

Raw requests signed with botocore (tests/s3/raw.py), sent with http.client or a plain socket.
"""

from __future__ import annotations

import time

import pytest

from tests.s3.raw import connect, object_path, raw_head, raw_request, read_reply, sign


@pytest.mark.parametrize("expect", ["200", "bogus", "100-continue-please"])
def test_unknown_expect_value_is_ignored_on_put_object(server, s3, bucket, expect):
    body = b"expect me" * 100
    reply = raw_request(
        server, "PUT", object_path(bucket, "k"), headers={"Expect": expect}, body=body
    )
    assert reply.status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body


def test_unknown_expect_value_is_ignored_on_create_bucket(server, s3, bucket_name):
    reply = raw_request(server, "PUT", object_path(bucket_name), headers={"Expect": "200"})
    assert reply.status == 200, reply
    s3.head_bucket(Bucket=bucket_name)
    s3.delete_bucket(Bucket=bucket_name)


def _read_interim(sock, timeout: float = 20) -> bytes:
    """The bytes of the server's interim response (up to its blank line), or what came
    before the deadline."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        piece = sock.recv(1)  # byte by byte: nothing of the final reply is consumed
        if not piece:
            break
        data += piece
    return data


@pytest.mark.parametrize("expect", ["100-continue", "100-Continue"])
def test_100_continue_answered_before_the_body(server, s3, bucket, expect):
    """The client waits for `100 Continue` before sending a big body, then gets its 200."""
    body = bytes(range(256)) * 8192  # 2 MiB
    path = object_path(bucket, "big")
    headers = sign(server, "PUT", path, headers={"Expect": expect}, body=body)
    headers["Content-Length"] = str(len(body))
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", path, headers))
        assert _read_interim(sock) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        reply = read_reply(sock)
    assert reply is not None and reply.status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body
