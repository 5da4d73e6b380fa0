"""`s3free bench s3` run as a user runs it: against a real server (--endpoint) and against the
temporary server it starts itself; figures sane, every GET verified, nothing left behind, and a
body changed behind the bench's back reported as a verify failure with a non-zero exit."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from tests.s3.cli_support import base_env, root_env, s3free_cli
from tests.support.server import start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("bench-cmd-srv"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def s3(server):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def bench_s3(*args: str, env: dict[str, str], timeout: float = 90):
    return s3free_cli("bench", "s3", *args, env=env, timeout=timeout)


def check_sane(result: dict, ops: list[str]) -> None:
    assert set(result["results"]) == set(ops), result["results"]
    for name in ops:
        r = result["results"][name]
        assert r["ops"] > 0, name
        assert r["errors"] == 0 and r["verify_failures"] == 0, r["first_error"]
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"], r
        assert r["ops_per_s"] > 0
    assert result["errors"] == 0 and result["verify_failures"] == 0
    assert result["total"]["ops"] == sum(result["results"][n]["ops"] for n in ops)


def test_mixed_against_an_endpoint(server, s3, tmp_path):
    out = tmp_path / "mixed.json"
    run = bench_s3(
        "--endpoint", server.endpoint, "--op", "mixed", "--size", "4KiB", "--concurrency", "4",
        "--duration", "2", "--objects", "40", "--json", str(out), env=root_env(server),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    check_sane(result, ["GET", "STAT", "PUT", "DELETE"])
    get = result["results"]["GET"]
    assert result["verified_bytes"] == get["ops"] * 4096 == get["bytes"]
    assert result["results"]["PUT"]["mb_per_s"] > 0
    assert 1.5 < result["seconds"] < 10
    # Warp's mix: GETs are the most frequent operation, DELETEs the least.
    counts = {n: r["ops"] for n, r in result["results"].items()}
    assert counts["GET"] > counts["DELETE"]
    # The table and the live progress line (stderr is not a TTY: whole lines).
    assert "GET bodies verified" in run.stdout and "p90 ms" in run.stdout
    assert any(line.startswith("mixed:") for line in run.stderr.splitlines()), run.stderr
    # Everything it made is gone, the bucket too.
    assert result["cleanup"]["bucket_removed"] and result["cleanup"]["errors"] == 0
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert result["bucket"] not in names


def test_without_endpoint_starts_and_removes_a_temporary_server(tmp_path):
    out = tmp_path / "get.json"
    run = bench_s3(
        "--op", "get", "--size", "1MiB", "--concurrency", "2", "--duration", "1",
        "--objects", "6", "--dir", str(tmp_path), "--json", str(out), "--no-progress",
        env=base_env(),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stderr == ""  # --no-progress
    result = json.loads(out.read_text())
    check_sane(result, ["GET"])
    assert result["verified_bytes"] == result["results"]["GET"]["ops"] << 20
    server = result["server"]
    assert (server["k"], server["m"], server["disks"]) == (6, 3, 9)
    assert 0 < server["peak_rss_mib"] < 1024
    assert result["endpoint"].startswith("http://127.0.0.1:")
    assert [p.name for p in tmp_path.iterdir()] == ["get.json"]  # its directory is gone


def test_a_body_changed_behind_its_back_is_a_verify_failure(server, s3, bucket_name="tampered"):
    """A second writer overwrites each object the bench wrote, once, with other bytes of the
    same length: every GET of it must fail verification, and the run must exit 1."""
    s3.create_bucket(Bucket=bucket_name)
    stop = threading.Event()
    tampered: set[str] = set()

    def tamper() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            for item in s3.list_objects_v2(Bucket=bucket_name).get("Contents", []):
                if item["Key"] not in tampered and item["Size"] == 4096:
                    s3.put_object(Bucket=bucket_name, Key=item["Key"], Body=b"\0" * 4096)
                    tampered.add(item["Key"])
            stop.wait(0.05)

    thread = threading.Thread(target=tamper, daemon=True)
    thread.start()
    try:
        out = server.data_dir / "tampered.json"
        run = bench_s3(
            "--endpoint", server.endpoint, "--bucket", bucket_name, "--op", "get",
            "--size", "4KiB", "--concurrency", "2", "--objects", "4", "--duration", "2",
            "--json", str(out), "--no-progress", env=root_env(server),
        )  # fmt: skip
    finally:
        stop.set()
        thread.join(30)
    assert tampered, "the second writer saw no object"
    assert run.returncode == 1, run.stdout + run.stderr
    result = json.loads(out.read_text())
    get = result["results"]["GET"]
    assert get["verify_failures"] > 0 and result["verify_failures"] == get["verify_failures"]
    assert "differ from what was written" in get["first_error"]
    assert "verify failures" in run.stdout
    # The bucket was the user's: kept, but emptied of what the run wrote.
    assert not result["cleanup"]["bucket_removed"]
    assert s3.list_objects_v2(Bucket=bucket_name).get("KeyCount", 0) == 0
    s3.delete_bucket(Bucket=bucket_name)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--size", "0"], "--size"),
        (["--size", "12parsecs"], "--size"),
        (["--op", "scan"], "--op"),
        (["--duration", "99999"], "--duration"),
        (["--concurrency", "4", "--objects", "2"], "--objects"),
        (["--endpoint", "ftp://127.0.0.1:9"], "--endpoint"),
        (["--endpoint", "http://127.0.0.1:9", "--ec", "4+2"], "temporary server only"),
        (["--endpoint", "http://127.0.0.1:9"], "S3FREE_ACCESS_KEY"),
        (["--endpoint", "http://127.0.0.1:9", "--access-key", "A"], "go together"),
        (["--ec", "6+3", "--disks", "4"], "--disks"),
        (["--ec", "0+2"], "--ec"),
        (["--bucket", "No_Such"], "--bucket"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, words, monkeypatch):
    """In-process (click's runner calls the real command; a subprocess each would cost ~1 s)."""
    from click.testing import CliRunner

    from s3free.cli.main import main

    for name in base_env().keys() ^ os.environ.keys():
        monkeypatch.delenv(name)
    run = CliRunner().invoke(main, ["bench", "s3", *args])
    assert run.exit_code == 2, run.output
    assert words in run.stderr, run.stderr
    assert run.stdout == ""


def test_bad_arguments_from_the_real_command():
    run = bench_s3("--size", "0", env=base_env())
    assert run.returncode == 2 and "--size" in run.stderr and run.stdout == ""


def test_unreachable_endpoint_exits_1(server):
    run = bench_s3(
        "--endpoint", "http://127.0.0.1:9", "--duration", "1", "--no-progress",
        env=root_env(server),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert "s3free bench s3:" in run.stderr and "127.0.0.1:9" in run.stderr


def test_https_endpoint_needs_its_ca(tmp_path):
    """Certificates are verified: a self-signed server fails without --ca-bundle, passes with it
    (and with --insecure)."""
    srv = start_server(tmp_path / "tls", tls=True)
    try:
        common = ["--endpoint", srv.endpoint, "--op", "list", "--objects", "2",
                  "--concurrency", "1", "--duration", "0.5", "--no-progress"]  # fmt: skip
        refused = bench_s3(*common, env=root_env(srv))
        assert refused.returncode == 1 and "certificate" in refused.stderr.lower(), refused.stderr
        out = tmp_path / "tls.json"
        run = bench_s3(*common, "--ca-bundle", srv.ca_file, "--json", str(out), env=root_env(srv))
        assert run.returncode == 0, run.stdout + run.stderr
        check_sane(json.loads(out.read_text()), ["LIST"])
        run = bench_s3(*common, "--insecure", env=root_env(srv))
        assert run.returncode == 0, run.stdout + run.stderr
    finally:
        srv.stop()


def test_progress_rewrites_one_line_on_a_terminal():
    import io

    from s3free.bench.s3bench import Progress
    from s3free.bench.s3load import PhaseResult

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stats = {"GET": PhaseResult("GET", 4096, 1, ops=10)}
    tty, log = Terminal(), io.StringIO()
    for out in (tty, log):
        show = Progress(out, "get")
        show.show(show.line(stats))
        show.show(show.line(stats), final=True)
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().count("\n") == 1
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 2
    assert "10 ops" in log.getvalue() and "MB/s" in log.getvalue()
    assert Progress(tty, "x").interval < Progress(log, "x").interval
