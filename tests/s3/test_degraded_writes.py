"""Writes while a disk is away, against a real server: each is committed degraded (its shard on
the missing disk not written, queued for repair). The server log gets one WARNING for the
first, then at most one line a minute with the count since, not one per write; the metric
s3free_degraded_writes_total counts every one."""

from __future__ import annotations

import math
import os
import time

import pytest

from s3free.admin.client import AdminClient
from tests.s3.raw import disks, wait_until
from tests.support.obs import scrape, value
from tests.support.server import make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.1"}
WRITES = 300


@pytest.fixture
def srv(tmp_path):
    server = start_server(tmp_path / "data", env=FAST)
    yield server
    server.stop()


def disk_states(srv) -> list[str]:
    client = AdminClient(srv.endpoint, srv.access_key, srv.secret_key)
    return [d["state"] for d in client.disk_status()["disks"]]


def test_writes_with_a_disk_away_log_once_and_are_counted(srv):
    s3c = make_client(srv)
    s3c.create_bucket(Bucket="bkt")
    root = disks(srv)[3]
    os.rename(root, root.with_name(root.name + ".away"))
    wait_until(lambda: disk_states(srv)[3] == "offline", timeout=30, what="disk 3 offline")
    before = value(scrape(srv.endpoint), "s3free_degraded_writes_total")
    assert before == 0
    lines_before = len(srv.log.splitlines())
    started = time.monotonic()
    for i in range(WRITES):
        body = b"x" * (300_000 if i % 50 == 0 else 2_000)  # shard files and inline files
        s3c.put_object(Bucket="bkt", Key=f"k{i}", Body=body)
    minutes = math.ceil((time.monotonic() - started) / 60)
    assert value(scrape(srv.endpoint), "s3free_degraded_writes_total") == WRITES
    warnings = [line for line in srv.log.splitlines()[lines_before:] if "WARNING" in line]
    # The first failure, then at most one summary per minute the writes took.
    assert 1 <= len(warnings) <= 1 + minutes, warnings
    assert "disk" in warnings[0] and "offline" in warnings[0], warnings
    assert s3c.get_object(Bucket="bkt", Key="k7")["Body"].read() == b"x" * 2_000
