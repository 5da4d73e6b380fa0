"""The victim of tests/test_crash.py: a store under a steady write load, killed at random.

    python tests/crash_child.py <root> <seed> <gen_base> [--max-ops N] [--max-seconds S]
                                [--ops "put k0,put k0,del k0,mpu k1"] [--die-at OP:TEXT:N:WHEN]

Opens an ObjectStore on <root>/disk0..5 (RS(4,2), 64 KiB blocks, min_part_size=1, index in
<root>/meta) and loops over seeded random operations on a few keys of bucket "crash":
put, multipart upload + complete, delete. Every write stores content(key, gen), fully
determined by (key, generation), so the parent can check any object byte for byte; gen counts
up from <gen_base>, which the parent makes unique per run. Protocol, one line each, flushed:

    READY                      the store is open (start-up cleanup and any rebuild are done)
    BEGIN put|mpu <key> <gen>  a write of content(key, gen) starts
    BEGIN del <key> -          a delete starts
    PARTS <key> <upload> <n:etag,...>  a multipart write's parts are in; its complete starts
    ACK <same fields>          that operation returned (it is durable and visible)
    DONE                       the loop ended on its bounds (the parent kills it before)

At most one operation is in flight at a time, so after a kill the parent knows exactly what
each key may hold: its last acknowledged state, or the result of the one BEGIN without ACK.

--ops replaces the random operations with a fixed list. --die-at puts a crash at an exact
point: every disk is wrapped in a FaultyDisk whose OP calls (write_file, remove, remove_tree)
on paths containing TEXT are counted over all disks, and the N-th one SIGKILLs this process
"before" or "after" it runs (e.g. write_file:/manifest:7:after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

BUCKET = "crash"
KEYS = ["k0", "k1", "k2", "k3", "dir/k4", "dir/k5", "dir/sub/k6", "z7"]
DISKS = 6
K, M = 4, 2
BLOCK_SIZE = 64 * 1024
# empty, tiny, around one block and its edges, and several blocks with a short last one
SIZES = [0, 1, 4097, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 150_000, 4 * BLOCK_SIZE + 7]


def content(key: str, gen: int) -> bytes:
    """The bytes every write of (key, gen) stores: size and data derived from a hash."""
    seed = f"{key}\x00{gen}".encode()
    size = SIZES[hashlib.blake2b(seed, digest_size=8).digest()[0] % len(SIZES)]
    return hashlib.shake_256(seed + b"\x00data").digest(size) if size else b""


def part_splits(key: str, gen: int) -> list[tuple[int, int]]:
    """How a multipart write of (key, gen) cuts content(key, gen) into parts: 1-3 parts, each
    but the last non-empty."""
    size = len(content(key, gen))
    rng = random.Random(f"{key}\x00{gen}\x00parts")
    cuts = sorted({rng.randrange(1, size) for _ in range(rng.randrange(0, 3))}) if size > 1 else []
    bounds = [0, *cuts, size]
    return list(itertools.pairwise(bounds))


def disk_paths(root: Path) -> list[Path]:
    return [root / f"disk{i}" for i in range(DISKS)]


class Trigger:
    """Counts matching disk calls over all disks and SIGKILLs the process at the chosen one."""

    def __init__(self, spec: str) -> None:
        self.op, self.text, count, self.when = spec.split(":")
        self.count = int(count)
        self.seen = 0
        self.lock = threading.Lock()

    def before(self, op: str, rel: str) -> int:
        """Count a call; returns its number among the matching calls (0: no match)."""
        if op != self.op or self.text not in rel:
            return 0
        with self.lock:
            self.seen += 1
            number = self.seen
        if number == self.count and self.when == "before":
            self.die()
        return number

    def after(self, number: int) -> None:
        if number == self.count and self.when == "after":
            self.die()

    @staticmethod
    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def dying_disks(root: Path, trigger: Trigger) -> list:
    from s3free.storage.disk import LocalDisk
    from s3free.storage.faulty import FaultyDisk

    class DyingDisk(FaultyDisk):
        def write_file(self, rel: str, data: bytes, sync: bool = True) -> None:
            number = trigger.before("write_file", rel)
            super().write_file(rel, data, sync=sync)
            trigger.after(number)

        def remove(self, rel: str) -> None:
            number = trigger.before("remove", rel)
            super().remove(rel)
            trigger.after(number)

        def remove_tree(self, rel: str) -> None:
            number = trigger.before("remove_tree", rel)
            super().remove_tree(rel)
            trigger.after(number)

    return [DyingDisk(LocalDisk(p)) for p in disk_paths(root)]


async def open_store(root: Path, disks: list | None = None):
    from s3free.engine import ObjectStore

    return await ObjectStore.open(
        disks if disks is not None else disk_paths(root),
        meta_dir=root / "meta",
        k=K,
        m=M,
        block_size=BLOCK_SIZE,
        min_part_size=1,
    )


async def _stream(data: bytes, chunk: int = 40_000):
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


def say(*fields: object) -> None:
    sys.stdout.write(" ".join(str(f) for f in fields) + "\n")
    sys.stdout.flush()


async def work(
    root: Path,
    seed: int,
    gen_base: int,
    max_ops: int,
    max_seconds: float,
    ops: list[tuple[str, str]] | None,
    die_at: str | None,
) -> None:
    from s3free.errors import BucketAlreadyExists

    rng = random.Random(seed)
    store = await open_store(root, dying_disks(root, Trigger(die_at)) if die_at else None)
    try:
        with contextlib.suppress(BucketAlreadyExists):
            await store.create_bucket(BUCKET)
        say("READY")
        deadline = time.monotonic() + max_seconds
        gen = gen_base
        for i in range(len(ops) if ops is not None else max_ops):
            if time.monotonic() > deadline:
                break
            if ops is not None:
                op, key = ops[i]
            else:
                key = rng.choice(KEYS)
                op = rng.choices(["put", "mpu", "del"], weights=[6, 2, 2])[0]
            gen += 1
            if op == "del":
                say("BEGIN", "del", key, "-")
                await store.delete_object(BUCKET, key)
                say("ACK", "del", key, "-")
            elif op == "put":
                say("BEGIN", "put", key, gen)
                await store.put_object(BUCKET, key, _stream(content(key, gen)))
                say("ACK", "put", key, gen)
            else:
                say("BEGIN", "mpu", key, gen)
                data = content(key, gen)
                upload = await store.create_multipart_upload(BUCKET, key)
                etags = []
                for number, (start, end) in enumerate(part_splits(key, gen), 1):
                    info = await store.upload_part(
                        BUCKET, key, upload, number, _stream(data[start:end])
                    )
                    etags.append((number, info.etag))
                say("PARTS", key, upload, ",".join(f"{n}:{e}" for n, e in etags))
                await store.complete_multipart_upload(BUCKET, key, upload, etags)
                say("ACK", "mpu", key, gen)
        say("DONE")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("gen_base", type=int)
    parser.add_argument("--max-ops", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=30.0)
    parser.add_argument("--ops", default=None)
    parser.add_argument("--die-at", default=None)
    args = parser.parse_args()
    ops = [tuple(item.split()) for item in args.ops.split(",")] if args.ops else None
    asyncio.run(
        work(
            args.root,
            args.seed,
            args.gen_base,
            args.max_ops,
            args.max_seconds,
            ops,  # type: ignore[arg-type]
            args.die_at,
        )
    )


if __name__ == "__main__":
    main()
