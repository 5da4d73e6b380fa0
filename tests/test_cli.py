"""The `s3free` command line, run as a real subprocess the way a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

GROUPS = ("server", "disk", "cluster", "admin", "bench")


def s3free(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "s3free.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_the_five_command_groups():
    out = s3free("--help")
    assert out.returncode == 0
    listed = [line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines() if line]
    assert sorted(listed) == sorted(GROUPS)


@pytest.mark.parametrize(
    "args", [("disk", "add", "/x"), ("disk", "remove", "0"), ("cluster",), ("admin", "frobnicate")]
)
def test_groups_not_built_say_so_and_exit_nonzero(args):
    out = s3free(*args)
    assert out.returncode == 2
    assert "not built yet" in out.stderr
    assert args[0] in out.stderr
    assert out.stdout == ""  # nothing that could pass for a real result


def test_bench_engine_reports_figures_for_a_small_object(tmp_path):
    report = tmp_path / "bench.json"
    out = s3free(
        "bench",
        "engine",
        "--size",
        "4",
        "--repeats",
        "1",
        "--ec",
        "2+1",
        "--no-drop-caches",
        "--quiet",
        "--dir",
        str(tmp_path),
        "--json",
        str(report),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(report.read_text())
    # The benchmark verified what it read back, and measured both directions.
    assert result["checks"] == {"etag_ok": True, "get_bytes_ok": True, "get_md5_equals_etag": True}
    assert result["figures"]["put"]["median_mbps"] > 0
    assert result["figures"]["get_hot"]["median_mbps"] > 0
    assert "ratios" in out.stdout


def test_bench_engine_rejects_a_bad_erasure_code():
    out = s3free("bench", "engine", "--ec", "six")
    assert out.returncode == 2
    assert "--ec" in out.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--listen", "nowhere"), "listen"),
        (("--ec", "six"), "ec"),
        (("--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"), "tls_cert"),
        (("--tls-cert", "/etc/hostname"), "tls_cert and tls_key"),
    ],
)
def test_server_refuses_bad_settings_naming_them(tmp_path, args, named):
    out = s3free("server", "--data-dir", str(tmp_path), *args)
    assert out.returncode == 2
    assert named in out.stderr
    assert not (tmp_path / "disk1").exists()  # nothing was formatted


def test_server_refuses_an_unknown_config_key(tmp_path):
    config = tmp_path / "s3free.yaml"
    config.write_text("listen: 127.0.0.1:0\nlisten_port: 9000\n")
    out = s3free("server", "--config", str(config), "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert "listen_port" in out.stderr


def test_readme_lists_the_disk_exit_codes_the_help_gives():
    """README's list of `s3free disk` exit codes is the help's, word for word (7 was missing)."""
    from pathlib import Path

    out = s3free("disk", "--help")
    assert out.returncode == 0
    helped = " ".join(out.stdout.split("Exit status:")[1].split("Options:")[0].split())
    assert [f" {n} " in f" {helped}" for n in range(11)] == [True] * 11
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert f"Exit status (as `s3free disk --help` says): {helped}" in readme


# What `s3free server --help` says a default is, in words, -> the value it means.
_WORDS = {
    "a week": 7 * 86400.0,
    "1 MiB": 1024 * 1024,
    "off": False,
    "on": True,
    "no tracing": None,
    "chosen for the disk count": None,
    "<data-dir>/meta": None,
}


def _stated_default(help_text: str) -> str | None:
    """The default a help line states: "info (default)" or "(default[:] X[; ...|)])"."""
    import re

    before = re.search(r"(\S+) \(default\)", help_text)
    if before:
        return before.group(1)
    after = re.search(r"\(default:? ([^;)]*?)(?:: [^;)]*)?[;)]", help_text)
    return after.group(1).strip() if after else None


def _meant(words: str) -> object:
    if words in _WORDS:
        return _WORDS[words]
    number = words.removesuffix(" s")
    try:
        return float(number)
    except ValueError:
        return words.removeprefix("./")


def test_every_default_server_help_states_is_the_real_default():
    """`--access-log` said "(on)" while it is off: each default the help states is checked
    against the Config default the server really uses."""
    from s3free.cli.main import server
    from s3free.config import Config
    from s3free.storage.diskset import DEFAULT_BLOCK_SIZE

    out = s3free("server", "--help")
    assert out.returncode == 0
    assert "(on)" not in out.stdout
    real = Config()
    checked = []
    for param in server.params:
        stated = _stated_default(param.help or "")
        if stated is None or param.name not in {f.name for f in real.__dataclass_fields__.values()}:
            continue
        value = getattr(real, param.name)
        if param.name == "block_size" and value is None:
            value = DEFAULT_BLOCK_SIZE  # None: the disk set's default
        meant = _meant(stated)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
            meant = float(meant) if isinstance(meant, int) else meant
        assert meant == value, (param.name, stated, value)
        checked.append(param.name)
    # every setting with a default worth stating says it
    for name in ("data_dir", "listen", "access_log", "requests_max", "io_threads", "ec"):
        assert name in checked, name


@pytest.mark.parametrize("where", ["data-dir", "disk", "under-a-file", "meta-dir"])
def test_a_store_path_that_is_a_file_is_refused_before_anything_is_written(tmp_path, where):
    """It failed with "[Errno 17] File exists" (--data-dir) or "no disk has a readable
    format.json (... Not a directory)" (--disk): say which path and what to do instead."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    disks = [str(tmp_path / f"d{i}") for i in range(3)]
    args = ["--data-dir", str(tmp_path / "data")]
    named = f"--{where} {blocker} is a file, not a directory"
    if where == "data-dir":
        args = ["--data-dir", str(blocker)]
    elif where == "disk":
        disks[1] = str(blocker)
    elif where == "under-a-file":
        disks[1] = str(blocker / "d1")
        named = f"--disk {blocker / 'd1'} is under {blocker}, which is a file"
    else:
        args += ["--meta-dir", str(blocker)]
    if where != "data-dir":
        args += [a for d in disks for a in ("--disk", d)]
    before = sorted(p.name for p in tmp_path.iterdir())
    for command in (("server", "--listen", "127.0.0.1:0"), ("disk", "status")):
        out = s3free(*command, *args)
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert named in out.stderr
        assert "give a directory (it is created if missing)" in out.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
