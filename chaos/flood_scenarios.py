"""connection-flood: a real server with a low file descriptor limit (256) is hit, while a
client overwrites the dataset, by more idle connections than it has descriptors, by slowloris
connections (a header byte at a time) and by downloads that never read. The writes must all
succeed (with the SDK's default retries, as a real client has them: at the cap the idle
connection a client is about to reuse may be closed), every acknowledged object must read back
byte for byte, no disk may go offline, the hostile connections must be closed by the header
and stall timeouts, and the log must hold no traceback (issue 12).
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from chaos.data import Acks, Profile
from chaos.proc import ACCESS_KEY, SECRET_KEY, start
from chaos.process_scenarios import BUCKET, Writer, server_dataset
from chaos.report import Row, finish
from chaos.verify import verify_s3

FD_LIMIT = 256
IDLE = 400
SLOWLORIS = 10
STALLED = 4
SETTINGS = {
    "S3FREE_HEADER_TIMEOUT_S": "1",
    "S3FREE_IDLE_TIMEOUT_S": "30",
    "S3FREE_STALL_TIMEOUT_S": "2",
    "S3FREE_DISK_PROBE_S": "0.2",
    "S3FREE_SCRUB_INTERVAL_S": "0",
    "S3FREE_LOG_LEVEL": "info",
}


def _client(endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=120),
    )


def _closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return any(not sock.recv(65536) for _ in range(10_000))
    except BlockingIOError:
        return False
    except OSError:
        return True


def connection_flood(profile: Profile, seed: int, workdir: Path | None = None) -> Row:
    row = Row("connection-flood")
    root = Path(tempfile.mkdtemp(prefix="chaos-flood-", dir=workdir))
    started = time.monotonic()
    acks = Acks()
    ec = f"{profile.k}+{profile.m}"
    server = start(root, profile.disks, ec, profile.block_size, env=SETTINGS, fd_limit=FD_LIMIT)
    hostile: list[socket.socket] = []
    try:
        client = _client(server.endpoint)
        client.create_bucket(Bucket=BUCKET)
        first = Writer(server, acks, server_dataset(profile, seed, 1))
        first.client = client
        first.run()
        big = next(v for v in server_dataset(profile, seed, 1) if v.key.startswith("big/"))
        url = client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": big.key})
        target = url[len(server.endpoint) :]
        parts = urlsplit(server.endpoint)
        where = (parts.hostname, parts.port)
        writer = Writer(server, acks, server_dataset(profile, seed, 2))
        writer.client = _client(server.endpoint)
        writer.start()
        stalled, slow = [], []
        for _ in range(STALLED):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(where)
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: {where[0]}\r\n\r\n".encode())
            stalled.append(s)
        for _ in range(SLOWLORIS):
            s = socket.create_connection(where, timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        for _ in range(IDLE):
            with contextlib.suppress(OSError):
                hostile.append(socket.create_connection(where, timeout=10))
        hostile += stalled + slow
        row.faults = len(hostile)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_closed(s) for s in stalled + slow):
            for s in slow:  # a byte now and then: never a whole header
                with contextlib.suppress(OSError):
                    s.send(b"a")
            time.sleep(0.2)
        left = sum(not _closed(s) for s in stalled + slow)
        if left:
            row.problems.append(f"{left} slowloris or stalled connections still open after 60 s")
        row.detected = sum(_closed(s) for s in hostile)
        writer.join(300)
        if writer.is_alive() or writer.error:
            row.problems.append(f"a write failed under the flood: {writer.error or 'hung'}")
        verdict = verify_s3(client, BUCKET, acks)
        row.problems += verdict.problems
        row.bytes_verified += verdict.bytes_verified
        log = "".join(server.output)
        for bad in (") offline: ", "Traceback", "out of system resource"):
            if bad in log:
                at = log.index(bad)
                row.problems.append(
                    f"the server log says {bad.strip()!r}: {log[max(0, at - 300) : at + 1500]}"
                )
        row.notes.append(f"{row.detected} of {row.faults} hostile connections closed by the server")
    finally:
        for s in hostile:
            s.close()
        server.stop()
        row.fault_kinds = f"{IDLE} idle, {SLOWLORIS} slowloris, {STALLED} stalled GETs"
        finish(row, root, started)
    return row
