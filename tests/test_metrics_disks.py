"""Disk metrics and readiness in-process, on real files with the FaultyDisk wrapper: an EIO on a
shard read is timed and counted against its disk, and the bad shard it causes is counted with
its reason; readiness answers 503 once the index is closed."""

from __future__ import annotations

import asyncio
import errno

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from s3free.engine.diskmonitor import DiskMonitor
from s3free.obs import stage
from s3free.obs.endpoints import install
from s3free.obs.health import readiness
from s3free.obs.metrics import Sources
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk
from tests.support.engine import disk_paths, open_store, stream_of
from tests.support.obs import value


def _samples(metrics) -> dict:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_eio_on_a_shard_read_is_counted_against_its_disk(tmp_path):
    faulty = [FaultyDisk(LocalDisk(p)) for p in disk_paths(tmp_path, 4)]
    store = await open_store(tmp_path, disks=faulty, k=2, m=2)
    monitor = DiskMonitor(store)
    await monitor.start(background=False)
    app = web.Application()
    metrics = install(app, Sources(store.diskset, store, monitor))
    try:
        await store.create_bucket("bkt")
        data = bytes(range(256)) * 1000  # 256 KB: shard files of their own
        blocks = -(-len(data) // store.diskset.block_size)  # each block meets the EIO
        await store.put_object("bkt", "k", stream_of(data))
        manifest = await store.get_manifest("bkt", "k")
        position = store.diskset.slot_for(manifest.placement[0]).position
        before = _samples(metrics)
        faulty[position].fail("read_at", errno.EIO)
        assert await store.get_object_bytes("bkt", "k") == data
        await asyncio.sleep(0.05)  # fault listeners run on the loop
        after = _samples(metrics)
        disk = str(position)
        for name, labels, moved in (
            ("s3free_disk_errors_total", {"disk": disk, "kind": "hard"}, blocks),
            ("s3free_shards_bad_total", {"disk": disk, "reason": "io"}, blocks),
            ("s3free_shards_bad_total", {}, blocks),
            ("s3free_stage_seconds_count", {"stage": "erasure.decode"}, blocks),
        ):
            assert value(after, name, **labels) - value(before, name, **labels) == moved, name
        assert value(after, "s3free_disk_errors_total", kind="soft") == 0
        # The failed reads are timed too: k reads per block, one of them the failing one.
        reads = value(after, "s3free_disk_io_seconds_count", op="read") - value(
            before, "s3free_disk_io_seconds_count", op="read"
        )
        assert reads >= blocks * (store.diskset.k + 1)
    finally:
        for callback in app.on_cleanup:
            await callback(app)
        await monitor.stop()
        await store.close()
    assert metrics.observe_stage not in stage._observers  # cleanup unregisters
    assert metrics.on_fault not in store.fault_listeners


async def test_readiness_needs_the_index(tmp_path):
    store = await open_store(tmp_path, 4, k=2, m=2)
    sources = Sources(store.diskset, store)
    ready, body = readiness(sources)
    assert ready and body["index_loaded"]
    store.diskset.slots[3].mark_offline("test")
    ready, body = readiness(sources)
    assert ready and body["degraded"] and body["offline_positions"] == [3]
    await store.close()
    ready, body = readiness(sources)
    assert not ready and body["reasons"] == ["the index is not loaded"]
