"""`s3free bench s3`: a warp-like timed load against any S3 endpoint, with standard S3 calls
only (PUT, GET, HEAD, DELETE, ListObjectsV2, bucket create/head/delete), so that s3free and
another server can be compared on the same hardware.

Operations (`op`):
  put     PUT for `duration` seconds over `objects` keys: new keys first, then overwrites.
  get     `objects` objects are written first (untimed), then GETs of random keys, every body
          compared byte for byte with what was written.
  mixed   warp's default mix, each operation drawn at random: GET 45%, STAT (HEAD) 30%, PUT 15%,
          DELETE 10%, over `objects` prepared keys; a GET, STAT or DELETE with no object left
          to act on becomes a PUT.
  list    ListObjectsV2 pages (1000 keys) of the run's prefix, over and over; each full listing
          must return exactly the prepared keys.
  delete  `objects` objects are written first, then DELETEd (the phase ends when none is left).

Correctness: a body is a function of its key (s3load.body_pieces), so a GET is checked without
keeping bodies, and an overwrite never changes what a key must read back. A key is taken out of
the pool while one operation acts on it (KeyPool), so no operation races another on its own
key: every error is the server's. A wrong byte or length is a verify failure, counted apart
and reported. Bounded: the timed phase stops at `duration` (at most MAX_DURATION_S), keys are
at most MAX_OBJECTS, preparation stops after PREPARE_LIMIT_S. The run's objects, and the
bucket if this run created it, are removed afterwards unless `keep`.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from s3free.bench.s3load import Client, PhaseResult, expected_md5

OPS = ("put", "get", "mixed", "list", "delete")
MIX = (("GET", 45), ("STAT", 30), ("PUT", 15), ("DELETE", 10))
MAX_DURATION_S = 3600.0
MAX_OBJECTS = 1_000_000
PREPARE_LIMIT_S = 600.0
LIST_PAGE = 1000


def default_objects(op: str, size: int, concurrency: int) -> int:
    """Warp's 2500 objects, fewer for big ones (at most ~1 GiB of them), never fewer than two
    per worker (so workers rarely wait for a key)."""
    per_gib = max(1, (1 << 30) // max(1, size))
    return min(MAX_OBJECTS, max(2 * concurrency, min(2500, per_gib)))


@dataclass
class S3BenchConfig:
    endpoint: str
    access_key: str
    secret_key: str
    op: str = "mixed"
    size: int = 1 << 20
    concurrency: int = 8
    duration: float = 10.0
    objects: int | None = None  # None: default_objects()
    bucket: str | None = None  # None: a new bucket, removed afterwards
    region: str = "us-east-1"
    tls: ssl.SSLContext | bool | None = None  # None: the system's CAs
    keep: bool = False
    seed: int = 1

    def key_count(self) -> int:
        return self.objects or default_objects(self.op, self.size, self.concurrency)


class KeyPool:
    """The run's keys, each present (written and not deleted) or absent; a key being operated
    on is in neither list, so at most one operation acts on it at a time."""

    def __init__(self, present: list[str], absent: list[str], rng: random.Random) -> None:
        self.present, self.absent, self._rng = present, absent, rng

    def _take(self, keys: list[str]) -> str | None:
        if not keys:
            return None
        i = self._rng.randrange(len(keys))
        keys[i], keys[-1] = keys[-1], keys[i]
        return keys.pop()

    def take_present(self) -> str | None:
        return self._take(self.present)

    def take_for_put(self) -> str | None:
        """An absent key if any (a new object), else a present one (an overwrite)."""
        return self._take(self.absent) or self._take(self.present)

    def give(self, key: str, present: bool) -> None:
        (self.present if present else self.absent).append(key)


class Progress:
    """A live progress line on `out`: rewritten in place every 0.5 s on a terminal, a new line
    every 5 s otherwise (logs stay readable), and a last line when done."""

    def __init__(self, out: TextIO | None, label: str) -> None:
        self.out, self.label = out, label
        self.tty = bool(out and out.isatty())
        self.interval = 0.5 if self.tty else 5.0
        self.started = time.perf_counter()

    def line(self, stats: dict[str, PhaseResult]) -> str:
        elapsed = max(1e-9, time.perf_counter() - self.started)
        ops = sum(s.ops for s in stats.values())
        moved = sum(s.ops * s.size for s in stats.values())
        errors = sum(s.errors for s in stats.values())
        return (
            f"{self.label}: {elapsed:6.1f} s  {ops:>8} ops  {ops / elapsed:9.1f} ops/s  "
            f"{moved / elapsed / 1e6:8.1f} MB/s  errors {errors}"
        )

    def show(self, text: str, final: bool = False) -> None:
        if self.out is None:
            return
        if self.tty:
            self.out.write("\r" + text + "\x1b[K" + ("\n" if final else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()

    async def run(self, stats: dict[str, PhaseResult]) -> None:
        """Until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.show(self.line(stats))


async def _gather_keys(
    keys: list[str], concurrency: int, limit_s: float, fn: Callable
) -> tuple[list[str], list[str], PhaseResult]:
    """fn(key) over keys with `concurrency` workers, until done or limit_s: (keys done, keys
    failed or not reached, the figures)."""
    result = PhaseResult("prepare", 0, concurrency)
    queue = list(reversed(keys))
    done: list[str] = []
    deadline = time.perf_counter() + limit_s

    async def worker() -> None:
        while queue and time.perf_counter() < deadline:
            key = queue.pop()
            try:
                await fn(key)
            except Exception as exc:  # counted and shown
                result.failed(exc)
                queue_failed.append(key)
                continue
            result.ops += 1
            done.append(key)

    queue_failed: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return done, queue_failed + queue, result


async def run_s3_bench(cfg: S3BenchConfig, *, progress: TextIO | None = sys.stderr) -> dict:
    """Run one benchmark as configured and return its figures as a JSON-ready dict (see
    format_s3_table). Raises RuntimeError when the bucket cannot be used at all."""
    n_keys = cfg.key_count()
    client = Client(
        cfg.endpoint, cfg.access_key, cfg.secret_key, cfg.region, cfg.concurrency, cfg.tls
    )
    tag = secrets.token_hex(4)
    bucket = cfg.bucket or f"s3free-bench-{tag}"
    prefix = f"s3free-bench-{tag}/"
    keys = [f"{prefix}{i:07d}" for i in range(n_keys)]
    created = False
    out: dict = {
        "endpoint": cfg.endpoint,
        "op": cfg.op,
        "size": cfg.size,
        "concurrency": cfg.concurrency,
        "duration_s": cfg.duration,
        "objects": n_keys,
        "bucket": bucket,
        "prefix": prefix,
        "mix": dict(MIX) if cfg.op == "mixed" else None,
        "client_cpus": os.cpu_count(),
    }
    try:
        if not await client.bucket_exists(bucket):
            await client.create_bucket(bucket)
            created = True
        # ETags to expect, before any clock starts (the client's MD5 is not what is measured).
        etags = {k: expected_md5(k, cfg.size) for k in keys}

        async def put(key: str) -> None:
            await client.put(bucket, key, cfg.size, etags[key])

        rng = random.Random(cfg.seed)
        if cfg.op == "put":
            pool = KeyPool([], list(keys), rng)
            out["prepared"] = 0
        else:
            show = Progress(progress, "preparing")
            show.show(f"preparing: writing {n_keys} objects of {cfg.size} bytes", final=True)
            done, missing, prep = await _gather_keys(keys, cfg.concurrency, PREPARE_LIMIT_S, put)
            show.show(f"preparing: {len(done)} written in {prep.seconds:.1f} s, "
                      f"{prep.errors} errors", final=True)  # fmt: skip
            out["prepared"] = len(done)
            out["prepare_errors"] = prep.errors
            out["prepare_first_error"] = prep.first_error
            if not done:
                raise RuntimeError(f"no object could be written: {prep.first_error}")
            pool = KeyPool(done, missing, rng)
        stats, seconds = await _timed(cfg, client, bucket, prefix, pool, put, progress)
        out["seconds"] = round(seconds, 3)
        for s in stats.values():
            s.seconds = seconds
        out["results"] = {name: s.summary() for name, s in stats.items() if s.ops or s.errors}
        total_ops = sum(s.ops for s in stats.values())
        moved = sum(s.ops * s.size for s in stats.values())
        out["total"] = {
            "ops": total_ops,
            "ops_per_s": round(total_ops / seconds, 1) if seconds else 0.0,
            "mb_per_s": round(moved / seconds / 1e6, 1) if seconds else 0.0,
            "errors": sum(s.errors for s in stats.values()),
        }
        out["verify_failures"] = sum(s.verify_failures for s in stats.values())
        out["verified_bytes"] = stats["GET"].ops * cfg.size if "GET" in stats else 0
        out["errors"] = out["total"]["errors"] + out.get("prepare_errors", 0)
    finally:
        try:
            out["cleanup"] = await _cleanup(cfg, client, bucket, prefix, created, n_keys)
        finally:
            await client.close()
    out["errors"] = out.get("errors", 0) + out["cleanup"]["errors"]
    return out


async def _timed(cfg, client, bucket, prefix, pool: KeyPool, put, progress):
    """The measured phase: (figures per operation, wall seconds)."""
    size = cfg.size
    names = {"put": ["PUT"], "get": ["GET"], "list": ["LIST"], "delete": ["DELETE"]}
    stats = {
        name: PhaseResult(name, size if name in ("PUT", "GET") else 0, cfg.concurrency)
        for name in names.get(cfg.op, [name for name, _ in MIX])
    }
    listed_expect = len(pool.present)
    deadline = time.perf_counter() + cfg.duration

    async def one(name: str, state: dict) -> bool:
        """One operation, timed and counted; False when there is nothing left to do."""
        key = None
        if name in ("GET", "STAT", "DELETE"):
            key = pool.take_present()
            if key is None:
                if cfg.op != "mixed":
                    return False
                name = "PUT"
        if name == "PUT":
            key = pool.take_for_put()
            if key is None:
                await asyncio.sleep(0.001)  # every key is in use by the other workers
                return True
        stat = stats[name]
        started = time.perf_counter()
        ok = False
        try:
            if name == "GET":
                await client.get(bucket, key, size)
            elif name == "STAT":
                await client.head(bucket, key, size)
            elif name == "PUT":
                await put(key)
            elif name == "DELETE":
                await client.delete(bucket, key)
            else:
                page, state["token"] = await client.list_page(
                    bucket, prefix, state.get("token"), LIST_PAGE
                )
                state["seen"] = state.get("seen", 0) + len(page)
                if state["token"] is None:
                    seen, state["seen"] = state["seen"], 0
                    if seen != listed_expect:
                        raise RuntimeError(f"LIST: {seen} keys listed, {listed_expect} written")
            ok = True
        except Exception as exc:  # counted and reported: the run goes on
            stat.failed(exc)
        else:
            stat.latencies.append(time.perf_counter() - started)
            stat.ops += 1
        finally:
            if key is not None:
                # A failed PUT or DELETE leaves the key's state unknown: only a PUT acts on it next.
                present = {"PUT": ok, "DELETE": False}.get(name, True)
                pool.give(key, present)
        return True

    async def worker(wid: int) -> None:
        rng = random.Random(cfg.seed * 7919 + wid)
        ops, weights = [n for n, _ in MIX], [w for _, w in MIX]
        state: dict = {}
        while time.perf_counter() < deadline:
            name = rng.choices(ops, weights)[0] if cfg.op == "mixed" else names[cfg.op][0]
            if not await one(name, state):
                return

    show = Progress(progress, cfg.op)
    ticker = asyncio.create_task(show.run(stats))
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(i) for i in range(cfg.concurrency)))
    finally:
        seconds = time.perf_counter() - started
        ticker.cancel()
    show.show(show.line(stats), final=True)
    return stats, seconds


async def _cleanup(cfg, client, bucket: str, prefix: str, created: bool, n_keys: int) -> dict:
    """Delete every object under the run's prefix (listed, so nothing this run wrote is left),
    then the bucket if this run created it. Bounded by the page count the keys need."""
    report = {"kept": cfg.keep, "deleted": 0, "errors": 0, "first_error": ""}
    report["bucket_removed"] = False
    if cfg.keep:
        return report
    token = None
    for _ in range(n_keys // LIST_PAGE + 10):
        try:
            page, token = await client.list_page(bucket, prefix, token, LIST_PAGE)
        except Exception as exc:
            report["errors"] += 1
            report["first_error"] = report["first_error"] or str(exc)[:200]
            break
        done, _failed, result = await _gather_keys(
            page, cfg.concurrency, PREPARE_LIMIT_S, lambda k: client.delete(bucket, k)
        )
        report["deleted"] += len(done)
        report["errors"] += result.errors
        report["first_error"] = report["first_error"] or result.first_error
        if token is None:
            break
    if created and not report["errors"]:
        try:
            await client.delete_bucket(bucket)
            report["bucket_removed"] = True
        except Exception as exc:
            report["errors"] += 1
            report["first_error"] = report["first_error"] or str(exc)[:200]
    return report


def format_s3_table(result: dict) -> str:
    """The figures as a table: one row per operation type, then the total."""
    lines = [
        f"s3free bench s3: {result['op']} against {result['endpoint']}, {result['size']} byte "
        f"objects, {result['concurrency']} workers, {result['seconds']:.1f} s, "
        f"{result['objects']} keys",
        f"  {'op':<7} {'ops':>8} {'ops/s':>9} {'MB/s':>8} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7}",
    ]
    for name, r in result["results"].items():
        lines.append(
            f"  {name:<7} {r['ops']:>8} {r['ops_per_s']:>9.1f} {r['mb_per_s']:>8.1f} "
            f"{r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}"
        )
    t = result["total"]
    lines.append(
        f"  {'total':<7} {t['ops']:>8} {t['ops_per_s']:>9.1f} {t['mb_per_s']:>8.1f} "
        f"{'':>8} {'':>8} {'':>8} {t['errors']:>7}"
    )
    lines.append(
        f"  GET bodies verified: {result['verified_bytes']} bytes, "
        f"{result['verify_failures']} verify failures"
    )
    for name, r in result["results"].items():
        if r["first_error"]:
            lines.append(f"  first {name} error: {r['first_error']}")
    if result.get("prepare_errors"):
        lines.append(f"  preparing: {result['prepare_errors']} errors: "
                     f"{result['prepare_first_error']}")  # fmt: skip
    c = result["cleanup"]
    if c["kept"]:
        lines.append(f"  kept: bucket {result['bucket']}, prefix {result['prefix']}")
    else:
        lines.append(
            f"  cleanup: {c['deleted']} objects deleted"
            + (", bucket removed" if c["bucket_removed"] else "")
            + (f", {c['errors']} errors: {c['first_error']}" if c["errors"] else "")
        )
    server = result.get("server")
    if server:
        rss = server.get("peak_rss_mib")
        lines.append(
            f"  temporary s3free server: RS({server['k']},{server['m']}) on {server['disks']} "
            f"directories under {server['parent']}, peak RSS "
            + (f"{rss:.0f} MiB" if rss is not None else "unknown")
        )
    return "\n".join(lines)
