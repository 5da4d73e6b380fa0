"""Pieces of the healing benchmark (tools/bench_heal.py): the mixed dataset, this machine's
ceilings, and a driver that keeps a scrub running on a server and samples its progress.

Figures are MB/s with 1 MB = 10^6 bytes. "Shard bytes" are what a scrub reads and what its
MB/s cap counts: every record of the k + m shard files (header, payload, footer) and every
manifest copy, about (k + m) / k = 1.5x the object data for RS(6,3).
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import blake3
import crc32c

from s3free.erasure import ReedSolomon
from s3free.states import JobState

if TYPE_CHECKING:
    from s3free.admin.client import AdminClient

MiB = 1 << 20

# (object size, share of the dataset's bytes); four 1-byte objects are added to any dataset.
# 100 KiB and 4 KiB objects are stored inline (in the manifest files, below 128 KiB).
MIX = ((64 * MiB, 0.375), (8 * MiB, 0.375), (MiB, 0.2), (100 * 1024, 0.04), (4096, 0.009))
GET_SIZE = MiB  # the GET phases read the dataset's 1 MiB objects
MIN_GET_OBJECTS = 2


def plan_dataset(total: int, seed: int = 20261125) -> list[tuple[str, int]]:
    """(key, size) of a dataset of about `total` bytes, sizes interleaved at random so that
    any stretch of the index (what a scrub walks in order) holds a representative mix."""
    sizes: list[int] = []
    for size, share in MIX:
        count = int(total * share) // size
        if size == GET_SIZE:
            count = max(count, MIN_GET_OBJECTS)
        sizes += [size] * count
    sizes += [1] * 4
    random.Random(seed).shuffle(sizes)
    return [(f"mix/{i:06d}", size) for i, size in enumerate(sizes)]


def describe_mix(plan: list[tuple[str, int]]) -> str:
    counts: dict[int, int] = {}
    for _, size in plan:
        counts[size] = counts.get(size, 0) + 1
    return ", ".join(f"{n} x {_size_name(s)}" for s, n in sorted(counts.items(), reverse=True))


def _size_name(size: int) -> str:
    if size >= MiB:
        return f"{size // MiB} MiB"
    if size >= 1024:
        return f"{size // 1024} KiB"
    return f"{size} B"


def tree_bytes(root: Path) -> tuple[int, int]:
    """(bytes, files) under root (regular files only)."""
    total = files = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            try:
                total += os.stat(os.path.join(dirpath, name), follow_symlinks=False).st_size
                files += 1
            except FileNotFoundError:
                continue
    return total, files


# -- ceilings ----------------------------------------------------------------------------------


def read_files_rate(roots: list[Path], *, cold: bool, budget_s: float) -> float:
    """MB/s of reading every file under roots in 1 MiB reads, one thread (a scrub verifies on
    one pool thread). cold: each file's cached pages are dropped first (fdatasync, then
    POSIX_FADV_DONTNEED: this needs no privilege and touches only these files)."""
    paths = [Path(d) / n for r in roots for d, _, names in os.walk(r) for n in names]
    if cold:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    done = 0
    started = time.perf_counter()
    deadline = started + budget_s
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(MiB):
                done += len(chunk)
        if time.perf_counter() > deadline:
            break
    return done / max(time.perf_counter() - started, 1e-9) / 1e6


def durable_creates_per_s(directory: Path, budget_s: float) -> float:
    """Small files made durable per second, one thread, as a repair publishes each manifest
    copy and shard file: write a temp file, fsync, rename into place, fsync the directory."""
    work = Path(directory) / "durable-create-probe"
    work.mkdir()
    done = 0
    started = time.perf_counter()
    try:
        while done < 2 or (time.perf_counter() - started < budget_s and done < 100_000):
            temp, final = work / f"{done}.tmp", work / f"{done}"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, b"m" * 2048)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, final)
            dfd = os.open(work, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            done += 1
        return done / (time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rate(fn, nbytes: int, budget_s: float) -> float:
    """MB/s of fn() over nbytes each call, repeated for about budget_s (at least twice)."""
    fn()  # warm up
    calls = 0
    started = time.perf_counter()
    while calls < 2 or (time.perf_counter() - started < budget_s and calls < 100_000):
        fn()
        calls += 1
    return calls * nbytes / (time.perf_counter() - started) / 1e6


def primitive_rates(k: int, m: int, block: int, budget_s: float) -> dict[str, float]:
    """One-thread MB/s of what verifying a block costs: BLAKE3 and CRC32C of a shard payload,
    BLAKE3 of a block, RS encode of a block (MB/s of block data)."""
    data = random.Random(7).randbytes(block)
    payload = data[: -(-block // k)]
    codec = ReedSolomon(k, m)
    shards = codec.encode(data)
    # Decoding with the first data shard lost: what a repair does when a data disk is wiped.
    lost = {i: bytes(shards[i]) for i in range(1, k + 1)}
    return {
        "blake3_shard": _rate(lambda: blake3.blake3(payload).digest(), len(payload), budget_s),
        "blake3_block": _rate(lambda: blake3.blake3(data).digest(), len(data), budget_s),
        "crc32c": _rate(lambda: crc32c.crc32c(payload), len(payload), budget_s),
        "rs_encode": _rate(lambda: codec.encode(data), len(data), budget_s),
        "rs_decode_1_lost": _rate(lambda: codec.decode(lost, len(data)), len(data), budget_s),
    }


def verify_model(rates: dict[str, float], read_mb_s: float, k: int, m: int) -> float:
    """MB/s of object data one thread could verify if it did nothing but what the verifier
    must do per block: read (k+m)/k shard bytes, CRC32C and BLAKE3 them (record CRC, Merkle
    leaf), BLAKE3 the block once, and re-encode it to compare parity (heal/verify.py)."""
    x = (k + m) / k
    seconds_per_mb = (
        x / read_mb_s
        + x / rates["crc32c"]
        + x / rates["blake3_shard"]
        + 1 / rates["blake3_block"]
        + 1 / rates["rs_encode"]
    )
    return 1 / seconds_per_mb


# -- a scrub kept running ------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # time.monotonic()
    bytes: int  # shard bytes verified since the driver started (finished objects only)
    objects: int


@dataclass
class ScrubDriver:
    """Keeps a scrub running on a server (a new pass as soon as one ends) and samples its
    progress every `poll` s. Runs in its own thread: the admin client blocks."""

    admin: AdminClient
    rate_mb_s: float | None  # None: the server's configured cap
    poll: float = 0.25
    max_s: float = 3600.0  # never runs longer than this
    samples: list[Sample] = field(default_factory=list)
    passes: int = 0
    jobs: list[dict] = field(default_factory=list)  # finished passes
    error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _restart: bool = True
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="scrub-driver")
        self._thread.start()

    def stop(self, *, finish_pass: bool, timeout: float) -> None:
        """Stop starting passes; with finish_pass wait (bounded) for the current one to end."""
        self._restart = False
        if not finish_pass:
            self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(10)
        if self._thread.is_alive():
            self.error = self.error or "the scrub driver did not stop"

    def _run(self) -> None:
        done_bytes = done_objects = 0
        deadline = time.monotonic() + self.max_s
        job = None
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if job is None:
                    job = self.admin.start_scrub(None, self.rate_mb_s)
                    self.passes += 1
                job = self.admin.job(job["id"])
                now = time.monotonic()
                self.samples.append(
                    Sample(
                        now,
                        done_bytes + job["bytes_checked"],
                        done_objects + job["objects_checked"],
                    )
                )
                if job["state"] != JobState.RUNNING:
                    if job["state"] != JobState.DONE:
                        self.error = f"scrub {job['id']} {job['state']}: {job['error']}"
                        return
                    self.jobs.append(job)
                    done_bytes += job["bytes_checked"]
                    done_objects += job["objects_checked"]
                    job = None
                    if not self._restart:
                        return
                    continue
                self._stop.wait(self.poll)
        except Exception as exc:  # shown in the report: the figures then mean nothing
            self.error = f"{type(exc).__name__}: {exc}"

    def window(self, t0: float, t1: float) -> dict:
        """Work finished between the samples nearest t0 and t1, edges moved to where the
        counters changed (an object's bytes are counted when its verification ends)."""
        inside = [s for s in self.samples if t0 <= s.t <= t1]
        if len(inside) < 2:
            return {"bytes": 0, "objects": 0, "seconds": 0.0}
        first, last = inside[0], inside[-1]
        # From the first change of the counters to the last one: the work finished in between
        # started after the first change (one object at a time), so idle polling at the edges
        # (an unfinished big object) is not counted as time without work.
        changes = [
            b for a, b in itertools.pairwise(inside) if (a.bytes, a.objects) != (b.bytes, b.objects)
        ]
        if len(changes) >= 2:
            first, last = changes[0], changes[-1]
        return {
            "bytes": last.bytes - first.bytes,
            "objects": last.objects - first.objects,
            "seconds": max(last.t - first.t, 1e-9),
        }
