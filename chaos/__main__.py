"""`python -m chaos [--long] [--scenario NAME ...] [--seed N]`: run the suite, print the table.

Exit status 0 when every scenario passed, 1 otherwise (details printed under the table)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from chaos import suite
from chaos.report import details, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument(
        "--long", action="store_true", help="1 MiB blocks, bigger objects, more rounds"
    )
    parser.add_argument("--scenario", action="append", choices=suite.names(), help="repeatable")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="where temp disks go")
    args = parser.parse_args(argv)
    chosen = args.scenario or [e.name for e in suite.ENTRIES if args.long or e.fast]
    print(
        f"chaos: {len(chosen)} scenario(s), {'long' if args.long else 'fast'} profile, "
        f"seed {args.seed}",
        flush=True,
    )
    rows = []
    started = time.monotonic()
    for name in chosen:
        row = suite.run_one(name, long=args.long, seed=args.seed, workdir=args.workdir)
        rows.append(row)
        print(f"  {name}: {'PASS' if row.ok else 'FAIL'} ({row.seconds:.1f} s)", flush=True)
    print()
    print(table(rows))
    print(f"\n{sum(r.ok for r in rows)}/{len(rows)} passed in {time.monotonic() - started:.0f} s\n")
    print(details(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
