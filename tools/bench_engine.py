#!/usr/bin/env python3
"""Engine PUT/GET throughput next to this machine's ceilings (see s3free/bench/engine.py).

Examples:

    python tools/bench_engine.py                       # 256 MiB, RS(6,3), 3 runs, temp dir
    python tools/bench_engine.py --dir /mnt/data --size 1024 --json out.json
    python tools/bench_engine.py --phases put          # only the PUT (for a profiler)
"""

from __future__ import annotations

import argparse
import json
import sys

from s3free.bench.engine import BenchConfig, MiB, format_table, run_engine_bench

PHASES = ("ceilings", "put", "get")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", help="where to create the scratch directory (default: system temp)")
    p.add_argument("--size", type=float, default=256, help="object size in MiB (default 256)")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure; median reported")
    p.add_argument("--k", type=int, default=6)
    p.add_argument("--m", type=int, default=3)
    p.add_argument("--block-size", type=float, default=1, help="engine block size in MiB")
    p.add_argument("--chunk", type=int, default=64, help="PUT stream chunk size in KiB")
    p.add_argument("--io-threads", type=int, default=32)
    p.add_argument("--no-drop-caches", action="store_true", help="skip the cold-read figures")
    p.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}"
    )
    p.add_argument("--keep", action="store_true", help="leave the scratch directory behind")
    p.add_argument("--json", metavar="PATH", help="also write every figure as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = p.parse_args(argv)
    phases = tuple(x.strip() for x in args.phases.split(",") if x.strip())
    unknown = set(phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    config = BenchConfig(
        dir=args.dir,
        size=int(args.size * MiB),
        repeats=args.repeats,
        k=args.k,
        m=args.m,
        block_size=int(args.block_size * MiB),
        chunk=args.chunk * 1024,
        drop_caches=not args.no_drop_caches,
        io_threads=args.io_threads,
        phases=phases,
        keep=args.keep,
    )
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_engine_bench(config, log=log)
    print(format_table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
