"""Disks on one filesystem fail together: the server warns once at start, naming them, and
`admin info` shows the groups (a field, and a warning line in the text)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from s3free.storage.devices import device_of, shared_devices
from tests.s3.cli_support import admin, root_env
from tests.s3.raw import wait_until
from tests.support.server import start_server


def test_the_server_warns_once_when_all_disks_share_a_filesystem(tmp_path):
    srv = start_server(tmp_path / "data")
    try:
        wait_until(lambda: "one filesystem" in srv.log, timeout=30, what="the warning")
        lines = [line for line in srv.log.splitlines() if "one filesystem" in line]
        assert len(lines) == 1, lines
        assert "WARNING" in lines[0] and "disks 0 (" in lines[0] and "3 (" in lines[0], lines
        out = admin("info", "--json", "--endpoint", srv.endpoint, env=root_env(srv))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["shared_devices"] == [[0, 1, 2, 3]]
        text = admin("info", "--endpoint", srv.endpoint, env=root_env(srv))
        assert "disks 0, 1, 2, 3 share one filesystem" in text.stdout, text.stdout
        assert len([line for line in srv.log.splitlines() if "one filesystem" in line]) == 1
    finally:
        srv.stop()


def test_a_disk_not_made_yet_counts_on_its_parents_filesystem(tmp_path):
    assert device_of(tmp_path / "not" / "made" / "yet") == os.stat(tmp_path).st_dev
    assert shared_devices([tmp_path / "a", tmp_path / "b", tmp_path / "c"]) == [[0, 1, 2]]
    assert shared_devices([tmp_path / "only"]) == []


def test_disks_on_their_own_filesystems_share_nothing(tmp_path):
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem here")
    assert shared_devices([tmp_path / "d1", other / "d2"]) == []
