"""One server per store (issue 11, failure 3): two servers with the same disks and different
index directories both served, and a delete through one left a listed, unreadable ghost on the
other. Every disk directory is now locked by the process using it; a second server or an
offline command is refused naming the holder; a killed holder's lock is taken over."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.s3.cli_support import base_env, disk
from tests.s3.raw import disks
from tests.support.server import ACCESS_KEY, SECRET_KEY, make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.1"}


def second_server(paths: list[Path], meta: Path) -> subprocess.CompletedProcess:
    args = [a for p in paths for a in ("--disk", str(p))]
    args += ["--meta-dir", str(meta), "--listen", "127.0.0.1:0"]
    return subprocess.run(
        [sys.executable, "-m", "s3free.cli.main", "server", *args],
        env={**base_env(), "S3FREE_ACCESS_KEY": ACCESS_KEY, "S3FREE_SECRET_KEY": SECRET_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )


def locked_by_someone(path: Path) -> bool:
    """Whether another process holds the directory's flock (tried from a child process)."""
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n    sys.exit(3)\n"
    )
    return subprocess.run([sys.executable, "-c", probe, str(path)]).returncode == 3


def test_a_second_server_on_the_same_disks_is_refused_and_a_killed_ones_lock_is_taken(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, env=FAST)
    try:
        s3 = make_client(first)
        s3.create_bucket(Bucket="one")
        s3.put_object(Bucket="one", Key="k", Body=b"before")
        paths = disks(first)
        out = second_server(paths, tmp_path / "other-meta")
        said = out.stdout + out.stderr
        assert out.returncode != 0, said
        assert f"pid {first.proc.pid}" in said and "in use" in said, said
        assert "ready" not in said
        # Offline commands on the disks are refused too, naming the holder.
        direct = [a for p in paths for a in ("--disk", str(p))]
        out = disk("status", *direct, "--meta-dir", str(tmp_path / "m2"), env=base_env())
        assert out.returncode == 6, (out.stdout, out.stderr)
        assert f"pid {first.proc.pid}" in out.stderr, out.stderr
        # The first server is untouched and serves on.
        s3.put_object(Bucket="one", Key="k2", Body=b"after")
        s3.delete_object(Bucket="one", Key="k2")
        assert s3.get_object(Bucket="one", Key="k")["Body"].read() == b"before"
        assert not (tmp_path / "other-meta").exists() or not any(
            (tmp_path / "other-meta").iterdir()
        )
    finally:
        first.stop(signal.SIGKILL)
    # A killed holder leaves no lock behind: the next server takes over at once.
    again = start_server(data, env=FAST)
    try:
        s3 = make_client(again)
        assert s3.get_object(Bucket="one", Key="k")["Body"].read() == b"before"
        assert all(locked_by_someone(p) for p in disks(again))
    finally:
        again.stop()


def test_a_disk_away_at_start_or_replaced_is_locked_when_it_comes_in(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, env=FAST)
    paths = disks(first)
    first.stop()
    away = paths[1].with_name(paths[1].name + ".away")
    paths[1].rename(away)
    srv = start_server(data, env=FAST)
    try:
        assert not locked_by_someone(away)  # not in use: nobody may have locked it
        away.rename(paths[1])
        deadline = time.monotonic() + 30
        while not locked_by_someone(paths[1]):
            assert time.monotonic() < deadline, srv.log
            time.sleep(0.1)
        # A directory replaced by a new empty one is formatted in, and locked too.
        shutil.rmtree(paths[2])
        paths[2].mkdir()
        # The lock is taken before the format is written: wait for both.
        deadline = time.monotonic() + 30
        while not (locked_by_someone(paths[2]) and (paths[2] / "format.json").exists()):
            assert time.monotonic() < deadline, (
                "the replacement disk was never locked and formatted"
            )
            time.sleep(0.1)
        assert locked_by_someone(paths[2])
    finally:
        srv.stop()
