"""`s3free admin info`, `admin bucket usage` and `admin rebuild-index` as real subprocesses
against a real server process (boto3 writes, the CLI reads): figures after real PUTs, usage
exact after overwrite/delete/multipart, the index rebuilt on a running server after its
directory was emptied and while clients write, the stopped-store variant, and the errors.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time

import pytest
from botocore.exceptions import ClientError

from tests.s3.cli_support import admin, base_env, root_env
from tests.support.server import make_client, start_server


@pytest.fixture
def srv(tmp_path):
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


def ok_json(srv, *args: str) -> dict:
    out = admin(*args, "--json", "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, (out.stdout, out.stderr)
    return json.loads(out.stdout)


def files_under(data_dir, top: str) -> int:
    total = 0
    for disk in sorted(data_dir.glob("disk*")):
        for dirpath, _, files in os.walk(disk / top):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


def settle(srv, bucket: str) -> dict:
    """Usage once replaced versions' files are gone (they are removed in the background)."""
    deadline = time.monotonic() + 10
    while True:
        row = ok_json(srv, "bucket", "usage", bucket)
        if row["raw_bytes"] == files_under(srv.data_dir, "objects"):
            return row
        assert time.monotonic() < deadline, (row, files_under(srv.data_dir, "objects"))
        time.sleep(0.1)


def test_info_after_real_puts(srv):
    s3 = make_client(srv)
    s3.create_bucket(Bucket="bkt")
    bodies = [os.urandom(n) for n in (1, 100_000, 3_000_000)]
    for i, body in enumerate(bodies):
        s3.put_object(Bucket="bkt", Key=f"k{i}", Body=body)
    settle(srv, "bkt")
    doc = ok_json(srv, "info")
    assert doc["version"] and doc["listen"] == srv.endpoint
    assert 0 <= doc["uptime_s"] < 600 and doc["started_ms"] <= time.time() * 1000
    k, m = doc["k"], doc["m"]
    assert (k, m) == (2, 2) and len(doc["disks"]) == 4 and doc["disks_online"] == 4
    for d in doc["disks"]:
        assert d["state"] == "online" and d["free_bytes"] == d["total_bytes"] - d["used_bytes"]
        assert d["path"].startswith(str(srv.data_dir))
    u = doc["usage"]
    logical = sum(len(b) for b in bodies)
    assert (doc["buckets"], u["objects"], u["logical_bytes"]) == (1, 3, logical)
    assert u["raw_bytes"] == files_under(srv.data_dir, "objects")
    # raw is logical * (k+m)/k plus headers, footers and manifests (small against 3 MB)
    assert logical * (k + m) / k <= u["raw_bytes"] < logical * (k + m) / k * 1.05 + 60_000
    assert doc["heal"]["queue_depth"] == 0
    text = admin("info", "--endpoint", srv.endpoint, env=root_env(srv))
    assert text.returncode == 0, text.stderr
    assert "RS(2,2)" in text.stdout and "3 objects" in text.stdout and "online" in text.stdout


def test_bucket_usage_exact_after_overwrite_delete_and_multipart(srv):
    s3 = make_client(srv)
    s3.create_bucket(Bucket="bkt")
    s3.create_bucket(Bucket="idle")
    a, b = os.urandom(2_500_000), os.urandom(700_000)
    s3.put_object(Bucket="bkt", Key="x", Body=a)
    s3.put_object(Bucket="bkt", Key="x", Body=b)  # overwrite
    s3.put_object(Bucket="bkt", Key="y", Body=a)
    s3.delete_object(Bucket="bkt", Key="y")
    s3.put_object(Bucket="bkt", Key="z", Body=b"")
    row = settle(srv, "bkt")
    assert (row["objects"], row["logical_bytes"], row["uploads"]) == (2, len(b), 0)
    part = os.urandom(5 * 1024 * 1024)
    up = s3.create_multipart_upload(Bucket="bkt", Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket="bkt", Key="mp", UploadId=up, PartNumber=1, Body=part)["ETag"]
    e2 = s3.upload_part(Bucket="bkt", Key="mp", UploadId=up, PartNumber=2, Body=b)["ETag"]
    row = ok_json(srv, "bucket", "usage", "bkt")
    assert (row["uploads"], row["upload_parts"], row["upload_bytes"]) == (1, 2, len(part) + len(b))
    s3.complete_multipart_upload(
        Bucket="bkt", Key="mp", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )  # fmt: skip
    row = settle(srv, "bkt")
    assert (row["objects"], row["uploads"]) == (3, 0)
    assert row["logical_bytes"] == len(b) + len(part) + len(b)
    everything = ok_json(srv, "bucket", "usage")
    assert [r["bucket"] for r in everything["buckets"]] == ["bkt", "idle"]
    assert everything["buckets"][1]["objects"] == 0
    assert everything["total"]["raw_bytes"] == row["raw_bytes"]
    text = admin("bucket", "usage", "--endpoint", srv.endpoint, env=root_env(srv))
    assert text.returncode == 0 and "(total)" in text.stdout and "idle" in text.stdout
    missing = admin("bucket", "usage", "nope-bucket", "--endpoint", srv.endpoint, env=root_env(srv))
    assert missing.returncode == 1 and missing.stdout == ""
    assert "bucket nope-bucket does not exist" in missing.stderr


def test_rebuild_index_on_a_running_server_after_its_directory_was_emptied(srv, tmp_path):
    s3 = make_client(srv)
    s3.create_bucket(Bucket="bkt")
    bodies = {f"k{i}": os.urandom(1000 * i + 1) for i in range(8)}
    for key, body in bodies.items():
        s3.put_object(Bucket="bkt", Key=key, Body=body)
    s3.put_object(Bucket="bkt", Key="k0", Body=b"new")  # the old version must not return
    bodies["k0"] = b"new"
    s3.delete_object(Bucket="bkt", Key="k7")
    del bodies["k7"]
    meta = srv.data_dir / "meta"
    for entry in meta.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    out = admin("rebuild-index", "--json", "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, (out.stdout, out.stderr)
    job = json.loads(out.stdout)["job"]
    assert job["state"] == "done" and (job["objects"], job["buckets"]) == (7, 1), job
    assert job["skipped_no_manifest"] == 0 and job["unreadable"] == 0
    assert (meta / "CURRENT").exists()

    def check() -> None:
        listed = s3.list_objects_v2(Bucket="bkt")["Contents"]
        assert sorted(o["Key"] for o in listed) == sorted(bodies)
        for key, body in bodies.items():
            assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == body

    check()
    s3.put_object(Bucket="bkt", Key="after", Body=b"a")
    bodies["after"] = b"a"
    text = admin("rebuild-index", "--endpoint", srv.endpoint, env=root_env(srv))
    assert text.returncode == 0 and "index rebuilt: 8 objects in 1 buckets" in text.stdout
    srv.stop()
    again = start_server(srv.data_dir)
    try:
        srv.endpoint = again.endpoint
        s3 = make_client(again)
        check()
        assert "rebuilding it from the disks" not in again.log
    finally:
        again.stop()


def test_writes_while_the_index_is_rebuilt_are_kept(srv):
    s3 = make_client(srv)
    s3.create_bucket(Bucket="bkt")
    for i in range(30):
        s3.put_object(Bucket="bkt", Key=f"base{i}", Body=b"b" * i)
    acked: dict[str, bytes] = {}
    deleted: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        client = make_client(srv)
        for i in range(400):  # bounded: at most 400 writes or until the rebuild ends
            if stop.is_set():
                return
            client.put_object(Bucket="bkt", Key=f"w{i}", Body=str(i).encode())
            acked[f"w{i}"] = str(i).encode()
            if i % 3 == 0:
                client.delete_object(Bucket="bkt", Key=f"base{i % 30}")
                deleted.append(f"base{i % 30}")

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.2)
    changed = 0
    try:
        for _ in range(2):
            out = admin("rebuild-index", "--json", "--endpoint", srv.endpoint, env=root_env(srv))
            assert out.returncode == 0, (out.stdout, out.stderr)
            job = json.loads(out.stdout)["job"]
            assert job["state"] == "done"
            changed += job["changed_during"]["objects"]
    finally:
        stop.set()
        thread.join(60)
    assert acked and changed > 0  # the writes did overlap the rebuilds
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bkt"):
        keys.update(o["Key"] for o in page.get("Contents", []))
    expected = {f"base{i}" for i in range(30)} - set(deleted) | set(acked)
    assert keys == expected
    for key, body in acked.items():
        assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == body
    for key in deleted:
        with pytest.raises(ClientError):
            s3.head_object(Bucket="bkt", Key=key)


def test_rebuild_index_on_a_stopped_store(srv):
    s3 = make_client(srv)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=b"data")
    busy = admin("rebuild-index", "--data-dir", str(srv.data_dir), env=base_env())
    assert busy.returncode == 1 and "in use" in busy.stderr
    srv.stop()
    out = admin("rebuild-index", "--data-dir", str(srv.data_dir), "--json", env=base_env())
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)["job"]
    assert (job["state"], job["objects"], job["buckets"]) == ("done", 1, 1)
    usage = admin("rebuild-index", "--disk", str(srv.data_dir / "disk1"), env=base_env())
    assert usage.returncode == 2 and "--meta-dir" in usage.stderr
    again = start_server(srv.data_dir)
    try:
        assert make_client(again).get_object(Bucket="bkt", Key="k")["Body"].read() == b"data"
    finally:
        again.stop()


def test_errors_unreachable_and_no_credentials(srv):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    for args in (("info",), ("bucket", "usage"), ("rebuild-index",)):
        out = admin(*args, "--endpoint", dead, env=root_env(srv))
        assert out.returncode == 1 and out.stdout == "" and "cannot reach" in out.stderr, args
        out = admin(*args, "--endpoint", srv.endpoint, env=base_env())
        assert out.returncode == 2 and "credentials" in out.stderr, args


def test_info_and_config_show_read_as_text(srv):
    """`admin info` printed raw dicts ("repairs {}") and "last scrub: done" with no time;
    `admin config show` printed "ec -" instead of the code in force."""
    import re

    from tests.s3.cli_support import disk

    s3 = make_client(srv)
    s3.create_bucket(Bucket="bkt")
    s3.put_object(Bucket="bkt", Key="k", Body=os.urandom(200_000))
    out = disk("scrub", "--wait", "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, (out.stdout, out.stderr)
    text = admin("info", "--endpoint", srv.endpoint, env=root_env(srv))
    assert text.returncode == 0, text.stderr
    assert "{" not in text.stdout and "[" not in text.stdout  # no Python dicts or lists
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \((\d+d)?(\d+h)?\d+m\d*s? ago\)"
    assert re.search(rf"^s3free \S+, up \S+, started {stamp}, listening", text.stdout, re.M)
    assert re.search(rf"^last scrub: done {stamp}, 1 objects, \d+\.\d KiB verified, 0 shards bad",
                     text.stdout, re.M), text.stdout  # fmt: skip
    assert "redundancy: every known object version is at k+m" in text.stdout  # heal_lines
    assert "repairs since start: none" in text.stdout
    doc = ok_json(srv, "info")  # --json unchanged
    assert doc["heal"]["scrub"]["state"] == "done" and doc["heal"]["repairs"] == {}

    shown = admin("config", "show", "--endpoint", srv.endpoint, env=root_env(srv))
    assert shown.returncode == 0, shown.stderr
    ec = [line.split() for line in shown.stdout.splitlines() if line.startswith("ec ")]
    assert ec == [["ec", "2+2", "(default", "for", "4", "disks)", "default", "restart"]]
    as_json = ok_json(srv, "config", "show")
    assert as_json["ec_in_force"] == {"value": "2+2", "note": "default for 4 disks"}
    assert {"settings", "pending", "file", "reloads", "running"} <= set(as_json)


def test_config_show_lists_one_disk_per_line(tmp_path):
    disks = [str(tmp_path / "mnt" / f"a-rather-long-disk-mount-point-{i}") for i in range(9)]
    file = tmp_path / "s3free.yaml"
    file.write_text("disks:\n" + "".join(f"  - {d}\n" for d in disks) + "meta_dir: /tmp/m\n")
    out = admin("config", "show", "--config", str(file), env=base_env())
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("disks "))
    assert [line.split() for line in lines[first : first + 9]] == [
        ["disks", disks[0], "file", "restart"],
        *[[d] for d in disks[1:]],
    ]
    assert max(len(line) for line in lines) <= len(disks[0]) + 40  # one path wide, not nine
    ec = next(line for line in lines if line.startswith("ec "))
    assert ec.split()[1:5] == ["6+3", "(default", "for", "9"]
