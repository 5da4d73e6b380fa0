"""The durability contract on the real engine and real files (issue 11): one repair per version
however many ask at once; writes that missed an offline disk are repaired when it returns with
no command run; a pass says done only when what it found is back at k+m (or names what is
left); unrepairable records clear when their version goes; redundancy is a number."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from s3free.engine.diskmonitor import DiskMonitor, MonitorConfig
from s3free.format.manifest import Manifest
from s3free.heal import HealService
from tests.support.heal import (
    BS,
    BUCKET,
    HEAL_STORE,
    K,
    N,
    config,
    flip,
    manifest_copy,
    new_store,
    put,
    quarantined,
    shard_path,
)

pytestmark = HEAL_STORE

FAST = MonitorConfig(probe_s=0.05, error_limit=3, error_window_s=10, cooldown_s=0.3)


async def healthy(heal: HealService, key: str) -> bool:
    health = await heal.verify(BUCKET, key)
    return not health.needs_repair


async def attach(store, **overrides) -> tuple[DiskMonitor, HealService]:
    monitor = DiskMonitor(store, FAST)
    await monitor.start(background=True)
    heal = HealService(store, config(**overrides))
    await heal.start()
    monitor.attach_healer(heal)
    return monitor, heal


async def until(predicate, seconds: float = 30.0) -> None:
    """Poll an async predicate with a deadline (no timed assertion: a generous bound)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_checks_that_queue_up_on_one_version_repair_it_once(tmp_path, store):
    """A second check that waited behind a repair must see that repair's generation: with the
    manifest it started from, the rebuilt shards looked "newer than the manifest", and it
    rebuilt them again (generation 3) and quarantined the good ones (issue 11, failure 4)."""

    heal = HealService(store, config())
    await heal.start()
    heal._worker.cancel()  # only the checks below repair
    try:
        data = await put(store, "k", 3 * BS)
        stale: Manifest = await store.get_manifest(BUCKET, "k")
        for j in range(2):  # two corrupt shards: the repair needs a new generation
            flip(shard_path(store, stale, 1, j), 1, "payload", salt=j)
        # Scrub, disk heal and queue worker all arrive with the manifest they read first.
        await asyncio.gather(*(heal._check(stale, None, None) for _ in range(3)))
        final = await store.get_manifest(BUCKET, "k")
        assert final.generation == stale.generation + 1
        assert heal.repairs["repaired"] == 1
        assert len(quarantined(tmp_path)) == 2  # the two damaged files, nothing good
        assert await store.get_object_bytes(BUCKET, "k") == data
        assert await healthy(heal, "k")
    finally:
        await heal.stop()


async def test_writes_that_missed_an_offline_disk_are_repaired_when_it_returns(tmp_path):
    """Issue 11, failure 2: written while a disk was away, they stayed degraded (the queue
    dropped "waiting" outcomes) until the weekly scrub. Now they wait for the disk, persisted
    across a restart, and are repaired when it is back, with no command run."""

    store = await new_store(tmp_path)
    monitor, heal = await attach(store)
    away = tmp_path / "disk4"
    moved = tmp_path / "disk4.away"
    objects = {}
    try:
        away.rename(moved)
        await until(lambda: _offline(store, 4))
        for i in range(12):
            objects[f"w{i}"] = await put(store, f"w{i}", [0, 1, 4095, 2 * BS + 7][i % 4])
        await heal._flush()
        degraded = heal.degraded()
        assert degraded["waiting"] == len(objects), degraded
        assert degraded["disks_offline"] == 1 and degraded["bytes"] > 0
        assert not await healthy(heal, "w3")
    finally:
        await heal.stop()
        await monitor.stop()
        await store.close()
    # Restart while the disk is still away: the waiting versions are remembered.
    store = await new_store(tmp_path)
    monitor, heal = await attach(store)
    try:
        assert heal.degraded()["waiting"] == len(objects)
        moved.rename(away)
        await until(lambda: _all_healthy(heal, objects), 60)
        await heal.drain()
        assert heal.degraded()["objects"] == 0 and heal.caught_up == len(objects)
        for key, data in objects.items():
            assert await store.get_object_bytes(BUCKET, key) == data
    finally:
        await heal.stop()
        await monitor.stop()
        await store.close()


async def _offline(store, position: int) -> bool:
    return not store.diskset.slots[position].online


async def _all_healthy(heal: HealService, objects: dict) -> bool:
    for key in objects:
        if not await healthy(heal, key):
            return False
    return True


async def test_a_pass_is_done_only_when_what_it_found_is_back_at_k_plus_m(tmp_path, store):
    """Issue 11, failure 1: `scrub --wait` returned while a wiped disk was still being
    healed and repairs were still queued; damage elsewhere then cost an object. A whole pass
    now waits for the disk heal it overlaps, and answers what a read queued meanwhile."""

    # A slow queue worker: reads queue repairs that the scrub must not leave behind.
    monitor, heal = await attach(store, scrub_rate_mb_s=0.0)
    heal._repair_pacer.set_rate(rate_mb_s=0.2)
    try:
        objects = {f"o{i}": await put(store, f"o{i}", [1, 3000, 3 * BS][i % 3]) for i in range(9)}
        for key in objects:  # damage a second disk's shards: the reads queue them
            m = await store.get_manifest(BUCKET, key)
            path = manifest_copy(store, m, 1) if m.inline else shard_path(store, m, 1, 1)
            if path.exists():
                path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 2)])
        for key, data in objects.items():
            assert await store.get_object_bytes(BUCKET, key) == data
        await asyncio.sleep(0.1)
        assert len(heal.queue) > 0  # the slow worker lags behind
        wiped = tmp_path / "disk0"
        (wiped / "format.json").unlink()  # first: then no write makes data dirs again
        for entry in wiped.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        job = heal.start_scrub()
        await heal.wait(job.id, timeout=120)
        assert job.state == "done" and job.left_total == 0, job.to_json()
        # At once: every object is back at k+m, nothing queued, no disk healing.
        assert len(heal.queue) == 0
        assert monitor.state(store.diskset.slots[0]) == "online"
        assert heal.degraded()["objects"] == 0
        for key in objects:
            assert await healthy(heal, key), key
        # So any m other disks may now fail.
        for position in (2, 3):
            shutil.rmtree(tmp_path / f"disk{position}" / "objects")
        for key, data in objects.items():
            assert await store.get_object_bytes(BUCKET, key) == data
    finally:
        await heal.stop()
        await monitor.stop()


async def test_a_pass_names_what_waits_for_an_offline_disk(tmp_path, store):
    monitor, heal = await attach(store)
    try:
        (tmp_path / "disk2").rename(tmp_path / "disk2.away")
        await until(lambda: _offline(store, 2))
        await put(store, "late", 2 * BS)
        job = heal.start_repair()
        await heal.wait(job.id, timeout=60)
        assert job.state == "done" and job.left_total == 1, job.to_json()
        assert job.left[0]["key"] == "late" and "offline" in job.left[0]["why"]
    finally:
        await heal.stop()
        await monitor.stop()


async def test_unrepairable_records_clear_when_the_version_goes(tmp_path):
    """Issue 11, failure 5: records of deleted objects stayed through scrubs, rebuilds and
    restarts, and the metric never fell."""

    store = await new_store(tmp_path)
    heal = HealService(store, config())
    await heal.start()
    try:
        for key in ("gone", "over"):
            await put(store, key, 2 * BS)
            m = await store.get_manifest(BUCKET, key)
            for j in range(N - K + 1):  # one shard more than the code can lose
                shard_path(store, m, 1, j).unlink()
            await heal.repair_object(BUCKET, key)
        assert {ident[1] for ident in heal.unrepairable} == {"gone", "over"}
        await store.delete_object(BUCKET, "gone")
        await put(store, "over", BS, salt="new")
        await until(lambda: _no_unrepairable(heal))
        assert heal.status()["unrepairable"] == []
    finally:
        await heal.stop()
    # A record left from before (written by an older server) is pruned at start.
    from s3free.meta.healstate import HealState

    HealState(store.index).unrepairable_put((BUCKET, "over", "no-such-version"), {})
    heal = HealService(store, config())
    await heal.start()
    try:
        await until(lambda: _no_unrepairable(heal))
    finally:
        await heal.stop()
        await store.close()


async def _no_unrepairable(heal: HealService) -> bool:
    return not heal.unrepairable


def _paths(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


async def test_short_of_shards_only_for_a_disk_that_is_away_is_not_unrepairable(tmp_path, store):
    """Two shards lost and a third on a disk that is away: k=3 cannot be met now, but the
    data is not lost. It waits for the disk (not an unrepairable record, the false alarm an
    outage once raised for 47 intact objects) and is repaired when the disk is back."""

    monitor, heal = await attach(store)
    try:
        data = await put(store, "k", 2 * BS)
        m = await store.get_manifest(BUCKET, "k")
        for j in (0, 1):
            shard_path(store, m, 1, j).unlink()
        away = Path(store.diskset.slot_for(m.placement[2]).disk.root)
        away.rename(away.with_name(away.name + ".away"))
        position = store.diskset.slot_for(m.placement[2]).position
        await until(lambda: _offline(store, position))
        await heal.repair_object(BUCKET, "k")
        await heal._flush()
        assert not heal.unrepairable
        assert heal.degraded()["waiting"] == 1
        away.with_name(away.name + ".away").rename(away)
        await until(lambda: healthy(heal, "k"), 60)
        assert await store.get_object_bytes(BUCKET, "k") == data
        assert not heal.unrepairable
    finally:
        await heal.stop()
        await monitor.stop()
