#!/usr/bin/env python3
"""S3 load benchmark: starts `s3free server` with RS(6,3) on 9 directories (or uses --endpoint),
then runs 4 KiB, 1 MiB and 64 MiB PUT and GET phases, verifying every GET body, and reports
ops/s, MB/s, p50/p99 latency and the server's peak RSS.

    python tools/bench_s3.py                          # temp dirs under /tmp, default workloads
    python tools/bench_s3.py --dir /mnt/scratch --json out.json
    python tools/bench_s3.py --endpoint http://127.0.0.1:9000   # any S3 server (keys from env)

Every phase is bounded in operations and seconds; only 127.0.0.1 is used when it starts the server.
This is the fixed benchmark behind the S3 figures in docs/performance.md; `s3free bench s3` is the
user-facing command (one timed operation mix, any endpoint)
built on the same load generator and launcher.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from s3free.bench import tempserver
from s3free.bench.s3load import DEFAULT_WORKLOADS, Workload, run_load
from s3free.bench.tempserver import peak_rss_mib, stop_server

__all__ = ["peak_rss_mib", "start_server"]  # tools/bench_heal.py starts its server with these

TARGETS = {  # from the S3 API issue, for this 2-core machine
    "get-4KiB": ("ops_per_s", 1500),
    "put-4KiB": ("ops_per_s", 400),
    "put-64MiB": ("mb_per_s", 150),
    "get-64MiB": ("mb_per_s", 600),
}


def start_server(
    root: Path, access: str, secret: str, settings: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """`s3free server` on 127.0.0.1 (a free port), RS(6,3) on root/disk1..9; settings are
    extra environment variables (S3FREE_<SETTING>). Exits with the server's output if it
    does not start."""
    try:
        return tempserver.start_server(root, access, secret, settings)
    except RuntimeError as exc:
        raise SystemExit(f"the server did not start: {exc}") from None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--endpoint", help="benchmark this S3 endpoint instead of starting s3free")
    p.add_argument("--dir", help="parent of the scratch directory (default: system temp)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply op counts and time limits")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args()
    workloads = [
        Workload(
            w.name, w.size, max(1, int(w.count * args.scale)), w.concurrency, w.seconds * args.scale
        )
        for w in DEFAULT_WORKLOADS
    ]
    proc = None
    scratch = None
    if args.endpoint:
        endpoint = args.endpoint
        access, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    else:
        scratch = Path(tempfile.mkdtemp(prefix="s3free-bench-s3-", dir=args.dir))
        access, secret = "BENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24)
        try:
            proc, endpoint = start_server(scratch, access, secret)
        except SystemExit:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    print(f"s3free S3 load benchmark against {endpoint} ({os.cpu_count()} CPUs, client and "
          "server on the same machine)", flush=True)  # fmt: skip
    try:
        results = asyncio.run(run_load(endpoint, access, secret, workloads=workloads))
        rss = peak_rss_mib(proc.pid) if proc else None
    finally:
        if proc:
            stop_server(proc)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if rss is not None:
        print(f"  server peak RSS {rss:.0f} MiB (target < 300 MiB)")
    print("targets:")
    for phase, (metric, target) in TARGETS.items():
        value = results.get(phase, {}).get(metric, 0)
        unit = "ops/s" if metric == "ops_per_s" else "MB/s"
        verdict = "ok" if value >= target else "BELOW"
        print(f"  {phase:<10} {value:>8.1f} {unit} (target >= {target}) {verdict}")
    errors = sum(r["errors"] for r in results.values())
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "server_peak_rss_mib": rss}, indent=2, sort_keys=True)
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
