#!/usr/bin/env python3
"""Memory of `s3free server` with the settings of configs/low-memory.yaml (RS(2,2) on four
directories, 256 KiB blocks, 4 I/O threads, requests_max 8): resident memory idle, then the
peak while 8 clients at once write and read 4 KiB, 1 MiB and 64 MiB objects (every GET body
verified). The figure behind the sample's comment and docs/performance.md, "Memory".

    python tools/bench_memory.py [--dir /mnt/scratch]

Every phase is bounded in operations and seconds; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

from s3free.bench.s3load import Workload, run_load
from s3free.bench.spawn import spawn_server
from s3free.bench.tempserver import peak_rss_mib, stop_server

SETTINGS = {  # configs/low-memory.yaml
    "S3FREE_BLOCK_SIZE": "262144",
    "S3FREE_IO_THREADS": "4",
    "S3FREE_REQUESTS_MAX": "8",
    "S3FREE_LOG_LEVEL": "warning",
}
WORKLOADS = [  # as many clients as requests_max lets in at once
    Workload("4KiB", 4096, 2000, 8, 30),
    Workload("1MiB", 1 << 20, 200, 8, 30),
    Workload("64MiB", 64 << 20, 16, 8, 60),
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", help="parent of the scratch directory (default: system temp)")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="s3free-memory-", dir=args.dir))
    access, secret = "MEM" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24)
    server_args = ["--listen", "127.0.0.1:0", "--meta-dir", str(root / "meta"), "--ec", "2+2"]
    for i in range(4):
        server_args += ["--disk", str(root / f"disk{i}")]
    env = {**SETTINGS, "S3FREE_ACCESS_KEY": access, "S3FREE_SECRET_KEY": secret}
    proc = None
    try:
        proc, endpoint, _ = spawn_server(server_args, env)
        idle = peak_rss_mib(proc.pid)
        results = asyncio.run(run_load(endpoint, access, secret, workloads=WORKLOADS, say=print))
        peak = peak_rss_mib(proc.pid)
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(root, ignore_errors=True)
    failed = [name for name, r in results.items() if r["errors"] or r["verify_failures"]]
    print(f"server resident memory: {idle:.0f} MiB idle, {peak:.0f} MiB at the peak")
    if failed:
        print(f"errors in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
