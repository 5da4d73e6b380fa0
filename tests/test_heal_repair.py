"""Verify and repair of single object versions, on real files: bit flips, deleted, truncated
and swapped shard files, lost manifest copies, and more damage than the code can survive."""

from __future__ import annotations

import pytest

from s3free.errors import NoSuchKey
from s3free.format import decode_record
from s3free.heal import HealService
from s3free.meta.index import ListingEntry
from tests.support.heal import (
    BS,
    BUCKET,
    FULL_RECORD,
    HEAL_STORE,
    K,
    M,
    N,
    config,
    flip,
    manifest_copy,
    new_store,
    put,
    put_multipart,
    quarantined,
    shard_path,
    version_files,
)

pytestmark = HEAL_STORE


def generations(path) -> set[int]:
    raw = path.read_bytes()
    out = set()
    for offset in range(0, len(raw), FULL_RECORD):
        rec = raw[offset : offset + FULL_RECORD]
        out.add(decode_record(rec).header.generation)
    return out


async def test_clean_object_verifies_healthy(tmp_path, store):
    heal = HealService(store, config())
    await put(store, "a", 3 * BS + 5)
    health = await heal.verify(BUCKET, "a")
    assert health.healthy == N and health.block_min_good == N
    assert not health.needs_repair and health.repairable
    assert set(health.manifests.values()) == {"ok"}
    assert health.bytes_checked > 3 * BS
    with pytest.raises(NoSuchKey):
        await heal.verify(BUCKET, "nope")


@pytest.mark.parametrize("region", ["payload", "header", "footer"])
async def test_bit_flips_in_up_to_m_shards_per_block_are_repaired(tmp_path, region, store):
    heal = HealService(store, config())
    data = await put(store, "obj", 4 * BS + 100)
    before = await store.get_manifest(BUCKET, "obj")
    # m shards per block, rotating over data and parity shards
    damaged = {}
    for block in range(5):
        length = BS if block < 4 else 100
        for i in range(M):
            j = (block + 2 * i) % N
            flip(shard_path(store, before, 1, j), block, region, length, salt=block + i)
            damaged.setdefault(j, set()).add(block)
    health = await heal.verify(BUCKET, "obj")
    assert health.needs_repair and health.repairable
    bad = {s.shard: s for s in health.bad_shards()}
    assert set(bad) == set(damaged)
    for j, s in bad.items():
        assert s.state == "corrupt" and s.bad_blocks == len(damaged[j]), s
    assert health.block_min_good == N - M
    after = await heal.repair_object(BUCKET, "obj")
    assert not after.needs_repair, after.to_json()
    manifest = await store.get_manifest(BUCKET, "obj")
    assert manifest.generation == before.generation + 1
    for j in range(N):
        gens = generations(shard_path(store, manifest, 1, j))
        assert gens == ({before.generation + 1} if j in damaged else {before.generation})
        copy = manifest_copy(store, manifest, j).read_bytes()
        assert copy == manifest.encode()
    assert await store.get_object_bytes(BUCKET, "obj") == data
    assert len(quarantined(tmp_path)) == len(damaged)


async def test_deleted_truncated_files_and_lost_manifests_are_restored(tmp_path, store):
    heal = HealService(store, config())
    data = await put_multipart(store, "mp", [BS + 7, 2 * BS, 1])
    empty = await put(store, "empty", 0)
    m = await store.get_manifest(BUCKET, "mp")
    shard_path(store, m, 1, 0).unlink()
    path = shard_path(store, m, 2, 4)
    path.write_bytes(path.read_bytes()[: FULL_RECORD + 10])  # torn second record
    manifest_copy(store, m, 1).unlink()
    manifest_copy(store, m, 3).write_bytes(b"not a manifest")
    health = await heal.verify(BUCKET, "mp")
    states = {(s.part, s.shard): s.state for s in health.bad_shards()}
    assert states == {(1, 0): "missing", (2, 4): "corrupt"}
    placement = m.placement
    assert health.manifests[placement[1]] == "missing"
    assert health.manifests[placement[3]] == "corrupt"
    after = await heal.repair_object(BUCKET, "mp")
    assert not after.needs_repair, after.to_json()
    assert await store.get_object_bytes(BUCKET, "mp") == data
    now = await store.get_manifest(BUCKET, "mp")
    for j in range(N):
        assert manifest_copy(store, now, j).read_bytes() == now.encode()

    e = await store.get_manifest(BUCKET, "empty")
    shard_path(store, e, 1, 2).unlink()
    manifest_copy(store, e, 0).unlink()
    after = await heal.repair_object(BUCKET, "empty")
    assert not after.needs_repair
    assert await store.get_object_bytes(BUCKET, "empty") == empty


async def test_swapped_shard_files_are_caught_as_misplaced_and_repaired(tmp_path, store):
    heal = HealService(store, config())
    one = await put(store, "one", 2 * BS)
    two = await put(store, "two", 2 * BS)
    m1 = await store.get_manifest(BUCKET, "one")
    m2 = await store.get_manifest(BUCKET, "two")
    p1, p2 = shard_path(store, m1, 1, 1), shard_path(store, m2, 1, 1)
    b1, b2 = p1.read_bytes(), p2.read_bytes()
    p1.write_bytes(b2)
    p2.write_bytes(b1)
    for key in ("one", "two"):
        health = await heal.verify(BUCKET, key)
        assert [(s.shard, s.state) for s in health.bad_shards()] == [(1, "misplaced")]
        assert "names object" in health.bad_shards()[0].detail
        assert not (await heal.repair_object(BUCKET, key)).needs_repair
    assert await store.get_object_bytes(BUCKET, "one") == one
    assert await store.get_object_bytes(BUCKET, "two") == two


async def test_more_than_m_bad_shards_is_unrepairable_and_nothing_changes(tmp_path, store):
    heal = HealService(store, config())
    await put(store, "lost", 2 * BS)
    m = await store.get_manifest(BUCKET, "lost")
    for j in range(M + 1):
        flip(shard_path(store, m, 1, j), 1, "payload", salt=j)
    manifest_copy(store, m, 4).unlink()  # also something repairable: left alone too
    snapshot = version_files(tmp_path, m)
    health = await heal.repair_object(BUCKET, "lost")
    assert not health.repairable and health.block_min_good == K - 1
    assert any("block 1" in e and "needed" in e for e in health.errors), health.errors
    assert version_files(tmp_path, m) == snapshot
    assert (await store.get_manifest(BUCKET, "lost")).generation == m.generation
    [entry] = heal.status()["unrepairable"]
    assert (entry["bucket"], entry["key"], entry["reason"]) == (BUCKET, "lost", "data")
    assert "only 2 good shards" in entry["detail"]
    assert quarantined(tmp_path) == []


async def test_interrupted_repair_leaves_newer_shards_that_are_rejected_then_fixed(tmp_path, store):
    """A crash after a shard was committed with generation g+1 but before the manifests: the
    shard is newer than the manifest, readers reject it, verify flags it, repair fixes it."""

    heal = HealService(store, config())
    data = await put(store, "x", 2 * BS)
    m = await store.get_manifest(BUCKET, "x")
    path = shard_path(store, m, 1, 0)
    flip(path, 0, "payload")
    await heal.repair_object(BUCKET, "x")
    m2 = await store.get_manifest(BUCKET, "x")
    # Put the index back to the old manifest: shard 0 is now "from the future".
    store.index.put_object(
        BUCKET,
        "x",
        ListingEntry.from_manifest(m),
        m.encode(),
    )
    health = await heal.verify(BUCKET, "x")
    [bad] = health.bad_shards()
    assert bad.shard == 0 and "newer than the manifest" in bad.detail
    assert await store.get_object_bytes(BUCKET, "x") == data
    after = await heal.repair_object(BUCKET, "x")
    assert not after.needs_repair
    assert (await store.get_manifest(BUCKET, "x")).generation == m2.generation + 1
    assert await store.get_object_bytes(BUCKET, "x") == data


async def test_repair_jobs_by_key_and_by_bucket_and_unrepairable_survives_restart(tmp_path):
    store = await new_store(tmp_path)
    heal = HealService(store, config())
    try:
        data = {k: await put(store, k, BS + 1) for k in ("j1", "j2", "gone")}
        for key in ("j1", "j2"):
            m = await store.get_manifest(BUCKET, key)
            shard_path(store, m, 1, 3).unlink()
        g = await store.get_manifest(BUCKET, "gone")
        for j in range(M + 1):
            shard_path(store, g, 1, j).unlink()
        job = await heal.wait(heal.start_repair(BUCKET, "j1").id, timeout=10)
        assert (job.state, job.objects_checked, job.repaired) == ("done", 1, 1)
        job = await heal.wait(heal.start_repair(BUCKET, "nope").id, timeout=10)
        assert job.objects_checked == 0 and "does not exist" in job.error
        job = await heal.wait(heal.start_repair(BUCKET).id, timeout=10)
        assert (job.objects_checked, job.repaired, job.unrepairable) == (3, 1, 1)
        assert job.to_json()["kind"] == "repair"
        for key in ("j1", "j2"):
            assert await store.get_object_bytes(BUCKET, key) == data[key]
    finally:
        await store.close()
    store = await new_store(tmp_path)
    heal = HealService(store, config())
    await heal.start()
    try:
        [entry] = heal.status()["unrepairable"]
        assert entry["key"] == "gone" and entry["reason"] == "data"
    finally:
        await heal.stop()
        await store.close()
