"""The S3 load benchmark runs end to end at a tiny scale: every GET verified, no errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).parent.parent / "tools" / "bench_s3.py"


def test_bench_s3_small_run(tmp_path):
    out_json = tmp_path / "figures.json"
    run = subprocess.run(
        [sys.executable, str(TOOL), "--scale", "0.02", "--dir", str(tmp_path), "--json",
         str(out_json)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out_json.read_text())
    results = figures["results"]
    for phase in ("put-4KiB", "get-4KiB", "put-1MiB", "get-1MiB", "put-64MiB", "get-64MiB"):
        assert results[phase]["ops"] > 0, phase
        assert results[phase]["errors"] == 0, results[phase]["first_error"]
    assert 0 < figures["server_peak_rss_mib"] < 1024
    assert "targets:" in run.stdout
