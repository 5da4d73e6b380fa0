"""The healing benchmark runs end to end at a tiny scale and its figures are sane: positive
rates, a heal that checked every object and lost none, GET fractions in (0, 2]."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).parent.parent / "tools" / "bench_heal.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_heal", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # two server processes and five 1-second windows: about 12 s
def test_bench_heal_small_run(tmp_path, capsys):
    out_json = tmp_path / "figures.json"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    code = _load().main(
        ["--scale", "0.004", "--window", "1", "--probe-s", "0.5", "--dir", str(scratch),
         "--json", str(out_json)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    fig = json.loads(out_json.read_text())
    assert code == 0, printed
    assert fig["problems"] == []
    assert list(scratch.iterdir()) == []  # the scratch directory was removed
    objects = fig["dataset"]["objects"]
    assert objects > 10 and fig["dataset"]["shard_bytes"] > fig["dataset"]["bytes"] > 0
    ceilings = ("read_cold", "read_warm", "blake3_block", "crc32c", "rs_encode")
    for name in ceilings:
        assert fig["ceilings"][name] > 0, name
    for name in ("scrub_uncapped", "verify_after_heal"):
        job = fig[name]
        assert job["objects_checked"] == objects and job["bytes_checked"] > 0
        assert job["shards_bad"] == job["repaired"] == job["unrepairable"] == 0
        assert job["seconds"] > 0
    assert fig["scrub_capped"]["bytes"] > 0 and fig["scrub_capped"]["seconds"] > 0
    # The cap holds: never faster than 8 MB/s of shard bytes (a little slack for the edges).
    assert fig["scrub_capped"]["bytes"] / fig["scrub_capped"]["seconds"] < 8e6 * 1.3
    heal = fig["heal"]
    assert heal["job"]["objects_checked"] == objects and heal["job"]["repaired"] == objects
    assert heal["job"]["unrepairable"] == 0 and heal["seconds"] > 0
    assert heal["healed_bytes"] > 0 and heal["monitor_online_s"] is not None
    for name in ("get_idle_a", "get_scrub_uncapped", "get_idle_b", "get_scrub_capped"):
        assert fig[name]["ops"] > 0 and fig[name]["errors"] == 0 and fig[name]["mb_per_s"] > 0
    for name in ("get_scrub_uncapped", "get_scrub_capped"):
        assert 0 < fig[name]["fraction"] <= 2, name
    assert "1. scrub" in printed and "2. heal" in printed and "3. 1 MiB GETs" in printed
