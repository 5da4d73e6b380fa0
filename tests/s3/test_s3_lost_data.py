"""What a client sees when a version cannot be read, against a real server on real disks:

- shards missing or corrupt on too many ONLINE disks: the data is lost. 410 XS3freeDataLost
  (no SDK retries it: awscli, in its default retry mode, gives up at once), the message names
  the object, its version, the good shards found and the number needed; logged once per
  version however often it is read.
- shards on disks taken away (directories renamed): 503 XS3freeDataUnavailable with
  Retry-After, which every SDK retries; the object reads back exact once the disks return.
- a block that fails after the status line went out: the connection is cut short, never
  finished with other bytes.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from s3free.admin.client import AdminClient
from s3free.format import HEADER_SIZE, RECORD_OVERHEAD
from tests.s3.raw import (
    connect,
    disks,
    error_fields,
    object_path,
    raw_head,
    raw_request,
    sign,
    version_dirs,
    wait_until,
)
from tests.s3.test_interop_awscli import AWS, Aws
from tests.support.server import make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.1", "S3FREE_ACCESS_LOG": "true"}
BUCKET = "bkt"
MIB = 1024 * 1024
BIG = random.Random(1).randbytes(3 * MIB + 5)  # four 1 MiB blocks over RS(2,2)
FULL_RECORD = RECORD_OVERHEAD + MIB // 2


@pytest.fixture
def srv(tmp_path):
    server = start_server(tmp_path / "data", env=FAST)
    yield server
    server.stop()


@pytest.fixture
def s3c(srv):
    client = make_client(srv)
    client.create_bucket(Bucket=BUCKET)
    return client


def part_files(srv, key: str) -> list[Path]:
    """The key's part file on each disk (large objects: one part file per version dir)."""
    files = [p for d in version_dirs(srv, BUCKET, key) for p in d.glob("part.*")]
    assert len(files) == 4, files
    return sorted(files)


def disk_states(srv) -> list[str]:
    client = AdminClient(srv.endpoint, srv.access_key, srv.secret_key)
    return [d["state"] for d in client.disk_status()["disks"]]


def lost_lines(srv, key: str) -> list[str]:
    return [line for line in srv.log.splitlines() if f"/{BUCKET}/{key}: data lost" in line]


def test_lost_shards_answer_a_final_error_naming_the_object(srv, s3c, tmp_path):
    small = b"small object " * 500  # inline: records in the version's one file per disk
    s3c.put_object(Bucket=BUCKET, Key="big", Body=BIG)
    s3c.put_object(Bucket=BUCKET, Key="small", Body=small)
    for path in part_files(srv, "big")[:3]:
        path.unlink()  # three of four shards gone on online disks: one good, two needed
    inline = [p for p in version_dirs(srv, BUCKET, "small") if p.is_file()]
    for path in sorted(inline)[:3]:
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF  # a payload byte of the one record: CRC fails
        path.write_bytes(bytes(data))

    for key in ("big", "small"):
        with pytest.raises(ClientError) as info:
            s3c.get_object(Bucket=BUCKET, Key=key)
        error = info.value.response["Error"]
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410, error
        assert error["Code"] == "XS3freeDataLost", error
        assert f"{BUCKET}/{key} (version" in error["Message"], error
        assert "1 good shards of the 2 needed" in error["Message"], error
        assert "lost" in error["Message"], error
        reply = raw_request(srv, "GET", object_path(BUCKET, key))
        assert reply.status == 410 and reply.headers["cache-control"] == "no-store", reply
        assert "retry-after" not in reply.headers
        assert error_fields(reply.body)["Code"] == "XS3freeDataLost"

    if AWS is not None:  # awscli in its default (legacy, 5 attempts) retry mode
        aws = Aws(srv, tmp_path / "awshome")
        del aws.env["AWS_RETRY_MODE"], aws.env["AWS_MAX_ATTEMPTS"]
        gets_before = srv.log.count(f"GET /{BUCKET}/big ")
        proc = aws.run("s3", "cp", f"s3://{BUCKET}/big", str(tmp_path / "out"), check=False)
        stderr = proc.stderr.decode()
        assert proc.returncode != 0, stderr
        assert "XS3freeDataLost" in stderr and f"{BUCKET}/big" in stderr, stderr
        assert "Max Retries" not in stderr, stderr
        wait_until(lambda: srv.log.count(f"GET /{BUCKET}/big ") > gets_before, what="access log")
        assert srv.log.count(f"GET /{BUCKET}/big ") == gets_before + 1, "awscli retried"

    # Logged once per version, not once per request (four GETs of each by now).
    for key in ("big", "small"):
        wait_until(lambda key=key: lost_lines(srv, key), what=f"the log line for {key}")
        lines = lost_lines(srv, key)
        assert len(lines) == 1, lines
        assert "ERROR" in lines[0] and "1 good shards of the 2 needed" in lines[0], lines
    assert s3c.head_object(Bucket=BUCKET, Key="big")["ContentLength"] == len(BIG)


def test_offline_disks_answer_503_with_retry_after(srv, s3c):
    s3c.put_object(Bucket=BUCKET, Key="big", Body=BIG)
    roots = disks(srv)
    away = [root.with_name(root.name + ".away") for root in roots[1:]]
    for root, moved in zip(roots[1:], away, strict=True):
        os.rename(root, moved)  # three disks taken away: one shard left, two needed
    wait_until(lambda: disk_states(srv)[1:] == ["offline"] * 3, timeout=30, what="disks offline")
    reply = raw_request(srv, "GET", object_path(BUCKET, "big"))
    assert reply.status == 503, reply
    assert reply.headers["retry-after"].isdigit(), reply.headers
    fields = error_fields(reply.body)
    assert fields["Code"] == "XS3freeDataUnavailable", fields
    assert f"{BUCKET}/big (version" in fields["Message"], fields
    assert "offline disks" in fields["Message"] and "come back" in fields["Message"], fields
    with pytest.raises(ClientError) as info:
        s3c.get_object(Bucket=BUCKET, Key="big")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

    for root, moved in zip(roots[1:], away, strict=True):
        os.rename(moved, root)
    wait_until(lambda: disk_states(srv) == ["online"] * 4, timeout=30, what="disks online")
    assert s3c.get_object(Bucket=BUCKET, Key="big")["Body"].read() == BIG


def test_a_block_lost_after_the_headers_went_out_cuts_the_connection(srv, s3c):
    """Block 0 is fine, block 2 is corrupt on three disks: the 200 and the first bytes are
    already sent when block 2 fails, so the server aborts the connection. The client gets
    fewer bytes than Content-Length and a closed socket, never a complete body."""
    s3c.put_object(Bucket=BUCKET, Key="big", Body=BIG)
    for path in part_files(srv, "big")[:3]:
        with open(path, "r+b") as f:
            f.seek(2 * FULL_RECORD + HEADER_SIZE + 1000)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x01]))
    path = object_path(BUCKET, "big")
    with connect(srv) as sock:
        sock.sendall(raw_head("GET", path, sign(srv, "GET", path)))
        data, closed = b"", False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(1 << 20)
            except ConnectionResetError:
                closed = True
                break
            if not piece:
                closed = True
                break
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert f"content-length: {len(BIG)}".encode() in head.lower(), head
    assert closed, "the server kept the connection open"
    assert 0 < len(body) < len(BIG), len(body)
    assert body == BIG[: len(body)]  # what did go out is right
    assert b"HTTP/1.1" not in body  # no second response inside the body
    wait_until(lambda: "after the response headers were sent" in srv.log, what="log line")
