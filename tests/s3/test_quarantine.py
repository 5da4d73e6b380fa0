"""The quarantine, visible and manageable, against a real server on real disks: a corrupt
shard is met by a GET (heal-on-read repairs it and moves the bad file to its disk's
quarantine), then shows in `disk status`, `admin info`, the metrics and `disk quarantine
list`; `disk quarantine purge` refuses files younger than the minimum age unless told with
--yes, removes them when told, says what it removed; the object reads back exact throughout.
The same list and purge work directly on the disks of the stopped store."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from s3free.admin.client import AdminClient
from s3free.format import HEADER_SIZE
from s3free.format.header import ShardHeader
from s3free.format.ids import object_id
from tests.s3.cli_support import admin, base_env, disk, root_env
from tests.s3.raw import version_dirs, wait_until
from tests.support.obs import scrape, value
from tests.support.server import make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.1"}
DATA = random.Random(5).randbytes(300_000)  # shard files of their own (not inline)


@pytest.fixture
def srv(tmp_path):
    server = start_server(tmp_path / "data", env=FAST)
    yield server
    server.stop()


def corrupt_and_heal(srv) -> tuple[Path, int]:
    """Flip a payload byte of one shard file, GET (exact bytes back), wait for the repair to
    quarantine the bad file; (that disk's root, the bad file's size)."""
    s3c = make_client(srv)
    s3c.create_bucket(Bucket="bkt")
    s3c.put_object(Bucket="bkt", Key="obj", Body=DATA)
    parts = sorted(p for d in version_dirs(srv, "bkt", "obj") for p in d.glob("part.*"))
    # A data shard: the GET reads those first (a parity shard it would not touch).
    part = next(
        p for p in parts if ShardHeader.decode(p.read_bytes()[:HEADER_SIZE]).shard_index == 0
    )
    with open(part, "r+b") as f:
        f.seek(HEADER_SIZE + 10)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    bad_size = part.stat().st_size
    assert s3c.get_object(Bucket="bkt", Key="obj")["Body"].read() == DATA
    root = next(p for p in part.parents if p.name.startswith("disk"))
    held = root / ".s3free.quarantine"
    wait_until(lambda: held.is_dir() and any(held.iterdir()), timeout=30, what="quarantine")
    return root, bad_size


def run_ok(out) -> str:
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    return out.stdout


def test_quarantine_status_list_metric_and_guarded_purge(srv):
    root, bad_size = corrupt_and_heal(srv)
    env, at = root_env(srv), ("--endpoint", srv.endpoint)

    status = json.loads(run_ok(disk("status", "--json", *at, env=env)))
    held = {d["path"]: d["quarantine"] for d in status["disks"]}
    assert held[str(root)] == {"files": 1, "bytes": bad_size}, held
    assert sum(h["files"] for h in held.values()) == 1
    assert "quarantine: 1 files" in run_ok(disk("status", *at, env=env))
    position = next(d["position"] for d in status["disks"] if d["path"] == str(root))

    info = json.loads(run_ok(admin("info", "--json", *at, env=env)))
    assert info["quarantine"] == {"files": 1, "bytes": bad_size}
    samples = scrape(srv.endpoint)
    assert value(samples, "s3free_quarantine_files", disk=str(position)) == 1
    assert value(samples, "s3free_quarantine_bytes", disk=str(position)) == bad_size
    assert value(samples, "s3free_quarantine_files") == 1

    listed = json.loads(run_ok(disk("quarantine", "list", "--json", *at, env=env)))
    entries = [e for d in listed["disks"] for e in d["entries"]]
    assert len(entries) == 1 and listed["total"] == {"files": 1, "bytes": bad_size}
    entry = entries[0]
    assert entry["object_id"] == object_id("bkt", "obj").hex()
    assert entry["part_number"] == 1 and entry["size"] == bad_size and entry["age_s"] >= 0
    text = run_ok(disk("quarantine", "list", *at, env=env))
    assert entry["name"] in text and f"object {entry['object_id']}" in text

    # The guard: younger than the minimum age needs --yes; a plain 1h purge keeps it.
    refused = disk("quarantine", "purge", "--older-than", "0s", *at, env=env)
    assert refused.returncode == 1 and "refusing" in refused.stderr, refused.stderr
    api = AdminClient(srv.endpoint, srv.access_key, srv.secret_key)
    with pytest.raises(Exception, match="refusing"):
        api.purge_quarantine(0, False)  # the server refuses on its own too
    kept = json.loads(run_ok(disk("quarantine", "purge", "--older-than", "1h", "--json", *at,
                                  env=env)))  # fmt: skip
    assert kept["removed_files"] == 0 and kept["kept_files"] == 1
    bad = disk("quarantine", "purge", "--older-than", "soon", *at, env=env)
    assert bad.returncode == 2 and "duration" in bad.stderr, bad.stderr
    assert len(list((root / ".s3free.quarantine").iterdir())) == 1

    out = run_ok(disk("quarantine", "purge", "--older-than", "0s", "--yes", *at, env=env))
    assert "removed 1 files" in out and entry["name"] in out, out
    assert not list((root / ".s3free.quarantine").iterdir())
    assert value(scrape(srv.endpoint), "s3free_quarantine_files") == 0
    assert make_client(srv).get_object(Bucket="bkt", Key="obj")["Body"].read() == DATA


def test_quarantine_list_and_purge_directly_on_the_disks(srv):
    root, bad_size = corrupt_and_heal(srv)
    srv.stop()
    direct = ("--data-dir", str(srv.data_dir))
    env = base_env()
    listed = json.loads(run_ok(disk("quarantine", "list", "--json", *direct, env=env)))
    assert listed["total"] == {"files": 1, "bytes": bad_size}
    refused = disk("quarantine", "purge", "--older-than", "10m", *direct, env=env)
    assert refused.returncode == 1 and "refusing" in refused.stderr, refused.stderr
    out = run_ok(disk("quarantine", "purge", "--older-than", "0s", "--yes", *direct, env=env))
    assert "removed 1 files" in out, out
    assert not list((root / ".s3free.quarantine").iterdir())
