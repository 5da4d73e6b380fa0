"""/_s3free/livez and /_s3free/readyz of a real server: readiness follows the disks (a disk
directory renamed away is found offline by the monitor's probe; renamed back, it returns), the
body says how degraded the set is, and a virtual-hosted request is S3, not a probe."""

from __future__ import annotations

import http.client
import os
from urllib.parse import urlsplit

import pytest

from tests.s3.raw import disks
from tests.support.obs import health, scrape, value, wait_for
from tests.support.server import make_client, start_server

DOMAIN = "s3.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(
        tmp_path_factory.mktemp("s3free-health"),
        env={
            "S3FREE_DISK_PROBE_S": "0.1",
            "S3FREE_DOMAIN": DOMAIN,
            "S3FREE_SCRUB_INTERVAL_S": "0",
        },
    )
    yield srv
    srv.stop()


def _ready_with(server, online: int, offline: int) -> dict | None:
    status, body = health(server.endpoint, "readyz")
    disks = body["disks"]
    if disks["online"] + disks["healing"] == online and disks["offline"] == offline:
        return {**body, "http": status}
    return None


def test_livez_and_readyz_when_all_disks_are_online(server):
    status, body = health(server.endpoint, "livez")
    assert status == 200 and body == {"status": "live"}
    status, body = health(server.endpoint, "readyz")
    assert status == 200
    assert body["ready"] is True and body["degraded"] is False
    assert body["disks"] == {"online": 4, "offline": 0, "healing": 0, "full": 0, "total": 4}
    assert body["read_only"] is False and body["full_positions"] == []
    assert body["write_quorum"] == 3 and (body["k"], body["m"]) == (2, 2)
    assert body["index_loaded"] is True and body["draining"] is False
    assert str(server.data_dir) not in str(body)  # no paths for unauthenticated probes


def test_readiness_follows_disks_going_offline_and_back(server):
    s3 = make_client(server)
    s3.create_bucket(Bucket="ready")
    s3.put_object(Bucket="ready", Key="before", Body=b"x" * 1000)
    paths = disks(server)
    away = [p.with_name(p.name + ".away") for p in paths]
    try:
        os.rename(paths[1], away[1])
        body = wait_for(lambda: _ready_with(server, 3, 1), what="disk 1 offline")
        # Three of four disks still make a write quorum: ready, but degraded.
        assert body["http"] == 200 and body["ready"] and body["degraded"]
        assert body["offline_positions"] == [1]
        s3.put_object(Bucket="ready", Key="degraded", Body=b"y" * 1000)
        # The write missed disk 1: one version below k+m, waiting for that disk.
        wait_for(
            lambda: health(server.endpoint, "readyz")[1]["degraded_objects"] == 1 or None,
            what="the degraded write counted",
        )
        samples = scrape(server.endpoint)  # no metrics_token configured: open
        assert value(samples, "s3free_objects_degraded") == 1
        assert value(samples, "s3free_disk_state", disk="1", state="offline") == 1
        assert value(samples, "s3free_disk_state", disk="0", state="online") == 1

        os.rename(paths[2], away[2])
        body = wait_for(lambda: _ready_with(server, 2, 2), what="disk 2 offline")
        assert body["http"] == 503 and not body["ready"]
        assert body["offline_positions"] == [1, 2]
        assert body["reasons"] == ["only 2 disks in service, a write needs 3"]
        assert health(server.endpoint, "livez")[0] == 200  # alive all the same
    finally:
        for path, moved in zip(paths, away, strict=True):
            if moved.exists():
                os.rename(moved, path)
    body = wait_for(lambda: _ready_with(server, 4, 0), what="disks back online")
    assert body["http"] == 200 and body["ready"]
    assert "reasons" not in body
    # Degraded until what the disks missed is repaired, which needs no command.
    body = wait_for(
        lambda: (b := _ready_with(server, 4, 0)) and not b["degraded"] and b,
        what="redundancy back at k+m",
    )
    assert body["degraded_objects"] == 0
    assert value(scrape(server.endpoint), "s3free_objects_degraded") == 0
    assert s3.get_object(Bucket="ready", Key="degraded")["Body"].read() == b"y" * 1000


def test_virtual_hosted_request_is_s3_not_a_probe(server):
    """On Host: <bucket>.<domain>, /_s3free/readyz names the key "_s3free/readyz" of a bucket:
    never answered by the probe, but by S3 (here: that bucket does not exist)."""
    url = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.request("GET", "/_s3free/readyz", headers={"Host": f"somebucket.{DOMAIN}"})
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    assert reply.status == 404 and b"<Code>NoSuchBucket</Code>" in body, body
    assert b"write_quorum" not in body  # nothing of the probe's answer
