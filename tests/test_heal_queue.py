"""The repair queue (priority, dedup, bound, retries, persistence) and heal-on-read."""

from __future__ import annotations

import asyncio

from s3free.heal import HealService
from s3free.heal.queue import RepairQueue
from tests.support.heal import (
    BS,
    BUCKET,
    HEAL_STORE,
    K,
    N,
    config,
    flip,
    new_store,
    put,
    shard_path,
)

pytestmark = HEAL_STORE


def test_queue_orders_by_redundancy_left_and_dedups():
    q = RepairQueue(10)
    q.add(("b", "k1", "v1"), N - 1)
    q.add(("b", "k2", "v2"), K)
    q.add(("b", "k3", "v3"), N - 1)
    q.add(("b", "k1", "v1"), N - 1)  # same version again: merged
    assert len(q) == 3
    q.add(("b", "k3", "v3"), K - 0)  # more urgent now: priority drops to K
    order = [q.pop().ident for _ in range(3)]
    assert order == [("b", "k2", "v2"), ("b", "k3", "v3"), ("b", "k1", "v1")]
    assert q.pop() is None


def test_full_queue_evicts_least_urgent_and_counts_drops():
    q = RepairQueue(2)
    assert q.add(("b", "a", "1"), 4)
    assert q.add(("b", "b", "2"), 4)
    assert not q.add(("b", "c", "3"), 4)  # not more urgent than anything queued: dropped
    assert q.dropped == 1
    assert q.add(("b", "d", "4"), 3)  # more urgent: evicts the newest of the least urgent
    assert q.dropped == 2 and len(q) == 2
    assert set(q.entries) == {("b", "a", "1"), ("b", "d", "4")}


def test_retries_back_off_then_give_up():
    q = RepairQueue(5)
    ident = ("b", "k", "v")
    q.add(ident, 3)
    assert q.pop().ident == ident
    assert q.retry(ident, backoff_s=60, retries=2, why="eio")
    assert q.pop() is None  # not due yet
    entry = q.entries[ident]
    assert entry.attempts == 1 and entry.due_ms > 0
    assert q.pop(now=entry.due_ms + 1).ident == ident
    assert q.retry(ident, backoff_s=60, retries=2, why="eio")
    assert q.entries[ident].due_ms - entry.added_ms >= 4 * 60_000 - 1000  # x4 backoff
    assert not q.retry(ident, backoff_s=60, retries=2, why="eio")  # third failure: given up
    assert ident not in q.entries


async def test_queue_survives_a_restart(tmp_path):
    store = await new_store(tmp_path)
    heal = HealService(store, config())
    await heal.start()
    heal._worker.cancel()  # keep the entries queued: only persistence is tested here
    await put(store, "a", BS)
    await put(store, "b", BS)
    ma = await store.get_manifest(BUCKET, "a")
    mb = await store.get_manifest(BUCKET, "b")
    for j in range(2):
        flip(shard_path(store, ma, 1, j), 0, "payload", salt=j)
    flip(shard_path(store, mb, 1, 0), 0, "payload")
    assert await store.get_object_bytes(BUCKET, "a")
    assert await store.get_object_bytes(BUCKET, "b")
    await asyncio.sleep(0.05)  # listeners run on the loop
    assert len(heal.queue) == 2
    await heal.stop()
    await store.close()

    store = await new_store(tmp_path)
    heal = HealService(store, config())
    await heal.start()
    try:
        assert {e.ident[1]: e.priority for e in heal.queue.entries.values()} in (
            {"a": N - 2, "b": N - 1},
            {"a": N - 1, "b": N - 1},
        )
        await heal.drain()
        assert len(heal.queue) == 0
        for key in ("a", "b"):
            assert not (await heal.verify(BUCKET, key)).needs_repair
        assert heal.status()["queue_depth"] == 0
    finally:
        await heal.stop()
        await store.close()


async def test_heal_on_read_repairs_in_the_background_without_blocking_the_read(tmp_path, store):
    # A slow repair (tiny rate): the GET must still finish at once.
    heal = HealService(store, config(scrub_rate_mb_s=0.05))
    await heal.start()
    try:
        data = await put(store, "hot", 3 * BS)
        m = await store.get_manifest(BUCKET, "hot")
        flip(shard_path(store, m, 1, 0), 1, "payload")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await store.get_object_bytes(BUCKET, "hot") == data
        assert loop.time() - t0 < 1.0
        await asyncio.sleep(0.05)
        assert ("heal", "hot", m.version_id) in heal.queue.entries
        heal.set_rate(0)  # let it go now
        await heal.drain()
        health = await heal.verify(BUCKET, "hot")
        assert not health.needs_repair
        assert (await store.get_manifest(BUCKET, "hot")).generation == m.generation + 1
        # The read that met the bad shard and the verify that then found it: one error.
        assert heal.status()["disks"][m.placement[0]]["errors"] == 1
        assert await store.get_object_bytes(BUCKET, "hot") == data
        assert heal.status()["disks"][m.placement[0]]["errors"] == 1
        m2 = await store.get_manifest(BUCKET, "hot")
        flip(shard_path(store, m2, 1, 0), 1, "payload")  # rotten again after the repair
        assert await store.get_object_bytes(BUCKET, "hot") == data
        await asyncio.sleep(0.05)
        await heal.drain()
        assert heal.status()["disks"][m.placement[0]]["errors"] == 2
    finally:
        await heal.stop()


async def test_degraded_write_is_queued_and_completed(tmp_path):
    """A PUT while one placement disk fails writes reports "not written"; the healer
    rebuilds that shard once the disk works again."""

    import errno

    from s3free.engine import ObjectStore
    from s3free.storage.disk import LocalDisk
    from s3free.storage.faulty import FaultyDisk
    from tests.support.engine import disk_paths

    disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(tmp_path, N)]
    store = await ObjectStore.open(disks, meta_dir=tmp_path / "meta", k=K, m=2, block_size=BS)
    await store.create_bucket(BUCKET)
    heal = HealService(store, config(retry_backoff_s=0.05))
    await heal.start()
    heal._worker.cancel()
    try:
        from s3free.format.ids import object_id

        placement = store.diskset.placement(object_id(BUCKET, "deg"))
        victim = next(d for d in disks if d.root == placement[4].disk.root)
        victim.fail("create_temp", errno.EIO)
        data = await put(store, "deg", 2 * BS)
        victim.heal()
        await asyncio.sleep(0.05)
        m = await store.get_manifest(BUCKET, "deg")
        assert (BUCKET, "deg", m.version_id) in heal.queue.entries
        heal._worker = asyncio.ensure_future(heal._work())
        await heal.drain()
        assert not (await heal.verify(BUCKET, "deg")).needs_repair
        assert await store.get_object_bytes(BUCKET, "deg") == data
    finally:
        await heal.stop()
        await store.close()
