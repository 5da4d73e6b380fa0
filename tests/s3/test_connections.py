"""Connection limits against a real server process with a low file descriptor limit (issue 12,
items 1 and 14): an idle flood beyond the fd limit leaves GET, PUT and every disk working; a
slowloris is closed after the header timeout; a stalled download after the stall timeout (its
descriptors freed); EMFILE in the server never takes a disk offline and its accept errors are
logged at most once a minute; a client that goes away mid-GET costs one INFO line.

Small timeouts through the config keys keep each test to seconds; every wait is a bounded poll.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.s3.users_support import admin
from tests.support.obs import health, wait_for
from tests.support.server import make_client, start_server

FD_LIMIT = 256  # the server's RLIMIT_NOFILE, soft and hard: 4 disks give the floor cap, 8
FLOOD = 320  # more connections than the server has descriptors
BIG = 24 * 1024 * 1024


@pytest.fixture(scope="module", autouse=True)
def enough_descriptors_here():
    """This process holds the flood's sockets: its soft fd limit must be well above FLOOD."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if min(soft, want) < FLOOD + 200:
        pytest.skip(f"the fd limit here ({hard}) is too low to hold {FLOOD} sockets")
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(
        tmp_path_factory.mktemp("s3free-conns"),
        env={
            "S3FREE_HEADER_TIMEOUT_S": "1",
            "S3FREE_IDLE_TIMEOUT_S": "30",
            "S3FREE_STALL_TIMEOUT_S": "2",
            "S3FREE_DISK_PROBE_S": "0.2",
            "S3FREE_SCRUB_INTERVAL_S": "0",
        },
        fd_limit=FD_LIMIT,
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def s3(server):
    client = make_client(server)
    client.create_bucket(Bucket="conns")
    return client


def address(srv) -> tuple[str, int]:
    parts = urlsplit(srv.endpoint)
    return parts.hostname, parts.port


def open_fds(srv) -> int:
    return len(os.listdir(f"/proc/{srv.proc.pid}/fd"))


def rss_kib(srv) -> int:
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def held(srv) -> tuple[int, int]:
    """(sockets, shard files under objects/) the server process has open now."""
    sockets = shards = 0
    for name in os.listdir(f"/proc/{srv.proc.pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/{srv.proc.pid}/fd/{name}")
            sockets += target.startswith("socket:")
            shards += str(srv.data_dir) in target and "/objects/" in target
    return sockets, shards


def closed_by_server(sock: socket.socket) -> bool:
    """The server closed (or reset) this connection: EOF or an error on a non-blocking read
    (whatever the server said before closing is read and dropped)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # a socket with a timeout would wait for data first
    try:
        return any(not sock.recv(65536) for _ in range(10_000))  # read up to EOF
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def all_disks_online(srv) -> bool:
    status, doc = admin(srv, "GET", "/disks")
    assert status == 200, doc
    return all(d["state"] == "online" and d["hard_errors"] == 0 for d in doc["disks"])


def ready(srv) -> bool:
    status, body = health(srv.endpoint, "readyz")
    return status == 200 and body["disks"]["offline"] == 0


def test_an_idle_flood_beyond_the_fd_limit_leaves_get_put_and_disks_working(server, s3):
    s3.put_object(Bucket="conns", Key="before", Body=b"b" * 300_000)
    socks: list[socket.socket] = []
    try:
        for _ in range(FLOOD):
            socks.append(socket.create_connection(address(server), timeout=10))
        # the server holds at most its cap: the oldest idle ones are closed to make room
        wait_for(
            lambda: sum(closed_by_server(s) for s in socks) >= FLOOD - 20,
            60,
            "the server to close the idle flood beyond its cap",
        )
        body = b"p" * 300_000
        s3.put_object(Bucket="conns", Key="during", Body=body)
        assert s3.get_object(Bucket="conns", Key="during")["Body"].read() == body
        assert s3.get_object(Bucket="conns", Key="before")["Body"].read() == b"b" * 300_000
        assert ready(server)
        assert all_disks_online(server)
        assert open_fds(server) < FD_LIMIT - 64
    finally:
        for s in socks:
            s.close()
    assert "out of system resource" not in server.log
    assert "format.json unreadable" not in server.log
    assert "Traceback" not in server.log


def test_a_slowloris_is_closed_after_the_header_timeout(server):
    socks = [socket.create_connection(address(server), timeout=10) for _ in range(5)]
    try:
        for s in socks:
            s.sendall(b"GET /conns/x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        deadline = time.monotonic() + 30
        open_ones = list(socks)
        sent = 0
        while open_ones and time.monotonic() < deadline and sent < 600:
            for s in list(open_ones):  # one byte each, 5 a second: never a whole header
                if closed_by_server(s):
                    open_ones.remove(s)
                    continue
                with contextlib.suppress(OSError):
                    s.sendall(b"a")
            sent += 1
            time.sleep(0.2)
        assert not open_ones, f"{len(open_ones)} slowloris connections still open"
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: "request header not complete within 1 s" in server.log, 10, "the log line")


def test_a_stalled_download_is_closed_after_the_stall_timeout(server, s3):
    s3.put_object(Bucket="conns", Key="big", Body=os.urandom(BIG))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "conns", "Key": "big"})
    target = url[len(server.endpoint) :]
    sockets_before, _ = held(server)
    rss_before = rss_kib(server)
    socks = []
    try:
        for _ in range(6):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(address(server))
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            socks.append(s)  # and never read
        # held: a socket and shard files each
        wait_for(
            lambda: (h := held(server))[0] >= sockets_before + 6 and h[1] >= 6,
            20,
            "the downloads to start",
        )
        time.sleep(0.5)  # their buffers fill (what follows is not timed)
        rise = rss_kib(server) - rss_before
        assert rise > 6 * 1024, rise  # a MiB or more each: send buffer and read-ahead
        # cut after the stall timeout: their sockets and shard files are closed
        wait_for(
            lambda: (h := held(server))[0] <= sockets_before and h[1] == 0,
            60,
            "stalled downloads to be cut",
        )
        # ...and most of the memory they held is given back
        wait_for(lambda: rss_kib(server) - rss_before < rise / 2, 30, "RSS to go down")
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: "the client read nothing of the response" in server.log, 10, "the log")
    assert s3.get_object(Bucket="conns", Key="big")["ContentLength"] == BIG


def test_a_client_gone_mid_get_is_one_info_line(server, s3):
    s3.put_object(Bucket="conns", Key="gone", Body=os.urandom(BIG))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "conns", "Key": "gone"})
    target = url[len(server.endpoint) :]
    mark = len(server.log)
    for _ in range(3):
        s = socket.create_connection(address(server), timeout=10)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # a reset mid-body
    wait_for(
        lambda: server.log[mark:].count("the client closed the connection") >= 3,
        20,
        "one line per client gone",
    )
    # the read-ahead of each GET ends and its shard files are closed
    wait_for(lambda: held(server)[1] == 0, 30, "the shard files of the GETs to be closed")
    time.sleep(0.5)  # let anything that would follow those lines arrive (not an assertion)
    after = server.log[mark:]
    lines = [line for line in after.splitlines() if "/conns/gone" in line]
    assert len(lines) == 3 and all(" INFO " in line for line in lines), lines
    assert "Traceback" not in after and " ERROR " not in after


def test_emfile_in_the_server_is_never_a_disk_failure(tmp_path, s3):
    """connections_max set far above the fd limit (warned at start): the flood does run the
    server out of descriptors; every disk stays online, the probe says why, the accept errors
    are one line, and once the flood is gone GET and PUT work."""
    srv = start_server(
        tmp_path,
        env={
            "S3FREE_CONNECTIONS_MAX": "5000",
            "S3FREE_IDLE_TIMEOUT_S": "60",
            "S3FREE_DISK_PROBE_S": "0.1",
            "S3FREE_SCRUB_INTERVAL_S": "0",
        },
        fd_limit=FD_LIMIT,
    )
    try:
        assert "connections_max 5000 leaves fewer than" in srv.log
        client = make_client(srv)
        client.create_bucket(Bucket="emfile")
        client.put_object(Bucket="emfile", Key="k", Body=b"e" * 300_000)
        socks = []
        try:
            for _ in range(FLOOD):
                with contextlib.suppress(OSError):
                    socks.append(socket.create_connection(address(srv), timeout=10))
            wait_for(lambda: "Too many open files" in srv.log, 30, "the server to meet EMFILE")
            time.sleep(1.0)  # ten probes under EMFILE (what follows is not timed)
            assert ") offline: " not in srv.log  # not even for a moment
            wait_for(
                lambda: "out of file descriptors or memory, disk state unchanged" in srv.log,
                30,
                "a probe to meet EMFILE and say so",
            )
            assert all_disks_online_after_flood(srv, socks)
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: ready(srv), 30, "readyz")
        assert all_disks_online(srv)
        client.put_object(Bucket="emfile", Key="after", Body=b"a" * 300_000)
        assert client.get_object(Bucket="emfile", Key="k")["Body"].read() == b"e" * 300_000
        assert srv.log.count("accepting a connection failed") <= 2
        assert "format.json unreadable" not in srv.log
        assert ") offline: " not in srv.log  # no disk went offline, not even for a moment
    finally:
        srv.stop()


def all_disks_online_after_flood(srv, socks) -> bool:
    """Close half the flood (descriptors for the admin call), then ask the monitor."""
    for s in socks[: len(socks) // 2]:
        s.close()
    return wait_for(lambda: _try(lambda: all_disks_online(srv)), 30, "disk status")


def _try(fn):
    try:
        return fn()
    except (OSError, AssertionError):
        return False
