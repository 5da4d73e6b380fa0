"""Verify, repair and orphan collection of inline versions (spec 8.5), on real files: the one
file per disk holds the manifest and that disk's record, so damage to either part of it, or the
loss of the whole file, must be found and mended without touching the other disks' files."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from s3free.format import HEADER_SIZE, decode_record
from s3free.format.ids import uuid7
from s3free.format.manifest import Manifest, envelope_length
from s3free.heal import HealService
from s3free.storage.faulty import flip_bit
from tests.support.engine import inline_file, stream_of
from tests.support.heal import BUCKET, HEAL_STORE, K, M, N, config, data_for, quarantined

pytestmark = HEAL_STORE

OLD = time.time() - 10 * 86400


async def put_inline(store, key: str, size: int) -> bytes:
    data = data_for(key, size)
    await store.put_object(BUCKET, key, stream_of(data, 1000), expected_size=size)
    assert (await store.get_manifest(BUCKET, key)).inline
    return data


def record_of(path: Path):
    raw = path.read_bytes()
    return decode_record(raw[envelope_length(raw) :])


async def test_damaged_and_lost_inline_files_are_found_and_rebuilt(tmp_path, store):
    heal = HealService(store, config())
    data = await put_inline(store, "small", 3000)
    before = await store.get_manifest(BUCKET, "small")
    payload = inline_file(store, before, 0)
    flip_bit(payload, envelope_length(payload.read_bytes()) + HEADER_SIZE + 5, 1)
    inline_file(store, before, 3).unlink()  # m = 2 shards gone: still repairable
    health = await heal.verify(BUCKET, "small")
    assert {s.shard: s.state for s in health.bad_shards()} == {0: "corrupt", 3: "missing"}
    assert health.manifests[before.placement[3]] == "missing"
    assert health.repairable and health.block_min_good == N - M
    after = await heal.repair_object(BUCKET, "small")
    assert not after.needs_repair, after.to_json()
    manifest = await store.get_manifest(BUCKET, "small")
    assert manifest.inline and manifest.generation == before.generation + 1
    for j in range(N):
        on_disk, records = Manifest.decode_file(inline_file(store, manifest, j).read_bytes())
        assert on_disk == manifest  # every copy carries the new generation...
        header = decode_record(bytes(records)).header
        assert header.shard_index == j
        # ...and only the rebuilt records carry it
        want = before.generation + 1 if j in (0, 3) else before.generation
        assert header.generation == want
    assert await store.get_object_bytes(BUCKET, "small") == data
    assert len(quarantined(tmp_path)) == 1  # the corrupt file; the missing one had none


async def test_a_rotten_manifest_in_an_inline_file_keeps_its_good_record(tmp_path, store):
    heal = HealService(store, config())
    data = await put_inline(store, "small", 700)
    before = await store.get_manifest(BUCKET, "small")
    path = inline_file(store, before, 1)
    record_before = record_of(path)
    flip_bit(path, 30, 4)  # inside the JSON body: that manifest copy fails its CRC
    health = await heal.verify(BUCKET, "small")
    assert health.manifests[before.placement[1]] == "corrupt"
    assert not health.bad_shards()  # the record after it is fine
    after = await heal.repair_object(BUCKET, "small")
    assert not after.needs_repair, after.to_json()
    manifest = await store.get_manifest(BUCKET, "small")
    on_disk, records = Manifest.decode_file(path.read_bytes())
    assert on_disk == manifest
    assert decode_record(bytes(records)) == record_before  # kept, not rebuilt
    assert await store.get_object_bytes(BUCKET, "small") == data


async def test_more_than_m_lost_inline_files_is_unrepairable_and_nothing_changes(tmp_path, store):
    heal = HealService(store, config())
    await put_inline(store, "small", 100)
    manifest = await store.get_manifest(BUCKET, "small")
    for j in range(M + 1):
        inline_file(store, manifest, j).unlink()
    left = {p: p.read_bytes() for p in tmp_path.glob("disk*/objects/*/*/*.inline")}
    assert len(left) == K - 1
    after = await heal.repair_object(BUCKET, "small")
    assert not after.repairable
    assert {p: p.read_bytes() for p in tmp_path.glob("disk*/objects/*/*/*.inline")} == left


async def test_scrub_collects_old_orphan_inline_files_and_keeps_live_and_young_ones(
    tmp_path, store
):
    heal = HealService(store, config(orphan_grace_s=3600))
    data = await put_inline(store, "live", 2000)
    manifest = await store.get_manifest(BUCKET, "live")
    live = [inline_file(store, manifest, j) for j in range(N)]
    for p in live:
        os.utime(p, (OLD, OLD))  # old, but referenced: kept
    old_orphans, young_orphans = [], []
    for target, when in ((old_orphans, OLD), (young_orphans, None)):
        vhex = uuid7().hex
        for p in live:
            dst = p.parent / f"{manifest.object_id}.{vhex}.inline"
            shutil.copy(p, dst)  # a version the index never pointed at
            os.utime(dst, (when, when) if when else None)
            target.append(dst)
    job = heal.start_scrub()
    job = await heal.wait(job.id, timeout=60)
    assert job.state == "done", job.to_json()
    assert job.orphans_removed == N
    assert not any(p.exists() for p in old_orphans)
    assert all(p.exists() for p in young_orphans + live)
    assert await store.get_object_bytes(BUCKET, "live") == data
