#!/usr/bin/env python3
"""Listing speed of the metadata index with many keys in one bucket.

Fills an s3free.meta.index.Index directly (Index.load: write batches, no shards, no disks)
with keys shaped like "backups/host-N/2026-11-DD/file-M.tar", then times one page of
list_objects for several queries: the first call after reopening the index (LevelDB's caches
empty; with --drop-caches the OS page cache too) and the median of the warm calls after it.

    python tools/bench_listing.py                      # 1,000,000 keys in a temp dir
    python tools/bench_listing.py --keys 200000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from s3free.bench.measure import drop_caches
from s3free.meta.index import Index, ListingEntry

BUCKET = "backups-bucket"
DAYS = 25  # 2026-11-01 .. 2026-11-25


def key_layout(keys: int, hosts: int) -> tuple[int, int]:
    """(hosts, files per host and day) giving at least `keys` keys."""
    hosts = max(1, min(hosts, keys))
    per_day = max(1, -(-keys // (hosts * DAYS)))
    return hosts, per_day


def generate_keys(keys: int, hosts: int) -> Iterator[str]:
    hosts, per_day = key_layout(keys, hosts)
    made = 0
    for h in range(hosts):
        for d in range(1, DAYS + 1):
            for f in range(per_day):
                if made == keys:
                    return
                yield f"backups/host-{h}/2026-11-{d:02d}/file-{f}.tar"
                made += 1


def listing_entry(n: int) -> ListingEntry:
    """A listing entry as the engine writes one (etag, mtime, size, version)."""
    return ListingEntry(
        etag=f"{n * 2654435761 % (1 << 128):032x}",
        mtime=1795000000000 + n,
        size=(n * 7919) % (1 << 34),
        version=f"0192f3a4-5b6c-7d8e-9f01-{n:012x}",
    )


def fill(index: Index, keys: int, hosts: int, manifest_bytes: int) -> list[str]:
    """Bulk-load the bucket and every key (Index.load: unsynced batches, one sync at the end);
    returns the keys in index (UTF-8 byte) order."""
    blob = os.urandom(manifest_bytes)
    written: list[str] = []

    def objects() -> Iterator[tuple[str, str, ListingEntry, bytes]]:
        for n, key in enumerate(generate_keys(keys, hosts)):
            written.append(key)
            yield BUCKET, key, listing_entry(n), blob

    bucket = {"created_ms": 1795000000000, "name": BUCKET, "owner": "bench"}
    index.load({BUCKET: bucket}, objects())
    index.set_meta({"complete": True, "set_id": "bench"})
    written.sort(key=lambda k: k.encode())
    return written


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", help="parent of the scratch index directory (default: system temp)")
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--hosts", type=int, default=200, help="distinct host-N directories")
    p.add_argument(
        "--manifest-bytes",
        type=int,
        default=600,
        help="size of the manifest record stored with each listing entry",
    )
    p.add_argument("--repeats", type=int, default=5, help="warm calls per query (median)")
    p.add_argument("--drop-caches", action="store_true", help="also drop the OS page cache")
    p.add_argument("--keep", action="store_true", help="leave the index directory behind")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    args = p.parse_args(argv)

    parent = Path(args.dir) if args.dir else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s3free-listbench-", dir=parent))
    try:
        index = Index(work / "index")
        t0 = time.perf_counter()
        ordered = fill(index, args.keys, args.hosts, args.manifest_bytes)
        fill_s = time.perf_counter() - t0
        index.close()
        hosts, per_day = key_layout(args.keys, args.hosts)
        print(
            f"filled {len(ordered):,} keys ({hosts} hosts x {DAYS} days x {per_day} files, "
            f"+{args.manifest_bytes} B manifest each) in {fill_s:.1f} s "
            f"({len(ordered) / fill_s:,.0f} keys/s); index on disk {dir_size(work) / 1e6:.0f} MB",
            flush=True,
        )
        middle = ordered[len(ordered) // 2]
        host = "backups/host-7/"
        queries = [
            ("first page, no delimiter", {}),
            ("delimiter '/' at the root", {"delimiter": "/"}),
            ("prefix backups/, delimiter '/'", {"prefix": "backups/", "delimiter": "/"}),
            (f"prefix {host}", {"prefix": host}),
            (f"prefix {host}, delimiter '/'", {"prefix": host, "delimiter": "/"}),
            ("deep page: start_after the middle key", {"start_after": middle}),
            (
                "deep page: prefix backups/, '/', after host-50/",
                {"prefix": "backups/", "delimiter": "/", "start_after": "backups/host-50/"},
            ),
            ("prefix matching nothing", {"prefix": "backups/host-none/"}),
        ]
        rows = []
        dropped = None
        for label, kwargs in queries:
            if args.drop_caches:
                dropped = drop_caches()
            index = Index(work / "index")
            try:
                t = time.perf_counter()
                page = index.list_objects(BUCKET, max_keys=1000, **kwargs)
                first_ms = (time.perf_counter() - t) * 1000
                warm = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    again = index.list_objects(BUCKET, max_keys=1000, **kwargs)
                    warm.append((time.perf_counter() - t) * 1000)
                    assert again == page
            finally:
                index.close()
            rows.append(
                {
                    "query": label,
                    "args": kwargs,
                    "first_ms": first_ms,
                    "warm_median_ms": statistics.median(warm),
                    "keys": len(page.entries),
                    "prefixes": len(page.common_prefixes),
                    "truncated": page.is_truncated,
                }
            )
        caches = {None: "OS page cache warm", True: "OS page cache dropped", False: "drop failed"}
        print(f"list_objects, max_keys=1000 (first call after reopening; {caches[dropped]})")
        print(f"  {'query':<50} {'first ms':>9} {'warm ms':>8} {'keys':>5} {'pfx':>4} trunc")
        for r in rows:
            print(
                f"  {r['query']:<50} {r['first_ms']:9.2f} {r['warm_median_ms']:8.2f} "
                f"{r['keys']:5d} {r['prefixes']:4d} {r['truncated']}"
            )
        if args.json:
            with open(args.json, "w") as f:
                json.dump(
                    {
                        "keys": len(ordered),
                        "hosts": hosts,
                        "files_per_host_day": per_day,
                        "manifest_bytes": args.manifest_bytes,
                        "fill_seconds": fill_s,
                        "index_bytes": dir_size(work),
                        "page_cache_dropped": dropped,
                        "queries": rows,
                    },
                    f,
                    indent=2,
                )
                f.write("\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
