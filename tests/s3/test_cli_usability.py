"""What a new user hit (issue 11, "smaller things"): keys that stay with the store, paths that
are files, help that states the real defaults, exit codes that match the help."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from s3free.bench.spawn import spawn_server
from s3free.config import Config
from tests.s3.cli_support import base_env, disk, root_env
from tests.s3.conftest import make_client
from tests.s3.server import start_server

NO_KEYS = {"S3FREE_ACCESS_KEY": "", "S3FREE_SECRET_KEY": ""}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "s3free.cli.main", *args],
        env={**base_env(), **NO_KEYS},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_server_help_states_the_real_defaults():
    text = " ".join(cli("server", "--help").stdout.split())
    defaults = Config()
    assert "A line per S3 request (default off)" in text and defaults.access_log is False
    stated = {
        "--listen": defaults.listen,
        "--region": defaults.region,
        "--io-threads": str(defaults.io_threads),
        "--disk-probe-s": f"{defaults.disk_probe_s:g} s",
        "--scrub-rate-mb-s": f"{defaults.scrub_rate_mb_s:g}",
        "--scrub-files-per-s": f"{defaults.scrub_files_per_s:g}",
        "--orphan-grace-s": f"{defaults.orphan_grace_s:g}",
    }
    for flag, value in stated.items():
        help_of = re.search(re.escape(flag) + r" TEXT (.*?)(?= --|$)", text)
        assert help_of and f"default {value}" in help_of.group(1), (flag, value, text)


def test_a_disk_or_data_dir_that_is_a_file_is_named_and_nothing_is_written(tmp_path):
    afile = tmp_path / "not-a-dir"
    afile.write_text("x")
    others = [tmp_path / "d2", tmp_path / "d3"]
    meta = tmp_path / "meta"
    args = ["--disk", str(afile), *[a for d in others for a in ("--disk", str(d))]]
    out = cli("server", *args, "--meta-dir", str(meta), "--listen", "127.0.0.1:0")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert f"{str(afile)!r} is a file, not a directory" in out.stderr and "--disk" in out.stderr
    out2 = cli("server", "--data-dir", str(afile), "--listen", "127.0.0.1:0")
    assert out2.returncode == 2 and "--data-dir" in out2.stderr, out2.stderr
    out3 = cli("server", "--data-dir", str(afile / "sub"), "--listen", "127.0.0.1:0")
    assert out3.returncode == 2 and "cannot be made" in out3.stderr, out3.stderr
    # Nothing was written: no disk made, no index, no keys.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


def test_generated_keys_stay_with_the_store_whatever_the_working_directory(tmp_path):
    disks = [tmp_path / "store" / f"d{i}" for i in range(4)]
    meta = tmp_path / "store" / "index"
    args = [a for d in disks for a in ("--disk", str(d))]
    args += ["--meta-dir", str(meta), "--listen", "127.0.0.1:0"]
    first, second = tmp_path / "cwd1", tmp_path / "cwd2"
    first.mkdir()
    second.mkdir()
    env = {**base_env(), **NO_KEYS, "PYTHONPATH": str(Path(__file__).parents[2])}
    proc, endpoint, output = spawn_server(args, env, cwd=str(first))
    try:
        log = "".join(output)
        found = re.search(r"export S3FREE_ACCESS_KEY=(\S+) S3FREE_SECRET_KEY=(\S+)", log)
        assert found, log
        keys = found.groups()
        assert (tmp_path / "store" / "index.credentials.json").is_file()
        assert not list(first.iterdir())  # nothing in the working directory
    finally:
        proc.terminate()
        proc.wait(30)
    proc, endpoint, output = spawn_server(args, env, cwd=str(second))
    try:
        assert "generated root" not in "".join(output)  # the kept pair, not a new one
        server = type("S", (), {"endpoint": endpoint, "access_key": keys[0], "secret_key": keys[1],
                                "ca_file": None})()  # fmt: skip
        make_client(server).create_bucket(Bucket="same-keys")
        assert not list(second.iterdir())
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_failed_start_writes_no_keys(tmp_path):
    data = tmp_path / "data"
    (data / "disk1").mkdir(parents=True)
    (data / "disk1" / "format.json").write_text("{not json")  # a disk of no known set
    out = cli("server", "--data-dir", str(data), "--listen", "127.0.0.1:0")
    assert out.returncode != 0, out.stdout
    assert not list(data.glob("*credentials*")), list(data.iterdir())


def test_repair_of_a_missing_key_and_replace_of_no_such_disk_fail_with_their_codes(tmp_path):
    srv = start_server(tmp_path / "data")
    try:
        make_client(srv).create_bucket(Bucket="bkt")
        env = root_env(srv)
        out = disk("repair", "--bucket", "bkt", "--object", "nosuchkey", "--wait",
                   "--endpoint", srv.endpoint, env=env)  # fmt: skip
        assert out.returncode == 1, (out.stdout, out.stderr)
        assert "bkt/nosuchkey does not exist" in out.stdout + out.stderr
        out = disk("replace", "12", "--endpoint", srv.endpoint, env=env)
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert "not a disk of this set" in out.stderr
    finally:
        srv.stop()


def test_keys_an_older_version_kept_in_the_data_dir_are_still_used(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "credentials.json").write_text(
        '{"access_key": "OLDROOTKEY0001", "secret_key": "old-root-secret-123"}'
    )
    srv = start_server(data, env=NO_KEYS)
    try:
        assert "generated root" not in srv.log
        srv.access_key, srv.secret_key = "OLDROOTKEY0001", "old-root-secret-123"
        make_client(srv).create_bucket(Bucket="old-keys")
        assert not (data / "meta.credentials.json").exists()
    finally:
        srv.stop()
