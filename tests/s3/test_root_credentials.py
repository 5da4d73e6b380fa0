"""Generated root credentials live with the store (beside its index directory), not in the
working directory; an old <data dir>/credentials.json is still found; a start that fails
writes none."""

from __future__ import annotations

import json
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from s3free.bench.spawn import spawn_server
from tests.s3.cli_support import base_env

NO_KEYS = {"S3FREE_ACCESS_KEY": "", "S3FREE_SECRET_KEY": ""}
PAIR = re.compile(r"AWS_ACCESS_KEY_ID=(\S+)\s+AWS_SECRET_ACCESS_KEY=(\S+)")


def store_args(root: Path) -> list[str]:
    disks = [a for i in range(3) for a in ("--disk", str(root / f"disk{i}"))]
    return [*disks, "--meta-dir", str(root / "index"), "--listen", "127.0.0.1:0"]


def serve(args: list[str], cwd: Path) -> tuple[subprocess.Popen, str, list[str]]:
    return spawn_server(args, {**base_env(), **NO_KEYS}, cwd=str(cwd))


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    assert proc.wait(30) == 0


def buckets(endpoint: str, access: str, secret: str) -> list[str]:
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=access, aws_secret_access_key=secret,
    )  # fmt: skip
    return [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_keys_stay_with_the_store_when_started_from_another_directory(tmp_path):
    store, here, there = tmp_path / "store", tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    proc, endpoint, output = serve(store_args(store), here)
    try:
        found = PAIR.search("".join(output))
        assert found, "".join(output)
        access, secret = found.groups()
        kept = store / "index.credentials.json"
        assert json.loads(kept.read_text()) == {"access_key": access, "secret_key": secret}
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert buckets(endpoint, access, secret) == []
    finally:
        stop(proc)
    assert list(here.iterdir()) == []  # nothing in the working directory
    proc, endpoint, output = serve(store_args(store), there)
    try:
        assert "AWS_SECRET_ACCESS_KEY" not in "".join(output)  # no new keys
        assert buckets(endpoint, access, secret) == []  # the same keys work
    finally:
        stop(proc)
    assert list(there.iterdir()) == []


def test_an_old_data_dir_credentials_file_is_still_used(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    old = {"access_key": "OLDROOTKEY0123", "secret_key": "old-root-secret-0123456789"}
    (data / "credentials.json").write_text(json.dumps(old))
    args = ["--data-dir", str(data), "--listen", "127.0.0.1:0"]
    proc, endpoint, output = serve(args, tmp_path)
    try:
        assert "AWS_SECRET_ACCESS_KEY" not in "".join(output)  # not new keys
        assert buckets(endpoint, old["access_key"], old["secret_key"]) == []
        assert json.loads((data / "meta.credentials.json").read_text()) == old
        assert not (data / "credentials.json").exists()  # moved, within the store
    finally:
        stop(proc)


@pytest.mark.parametrize("why", ["port in use", "disk is a file", "bad flag"])
def test_a_start_that_fails_writes_no_credentials(tmp_path, why):
    store = tmp_path / "store"
    args = store_args(store)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if why == "port in use":
            args[-1] = f"127.0.0.1:{busy.getsockname()[1]}"
        elif why == "disk is a file":
            store.mkdir()
            (store / "disk1").write_text("a file")
        else:
            args += ["--ec", "nine"]
        out = subprocess.run(
            [sys.executable, "-m", "s3free.cli.main", "server", *args],
            capture_output=True, text=True, env={**base_env(), **NO_KEYS}, cwd=tmp_path,
            timeout=120,
        )  # fmt: skip
    assert out.returncode != 0, out.stdout
    assert "AWS_SECRET_ACCESS_KEY" not in out.stdout
    written = [p for p in tmp_path.rglob("*credentials*")]
    assert written == []
