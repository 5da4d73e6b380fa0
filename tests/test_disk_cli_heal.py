"""`s3free disk` scrub/repair/verify/replace with the real heal service (s3free.heal), against a
real server and directly on the disks."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.s3.cli_support import root_env, s3free_cli
from tests.support.server import make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.1"}
BUCKET = "healme"


def env_for(srv) -> dict[str, str]:
    return root_env(srv)


def disk(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return s3free_cli("disk", *args, env=env, timeout=timeout)


def shards_of(data: Path, key_dir_glob: str = "*") -> list[Path]:
    return sorted(data.glob(f"disk*/objects/*/*/{key_dir_glob}/*/part.*"))


@pytest.fixture
def served(tmp_path):
    srv = start_server(tmp_path / "data", env=FAST)
    s3 = make_client(srv)
    s3.create_bucket(Bucket=BUCKET)
    objects = {f"k{i}": bytes([65 + i]) * (i * 90_000 + 1) for i in range(5)}
    for key, body in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    yield srv, s3, objects
    srv.stop()


def test_scrub_wait_repairs_deleted_shards_and_summarises(served):
    srv, _s3, objects = served
    victims = shards_of(srv.data_dir)[:3]
    for path in victims:
        path.unlink()
    out = disk("scrub", "--wait", "--json", "--endpoint", srv.endpoint, env=env_for(srv))
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)["job"]
    assert job["state"] == "done" and job["objects_checked"] == len(objects)
    assert job["shards_bad"] >= 3 and job["repaired"] >= 1 and job["unrepairable"] == 0
    assert all(p.exists() for p in victims)
    text = disk("scrub", "--wait", "--endpoint", srv.endpoint, env=env_for(srv))
    assert text.returncode == 0 and "objects checked" in text.stdout


def test_verify_and_repair_one_object(served):
    srv, _s3, _objects = served
    out = disk("verify", BUCKET, "k3", "--endpoint", srv.endpoint, env=env_for(srv))
    assert out.returncode == 0 and "verdict: ok" in out.stdout, out.stderr
    parts = sorted(srv.data_dir.glob("disk*/objects/*/*/*/*/part.00001"))
    doc = json.loads(
        disk("verify", BUCKET, "k3", "--json", "--endpoint", srv.endpoint, env=env_for(srv)).stdout
    )
    by_disk = {s["disk_id"] for s in doc["health"]["shards"]}
    assert len(by_disk) == 4
    # delete one shard of k3: degraded (exit 9), repair --object fixes it (exit 0)
    mine = [p for p in parts if p.parent.parent.name == _oid(BUCKET, "k3")]
    mine[0].unlink()
    out = disk("verify", BUCKET, "k3", "--endpoint", srv.endpoint, env=env_for(srv))
    assert out.returncode == 9 and "missing" in out.stdout
    out = disk("repair", "--bucket", BUCKET, "--object", "k3", "--wait", "--endpoint",
               srv.endpoint, env=env_for(srv))  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert mine[0].exists()
    # more than m shards gone: unrepairable, exit 8
    for p in mine[:3]:
        p.unlink()
    out = disk("verify", BUCKET, "k3", "--endpoint", srv.endpoint, env=env_for(srv))
    assert out.returncode == 8
    out = disk("repair", "--bucket", BUCKET, "--wait", "--endpoint", srv.endpoint,
               env=env_for(srv))  # fmt: skip
    assert out.returncode == 8 and "unrepairable" in out.stdout


def _oid(bucket: str, key: str) -> str:
    from s3free.format.ids import object_id

    return object_id(bucket, key).hex()


def test_a_wiped_disk_heals_fully_and_returns_online(served):
    srv, s3, objects = served
    victim = srv.data_dir / "disk2"
    before = sorted(p.relative_to(victim) for p in victim.rglob("part.*"))
    for entry in victim.iterdir():
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    deadline = time.monotonic() + 30
    state = ""
    while time.monotonic() < deadline:
        out = disk("status", "--json", "--endpoint", srv.endpoint, env=env_for(srv))
        d = json.loads(out.stdout)["disks"][1]
        state = d["state"]
        if state == "online" and d["last_heal"]:
            break
        time.sleep(0.2)
    assert state == "online"
    assert sorted(p.relative_to(victim) for p in victim.rglob("part.*")) == before
    assert not (victim / "healing.json").exists()
    for key, body in objects.items():
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


def test_direct_mode_scrub_and_replace(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, env=FAST)
    s3 = make_client(srv)
    s3.create_bucket(Bucket=BUCKET)
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=f"d{i}", Body=b"z" * (i * 100_000 + 1))
    srv.stop()
    victim = data / "disk1"
    shutil.rmtree(victim)
    victim.mkdir()
    env = env_for(srv)
    out = disk("replace", "0", "--wait", "--data-dir", str(data), env=env)
    assert out.returncode == 0, out.stderr
    assert list(victim.rglob("part.*")) and not (victim / "healing.json").exists()
    out = disk("scrub", "--data-dir", str(data), "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["job"]["objects_checked"] == 3


def test_replace_rate_paces_the_heal_pass_it_starts(tmp_path):
    """The server's scrub rate (which paces heals too) is 1 KB/s, so healing this disk would
    take over ten minutes; `disk replace --rate 0` lifts the cap for its heal pass, which
    then finishes within the bounded --wait."""
    srv = start_server(tmp_path / "data", env={**FAST, "S3FREE_SCRUB_RATE_MB_S": "0.001"})
    try:
        s3 = make_client(srv)
        s3.create_bucket(Bucket=BUCKET)
        objects = {f"r{i}": bytes([70 + i]) * 400_000 for i in range(3)}
        for key, body in objects.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        victim = srv.data_dir / "disk2"
        victim.rename(srv.data_dir / "pulled")  # the disk is pulled
        deadline = time.monotonic() + 30
        while True:
            out = disk("status", "--json", "--endpoint", srv.endpoint, env=env_for(srv))
            if json.loads(out.stdout)["disks"][1]["state"] == "offline":
                break
            assert time.monotonic() < deadline, out.stdout
            time.sleep(0.1)
        victim.mkdir()  # an empty disk in its place
        out = disk("replace", "1", "--rate", "0", "--wait", "--timeout", "150",
                   "--endpoint", srv.endpoint, env=env_for(srv), timeout=200)  # fmt: skip
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert "heal pass paced at no limit" in out.stdout
        assert len(list(victim.rglob("part.*"))) == len(objects)
        for key, body in objects.items():
            assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    finally:
        srv.stop()


def test_verify_prints_a_summary_and_shards_only_when_asked(served):
    """A big object verified printed one line per shard (549 for 300 MiB); now a summary
    (verdict, healthy shards, bad ones by disk and state, manifests), every shard with
    --shards, and the object named with --bucket/--object as `disk repair` does."""
    srv, s3, _objects = served
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="big")["UploadId"]
    etags = []
    for number in range(1, 7):
        body = bytes([number]) * (5 * 1024 * 1024 if number < 6 else 1000)
        part = s3.upload_part(
            Bucket=BUCKET, Key="big", UploadId=upload, PartNumber=number, Body=body
        )
        etags.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key="big", UploadId=upload, MultipartUpload={"Parts": etags}
    )
    mine = sorted(srv.data_dir.glob(f"disk*/objects/*/*/{_oid(BUCKET, 'big')}/*/part.*"))
    assert len(mine) == 6 * 4
    for path in mine:
        if path.parent.parent.parent.parent.parent.parent.name == "disk3" and path.name in (
            "part.00002",
            "part.00003",
            "part.00005",
        ):
            path.unlink()  # three parts' shards lost on one disk
    target = ("--bucket", BUCKET, "--object", "big", "--endpoint", srv.endpoint)
    out = disk("verify", *target, env=env_for(srv))
    assert out.returncode == 9, (out.stdout, out.stderr)
    lines = out.stdout.splitlines()
    assert len(lines) <= 8, out.stdout
    assert lines[1].startswith("verdict: degraded (repairable: s3free disk repair --bucket")
    assert lines[2] == "shards: 21 of 24 healthy (6 part(s) x 4)"
    assert (
        [line for line in lines if line.startswith("  disk ")]
        == [line for line in lines if line.endswith(": 3 missing (part 2-3, 5)")]
        != []
    )
    assert "manifests: 4 ok" in lines and "PART   SHARD" not in out.stdout
    positional = disk("verify", BUCKET, "big", "--endpoint", srv.endpoint, env=env_for(srv))
    assert positional.returncode == 9 and positional.stdout == out.stdout
    full = disk("verify", *target, "--shards", env=env_for(srv))
    assert full.returncode == 9
    states = [line.split()[3] for line in full.stdout.splitlines() if line[:1].isdigit()]
    assert "PART   SHARD" in full.stdout and states.count("missing") == 3
    assert len(full.stdout.splitlines()) >= 24 + 4
    out = disk("verify", "--bucket", BUCKET, "--endpoint", srv.endpoint, env=env_for(srv))
    assert out.returncode == 2 and "--object" in out.stderr
