"""Scenarios that need the heal service running: SIGKILL of a process during a scrub's
repairs, and client load through a real HTTP server while a scrub rebuilds a wiped disk."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chaos import healing
from chaos.data import Profile, dataset
from chaos.faults import wipe_disk
from chaos.report import Row, finish
from chaos.rig import BUCKET, Rig
from chaos.verify import verify_engine

REPO = Path(__file__).resolve().parent.parent
LOAD_BUCKET = "chaos-load"  # the load's own keys, checked by the load client itself


async def _prepare(rig: Rig) -> None:
    """Dataset written, one disk wiped (format.json kept): every object needs a repair."""
    store = await rig.open()
    await store.create_bucket(BUCKET)
    await rig.write(dataset(rig.profile, rig.seed))
    await rig.close()
    wipe_disk(rig.rng.choice(rig.disk_paths), rig.log, keep_format=True)


async def _check_after(rig: Rig, row: Row) -> None:
    """Read everything back, ONE scrub, every object k+m healthy, read back again."""
    store = await rig.open()
    verdict = await verify_engine(store, BUCKET, rig.acks)
    row.problems += [f"after the kill: {p}" for p in verdict.problems]
    row.bytes_verified += verdict.bytes_verified
    service = await healing.start_service(store)
    try:
        outcome = await healing.scrub_once(service)
        row.detected, row.repaired = outcome.detected, outcome.repaired
        row.problems += outcome.problems
        row.problems += await healing.check_health(service, store, BUCKET, rig.acks)
    finally:
        await service.stop()
    verdict = await verify_engine(store, BUCKET, rig.acks)
    row.problems += [f"after the scrub: {p}" for p in verdict.problems]
    row.bytes_verified += verdict.bytes_verified
    await rig.close()


def sigkill_scrub(profile: Profile, seed: int, workdir: Path | None = None) -> Row:
    row = Row("sigkill-scrub")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-sigkill-scrub-", dir=workdir))
    rig = Rig(root, profile, seed, random.Random(f"{seed}/sigkill-scrub"))
    try:
        asyncio.run(_prepare(rig))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "chaos.scrub_child", str(root), profile.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        killed_at = ""
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if line.startswith("PROGRESS") and int(line.split()[2]) >= 1:
                os.kill(proc.pid, signal.SIGKILL)
                killed_at = line.strip()
                break
            if line.startswith("DONE") or time.monotonic() > deadline:
                break
        if proc.poll() is None and not killed_at:
            os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait(30)
        if not killed_at:
            row.problems.append(f"the scrub never reported a repair before ending: {rest[-2000:]}")
        else:
            row.faults += 1
            rig.log.add("sigkill-during-repair", killed_at)
        asyncio.run(_check_after(rig, row))
    finally:
        finish(row, root, started, rig.log)
    return row


async def _load_flow(rig: Rig, row: Row, ops: int, seconds: float) -> None:
    from s3free.bench.s3load import Client, expected_md5
    from s3free.config import Config
    from s3free.server import RootCredentials, start

    await _prepare(rig)
    config = Config(
        data_dir=str(rig.root),
        disks=[str(p) for p in rig.disk_paths],
        ec=f"{rig.profile.k}+{rig.profile.m}",
        listen="127.0.0.1:0",
        meta_dir=str(rig.meta),
        block_size=rig.profile.block_size,
    )
    creds = RootCredentials("CHAOSLOADACCESSKEY01", "chaos-load-secret-0123456789abcdef", False)
    running = await start(config, creds)
    service = await healing.start_service(running.store)
    client = Client(running.url, creds.access_key, creds.secret_key, "us-east-1", 8)
    errors: list[str] = []
    done = {"put": 0, "get": 0}
    try:
        await client.create_bucket(LOAD_BUCKET)
        job = service.start_scrub()
        deadline = time.monotonic() + seconds
        sizes = [0, 1, 5000, rig.profile.block_size + 1, 300_000]
        written: list[tuple[str, int]] = []

        async def worker(w: int) -> None:
            rng = random.Random(f"{rig.seed}/load/{w}")
            for i in range(ops):
                if time.monotonic() > deadline:
                    return
                try:
                    if not written or rng.random() < 0.5:
                        key, size = f"load/{w}/{i}", rng.choice(sizes)
                        await client.put(LOAD_BUCKET, key, size, expected_md5(key, size))
                        written.append((key, size))
                        done["put"] += 1
                    else:
                        key, size = rng.choice(written)
                        await client.get(LOAD_BUCKET, key, size)
                        done["get"] += 1
                except Exception as exc:
                    errors.append(f"worker {w} op {i}: {exc!r}")

        await asyncio.gather(*(worker(w) for w in range(4)))
        outcome_job = await service.wait(job.id, timeout=healing.SCRUB_TIMEOUT_S)
        row.detected, row.repaired = outcome_job.shards_bad, outcome_job.repaired
        if outcome_job.state != "done":
            row.problems.append(f"scrub ended {outcome_job.state}: {outcome_job.error}")
        row.problems += [f"client error under quorum: {e}" for e in errors[:20]]
        row.problems += await healing.check_health(service, running.store, BUCKET, rig.acks)
        verdict = await verify_engine(running.store, BUCKET, rig.acks)
        row.problems += verdict.problems
        row.bytes_verified += verdict.bytes_verified
        row.notes.append(f"{done['put']} PUTs and {done['get']} GETs during the scrub")
    finally:
        await client.close()
        await service.stop()
        await running.close()
        rig.store = None


def load_during_heal(
    profile: Profile, seed: int, ops: int = 60, seconds: float = 20.0, workdir=None
) -> Row:
    row = Row("load-during-heal")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-load-", dir=workdir))
    rig = Rig(root, profile, seed, random.Random(f"{seed}/load"))
    try:
        asyncio.run(_load_flow(rig, row, ops, seconds))
    finally:
        finish(row, root, started, rig.log)
    return row
