"""Prometheus metrics of a real server after real boto3 requests: counters move by exactly what
was done, stages and disk I/O are timed, a corrupted shard found by a GET is counted and its
repair too, and the metrics token is enforced. The sample Grafana dashboard may only use
metric names a real scrape has."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from s3free.format import HEADER_SIZE, ShardHeader
from s3free.storage.faulty import flip_bit
from tests.s3.raw import disks, version_dirs
from tests.s3.users_support import admin
from tests.support.obs import http_get, scrape, value, wait_for
from tests.support.server import make_client, start_server

TOKEN = "metrics-test-token-0123456789"
DASHBOARD = Path(__file__).resolve().parent.parent / "configs" / "grafana-dashboard.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(
        tmp_path_factory.mktemp("s3free-metrics"),
        env={"S3FREE_METRICS_TOKEN": TOKEN, "S3FREE_SCRUB_INTERVAL_S": "0"},
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def s3(server):
    return make_client(server)


@pytest.fixture(scope="module")
def bucket(s3):
    s3.create_bucket(Bucket="observed")
    return "observed"


def test_counters_move_by_what_was_done(server, s3, bucket):
    before = scrape(server.endpoint, TOKEN)
    bodies = [os.urandom(5000 + i) for i in range(3)]
    for i, body in enumerate(bodies):
        s3.put_object(Bucket=bucket, Key=f"count/{i}", Body=body)
    assert s3.get_object(Bucket=bucket, Key="count/0")["Body"].read() == bodies[0]
    assert s3.get_object(Bucket=bucket, Key="count/1")["Body"].read() == bodies[1]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="count/missing")
    s3.head_object(Bucket=bucket, Key="count/2")
    after = scrape(server.endpoint, TOKEN)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("s3free_requests_total", op="PutObject", code="200") == 3
    assert delta("s3free_requests_total", op="GetObject", code="200") == 2
    assert delta("s3free_requests_total", op="GetObject", code="404") == 1
    assert delta("s3free_requests_total", op="HeadObject", code="200") == 1
    assert delta("s3free_requests_total") == 7  # scrapes are not S3 requests
    assert delta("s3free_request_duration_seconds_count", op="PutObject") == 3
    assert delta("s3free_request_duration_seconds_bucket", op="PutObject", le="+Inf") == 3
    assert delta("s3free_request_duration_seconds_sum", op="PutObject") > 0
    put_bytes = sum(map(len, bodies))
    # The wire body: the object, plus aws-chunked framing if the client used it.
    assert put_bytes <= delta("s3free_received_bytes_total", op="PutObject") < put_bytes + 2000
    # Two bodies, plus the 404's XML error document; a HEAD sends no body.
    get_sent = delta("s3free_sent_bytes_total", op="GetObject")
    assert len(bodies[0]) + len(bodies[1]) < get_sent < len(bodies[0]) + len(bodies[1]) + 1000
    assert delta("s3free_sent_bytes_total", op="HeadObject") == 0
    assert value(after, "s3free_requests_in_flight") == 0
    # Stages: each PUT is one engine.put with one block encoded; each GET opens one object.
    assert delta("s3free_stage_seconds_count", stage="engine.put") == 3
    assert delta("s3free_stage_seconds_count", stage="erasure.encode") == 3
    # engine.get: two GETs found, one missing, and the HEAD (which opens the object too)
    assert delta("s3free_stage_seconds_count", stage="engine.get") == 4
    assert delta("s3free_stage_seconds_count", stage="index.put") >= 6  # journal + switch
    # A small PUT writes its files on all disks as one batch, a small GET reads its k as one:
    # one stage each; the per-disk I/O metrics below still count every file.
    assert delta("s3free_stage_seconds_count", stage="disk.write") >= 3
    assert delta("s3free_stage_seconds_count", stage="disk.read") >= 2
    assert delta("s3free_disk_io_seconds_count", op="write") >= 9
    assert delta("s3free_disk_io_seconds_count", op="read") >= 4


def test_disk_gauges_describe_the_set(server, s3, bucket):
    samples = scrape(server.endpoint, TOKEN)
    assert value(samples, "s3free_info", k="2", m="2") == 1
    assert value(samples, "s3free_write_quorum") == 3
    assert value(samples, "s3free_index_loaded") == 1
    for position in range(4):
        disk = str(position)
        assert value(samples, "s3free_disk_state", disk=disk, state="online") == 1
        assert value(samples, "s3free_disk_state", disk=disk, state="offline") == 0
        st = os.statvfs(disks(server)[position])
        total = st.f_blocks * st.f_frsize
        assert value(samples, "s3free_disk_total_bytes", disk=disk) == total
        used, free = (value(samples, f"s3free_disk_{w}_bytes", disk=disk) for w in ("used", "free"))
        assert used + free == total and used > 0
    names = {name for name, _ in samples}
    assert {"s3free_repair_queue_depth", "s3free_scrub_passes_total"} <= names
    # No label carries a bucket or key.
    assert not any("observed" in v for _, labels in samples for _, v in labels)


def _data_shard_zero(server, bucket: str, key: str) -> tuple[Path, int]:
    """The shard file holding data shard 0 of the key's version, and its disk position."""
    for vdir in version_dirs(server, bucket, key):
        part = vdir / "part.00001"
        if part.exists():
            header = ShardHeader.decode(part.read_bytes()[:HEADER_SIZE])
            if header.shard_index == 0:
                return part, disks(server).index(vdir.parents[4])
    raise AssertionError("no data shard 0 found")


def test_corrupt_shard_is_counted_and_repaired(server, s3, bucket):
    body = os.urandom(300_000)  # above the inline size: shard files of their own
    s3.put_object(Bucket=bucket, Key="rot", Body=body)
    path, position = _data_shard_zero(server, bucket, "rot")
    before = scrape(server.endpoint, TOKEN)
    flip_bit(path, HEADER_SIZE + 100, 3)  # the payload of the first record
    assert s3.get_object(Bucket=bucket, Key="rot")["Body"].read() == body
    after = scrape(server.endpoint, TOKEN)
    disk = str(position)
    assert value(after, "s3free_shards_bad_total", disk=disk) == (
        value(before, "s3free_shards_bad_total", disk=disk) + 1
    )
    assert value(after, "s3free_shards_bad_total") == value(before, "s3free_shards_bad_total") + 1
    # The GET decoded its block from a parity shard (the repair, if already under way,
    # decodes too).
    assert value(after, "s3free_stage_seconds_count", stage="erasure.decode") >= (
        value(before, "s3free_stage_seconds_count", stage="erasure.decode") + 1
    )

    # Heal-on-read repairs it in the background: the repair and the shard are counted.
    def repaired_scrape():
        samples = scrape(server.endpoint, TOKEN)
        done = value(samples, "s3free_repairs_total", outcome="repaired")
        return samples if done > value(before, "s3free_repairs_total", outcome="repaired") else None

    repaired = wait_for(repaired_scrape, what="the heal-on-read repair")
    assert value(repaired, "s3free_shards_rebuilt_total") == (
        value(before, "s3free_shards_rebuilt_total") + 1
    )
    assert value(repaired, "s3free_repair_queue_depth") == 0
    assert s3.get_object(Bucket=bucket, Key="rot")["Body"].read() == body


def test_scrub_pass_is_counted(server, s3, bucket):
    body = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="scrubbed", Body=body)
    before = scrape(server.endpoint, TOKEN)
    status, doc = admin(server, "POST", "/disks/scrub", {})
    assert status == 202, doc

    def passed():
        samples = scrape(server.endpoint, TOKEN)
        done = value(samples, "s3free_scrub_passes_total")
        return samples if done > value(before, "s3free_scrub_passes_total") else None

    after = wait_for(passed, what="the scrub pass")
    assert (
        value(after, "s3free_scrub_passes_total") == value(before, "s3free_scrub_passes_total") + 1
    )
    assert value(after, "s3free_scrub_running") == 0
    objects = value(after, "s3free_scrub_pass_objects_checked")
    assert objects >= 1 and objects == value(after, "s3free_scrub_pass_objects_total")
    checked = value(after, "s3free_scrub_pass_bytes_checked")
    assert checked >= len(body)
    assert (
        value(after, "s3free_scrub_checked_bytes_total")
        - value(before, "s3free_scrub_checked_bytes_total")
        == checked
    )
    assert value(after, "s3free_scrub_last_completed_timestamp_seconds") > 0
    assert value(after, "s3free_scrub_rate_limit_bytes_per_second") == 8e6  # the default cap


def test_metrics_token_is_enforced(server):
    url = server.endpoint + "/_s3free/metrics"
    status, headers, _ = http_get(url)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert http_get(url, {"Authorization": "Bearer wrong-token"})[0] == 403
    assert http_get(url, {"Authorization": f"Bearer {TOKEN}x"})[0] == 403
    assert http_get(url, {"Authorization": f"Basic {TOKEN}"})[0] == 401
    status, headers, body = http_get(url, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b"s3free_requests_total" in body
    # Probes cannot sign: health needs no token.
    assert http_get(server.endpoint + "/_s3free/livez")[0] == 200
    assert http_get(server.endpoint + "/_s3free/readyz")[0] == 200


def test_bucket_named_metrics_is_an_ordinary_bucket(server, s3):
    """/metrics is S3 (GET Bucket on a bucket named "metrics"), never the metrics page."""
    s3.create_bucket(Bucket="metrics")
    s3.put_object(Bucket="metrics", Key="livez", Body=b"mine")
    listed = s3.list_objects_v2(Bucket="metrics")
    assert [o["Key"] for o in listed["Contents"]] == ["livez"]
    assert s3.get_object(Bucket="metrics", Key="livez")["Body"].read() == b"mine"
    status, _, body = http_get(server.endpoint + "/metrics")
    assert status == 403 and b"AccessDenied" in body  # anonymous S3, not a metrics page


def _dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "query") and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    assert len(exprs) >= 10
    return {name for expr in exprs for name in re.findall(r"\bs3free_[a-z0-9_]+", expr)}


def test_dashboard_uses_only_real_metric_names(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="dash", Body=b"d" * 1000)
    s3.get_object(Bucket=bucket, Key="dash")["Body"].read()
    scraped = {name for name, _ in scrape(server.endpoint, TOKEN)}
    used = _dashboard_metric_names()
    assert used, "the dashboard has no s3free metric"
    assert not used - scraped, f"the dashboard uses metrics no scrape has: {used - scraped}"


def test_scrub_passes_between_two_scrapes_all_count(server, s3, bucket):
    """Two whole passes with no scrape in between: the counter moves by two (it is counted
    where passes end, not pieced together from what each scrape happens to see)."""
    s3.put_object(Bucket=bucket, Key="twice", Body=os.urandom(50_000))
    before = scrape(server.endpoint, TOKEN)
    for _ in range(2):
        status, doc = admin(server, "POST", "/disks/scrub", {})
        assert status == 202, doc
        job_id = doc["job"]["id"]

        def finished(job_id=job_id):
            status, doc = admin(server, "GET", f"/jobs/{job_id}")
            return status == 200 and doc["job"]["state"] != "running" and doc["job"]

        job = wait_for(finished, what="a scrub pass")
        assert job["state"] == "done", job
    after = scrape(server.endpoint, TOKEN)
    passes = "s3free_scrub_passes_total"
    assert value(after, passes) == value(before, passes) + 2
