"""records-newest-wins (issue 12): records kept on every disk converge on the newest state,
deletions included. A real server on 4 real disk directories, RS(2,2): users and buckets are
made, one disk (chosen by the seed) is renamed away, then a user is removed, a public-read
bucket made private and an empty bucket deleted; the disk is renamed back. With no command run,
the returned disk's copies must become the newest ones; the server must refuse the removed
user's key, keep the bucket private and the deleted one gone. Then the stopped store gets the
stale copies back on that disk (as if it had returned while the server was down) and loses its
index: after the restart (users loaded, index rebuilt at start) and after an online
`rebuild-index`, the same must hold."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

from chaos.faults import FaultLog
from chaos.report import Row, finish
from chaos.served import Served

SETTLE_S = 60.0  # bound on each wait for the server to notice a disk (no command run)
RECORDS = ("users/gone-user.json", "buckets/rec-pub.json", "buckets/rec-gone.json")


def _client(served: Served, creds: tuple[str, str] | None):
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10)
    if creds is None:
        cfg = cfg.merge(Config(signature_version=botocore.UNSIGNED))
        return boto3.client("s3", endpoint_url=served.endpoint, region_name="us-east-1", config=cfg)
    return boto3.client(
        "s3",
        endpoint_url=served.endpoint,
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
        region_name="us-east-1",
        config=cfg,
    )


def _wait(what: str, check, row: Row) -> bool:
    deadline = time.monotonic() + SETTLE_S
    while not check():
        if time.monotonic() > deadline:
            row.problems.append(f"{SETTLE_S:g} s and still not: {what}")
            return False
        time.sleep(0.2)
    return True


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _code(call) -> str | None:
    """The S3 error code of a call, None if it succeeded."""
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return None


def _check(served: Served, creds: dict[str, tuple[str, str]], where: str) -> list[str]:
    problems = []
    s3 = served.s3()
    listed = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    if listed != ["rec-keep", "rec-pub"]:
        problems.append(f"{where}: buckets listed {listed}, want rec-keep and rec-pub")
    code = _code(lambda: _client(served, None).list_objects_v2(Bucket="rec-pub"))
    if code != "AccessDenied":
        problems.append(f"{where}: anonymous listing of the private bucket gave {code}")
    code = _code(lambda: _client(served, creds["gone-user"]).list_buckets())
    if code != "InvalidAccessKeyId":
        problems.append(f"{where}: the removed user's key gave {code}, want InvalidAccessKeyId")
    code = _code(lambda: _client(served, creds["kept-user"]).list_buckets())
    if code is not None:
        problems.append(f"{where}: the kept user's key gave {code}")
    users = sorted(u["name"] for u in served.admin().list_users())
    if users != ["kept-user", "root"]:
        problems.append(f"{where}: users listed {users}")
    return problems


def records_newest_wins(seed: int = 1, workdir: Path | None = None) -> Row:
    row = Row("records-newest-wins")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-records-", dir=workdir))
    log = FaultLog()
    served = Served(root, disks=4, ec="2+2", settings={"disk_probe_s": 0.2})
    position = random.Random(f"{seed}/records").randrange(served.disks)
    disk = served.disk(position)
    moved = disk.with_name(disk.name + ".away")
    creds = {"gone-user": ("GONEKEY1", "gone-secret-1"), "kept-user": ("KEPTKEY1", "kept-sec-1")}
    try:
        served.start()
        admin = served.admin()
        for name, (access, secret) in creds.items():
            admin.add_user(name, access, secret)
        s3 = served.s3()
        s3.create_bucket(Bucket="rec-pub", ACL="public-read")
        s3.create_bucket(Bucket="rec-gone")
        s3.create_bucket(Bucket="rec-keep")
        disk.rename(moved)
        log.add("rename-away", f"{disk} -> {moved.name}")
        _wait(
            f"disk {position} offline",
            lambda: served.status()["disks"][position]["state"] == "offline",
            row,
        )
        admin.remove_user("gone-user")
        s3.put_bucket_acl(Bucket="rec-pub", ACL="private")
        s3.delete_bucket(Bucket="rec-gone")
        stale = {rel: (moved / rel).read_bytes() for rel in RECORDS}
        moved.rename(disk)
        log.add("rename-back", str(disk))
        other = served.disk((position + 1) % served.disks)
        _wait(
            f"the returned disk {position}'s records brought up to date (no command run)",
            lambda: all(_read(disk / r) == _read(other / r) for r in RECORDS),
            row,
        )
        row.problems += _check(served, creds, "after the disk came back")
        served.stop()

        for rel, blob in stale.items():
            (disk / rel).write_bytes(blob)
        log.add("stale-records", f"{len(stale)} old copies back on {disk} while stopped")
        shutil.rmtree(served.meta)
        log.add("delete-index", str(served.meta))
        served.start()
        row.problems += _check(served, creds, "after a restart with the index lost")
        admin = served.admin()
        job = admin.start_rebuild()
        deadline = time.monotonic() + SETTLE_S
        while job["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = admin.rebuild_job(job["id"])
        if job["state"] != "done":
            row.problems.append(f"rebuild-index ended {job['state']}: {job}")
        row.problems += _check(served, creds, "after an online rebuild-index")
    except Exception as exc:
        row.problems.append(f"scenario stopped: {exc!r}")
    finally:
        if moved.exists() and not disk.exists():
            moved.rename(disk)
        served.stop()
        if not row.ok:
            (root / "server.log").write_text(served.log)
            row.notes.append(f"server output in {root / 'server.log'}")
        finish(row, root, started, log)
    return row
