"""The machine's ceilings for what a PUT and a GET do: hashing, parity, writing k + m files
and reading shard files, each timed alone (see s3free/bench/engine.py for the figures)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import crc32c
import zfec

from s3free.bench.measure import UNIT, PatternData
from s3free.erasure import ReedSolomon
from s3free.format.record import RECORD_OVERHEAD


def sample_blocks(data: PatternData, count: int = 8) -> list[bytes]:
    return [data.read(i * UNIT, UNIT) for i in range(count)]


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_md5(blocks: list[bytes], n_blocks: int) -> float:
    def work() -> None:
        h = hashlib.md5()
        for i in range(n_blocks):
            h.update(blocks[i % len(blocks)])
        h.digest()

    return _timed(work)


def time_zfec_encode(blocks: list[bytes], n_blocks: int, k: int, m: int) -> float:
    """Parity of n_blocks blocks with zfec directly (padded, split into k views beforehand)."""
    encoder = zfec.Encoder(k, k + m)
    size = -(-UNIT // k)
    prepared = []
    for block in blocks:
        view = memoryview(block + bytes(size * k - len(block)))
        prepared.append(tuple(view[i * size : (i + 1) * size] for i in range(k)))
    wanted = tuple(range(k, k + m))

    def work() -> None:
        for i in range(n_blocks):
            encoder.encode(prepared[i % len(prepared)], wanted)

    return _timed(work)


def time_codec_encode(blocks: list[bytes], n_blocks: int, k: int, m: int) -> float:
    codec = ReedSolomon(k, m)

    def work() -> None:
        for i in range(n_blocks):
            codec.encode(blocks[i % len(blocks)])

    return _timed(work)


def time_put_hash(blocks: list[bytes], n_blocks: int, k: int, m: int) -> float:
    codec = ReedSolomon(k, m)
    shard_sets = [codec.encode(b) for b in blocks]

    def work() -> None:
        for i in range(n_blocks):
            blake3.blake3(blocks[i % len(blocks)]).digest()
            for shard in shard_sets[i % len(blocks)]:
                blake3.blake3(shard).digest()
                crc32c.crc32c(shard)

    return _timed(work)


def time_verify_hash(blocks: list[bytes], n_blocks: int, k: int) -> float:
    size = -(-UNIT // k)

    def work() -> None:
        for i in range(n_blocks):
            block = blocks[i % len(blocks)]
            view = memoryview(block)
            for j in range(k):
                crc32c.crc32c(view[j * size : (j + 1) * size])
            blake3.blake3(block).digest()

    return _timed(work)


def time_disk_write(directory: Path, files: int, record: int, count: int, *, write: int) -> float:
    """Write `count` records of `record` bytes round-robin over `files` files in `write`-byte
    pieces (a record when files > 1), then fsync every file in parallel. Removes the files."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"w{i}" for i in range(files)]
    payload = random.Random(1).randbytes(max(record, write))
    fds = [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for p in paths]
    try:
        total = record * count
        t0 = time.perf_counter()
        if files > 1:
            view = memoryview(payload)[:record]
            for i in range(count):
                os.write(fds[i % files], view)
        else:
            left = total
            view = memoryview(payload)
            while left:
                left -= os.write(fds[0], view[: min(write, left)])
        with concurrent.futures.ThreadPoolExecutor(files) as pool:
            list(pool.map(os.fsync, fds))
        return time.perf_counter() - t0
    finally:
        for fd in fds:
            os.close(fd)
        for p in paths:
            p.unlink(missing_ok=True)


def time_shard_read(paths: list[Path], record: int) -> tuple[float, int]:
    """Read the shard files record by record, one record of each file in turn (one thread).
    Returns (seconds, payload bytes read)."""
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    try:
        got = 0
        t0 = time.perf_counter()
        offset = 0
        while True:
            short = False
            for fd in fds:
                data = os.pread(fd, record, offset)
                got += max(0, len(data) - RECORD_OVERHEAD)
                short |= len(data) < record
            offset += record
            if short:
                break
        return time.perf_counter() - t0, got
    finally:
        for fd in fds:
            os.close(fd)
