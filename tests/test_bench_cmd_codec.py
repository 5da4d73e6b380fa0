"""`s3free bench codec` run as a user runs it: every ceiling measured (> 0), a verdict for PUT
and GET, its temp files gone; bad arguments are usage errors."""

from __future__ import annotations

import json

import pytest

from tests.s3.cli_support import base_env, s3free_cli


def test_codec_measures_every_ceiling_and_gives_a_verdict(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    out = tmp_path / "codec.json"
    run = s3free_cli(
        "bench", "codec", "--ec", "4+2", "--size", "2", "--path", str(disk), "--json", str(out),
        env=base_env(),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text())
    assert (result["config"]["k"], result["config"]["m"]) == (4, 2)
    names = {"md5", "encode_zfec", "encode_codec", "decode", "blake3", "crc32c", "write_fsync",
             "read_cold"}  # fmt: skip
    assert set(result["mb_per_s"]) == names
    assert all(v > 0 for v in result["mb_per_s"].values()), result["mb_per_s"]
    small = result["small_files"]
    assert small["create_fsync_per_s"] > 0 and small["create_per_s"] > 0
    assert small["open_read_per_s"] > 0 and small["files_fsynced"] > 0
    assert result["codec_path"] in ("isa-l", "zfec")
    verdict = result["verdict"]
    for name in ("put_large", "get_large", "get_large_degraded"):
        v = verdict[name]
        assert v["mb_per_s"] == min(v["cpu_mb_per_s"], v["disk_mb_per_s"]) > 0
        assert v["bound"]
        assert abs(sum(v["cpu_share"].values()) - 1) < 1e-9
    assert "decode" in verdict["get_large_degraded"]["cpu_share"]
    assert verdict["put_4k"]["one_request_ops_per_s"] > 0 and verdict["put_4k"]["bound"]
    assert verdict["get_4k"]["ops_per_s"] > 0 and verdict["get_4k"]["bound"]
    assert "verdict" in run.stdout and "put_large" in run.stdout
    assert list(disk.iterdir()) == []  # its temp files are removed


@pytest.mark.parametrize(
    "args, words",
    [
        (["--ec", "0+1"], "--ec"),
        (["--ec", "six"], "--ec"),
        (["--size", "0"], "--size"),
        (["--path", "/nonexistent/s3free-bench"], "--path"),
    ],
)
def test_codec_bad_arguments_exit_2(args, words):
    run = s3free_cli("bench", "codec", *args, env=base_env())
    assert run.returncode == 2, run.stdout + run.stderr
    assert words in run.stderr and run.stdout == ""
