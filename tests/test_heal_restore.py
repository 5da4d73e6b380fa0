"""Repairs that need no new generation: shard files that are only missing (a wiped or replaced
disk, a deleted file) and lost manifest copies come back exactly as the write made them, and
nothing on the healthy disks is rewritten (spec 13.2)."""

from __future__ import annotations

import shutil
from pathlib import Path

from s3free.format import decode_record
from s3free.heal import HealService
from s3free.storage.layout import FORMAT_FILE, inline_path
from tests.support.engine import stream_of
from tests.support.heal import (
    BS,
    BUCKET,
    FULL_RECORD,
    HEAL_STORE,
    N,
    config,
    manifest_copy,
    put,
    put_multipart,
    shard_path,
)

pytestmark = HEAL_STORE


def snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    """(inode, mtime_ns) of every object file: a rewrite (temp + rename) changes the inode."""
    out = {}
    for p in root.glob("disk*/objects/**/*"):
        if p.is_file():
            st = p.stat()
            out[p] = (st.st_ino, st.st_mtime_ns)
    return out


async def test_missing_shards_and_lost_manifests_come_back_at_the_same_generation(tmp_path, store):
    heal = HealService(store, config())
    data = await put_multipart(store, "mp", [BS + 7, 2 * BS, 1])
    m = await store.get_manifest(BUCKET, "mp")
    index_before = store.index.get_manifest(BUCKET, "mp")
    shard_path(store, m, 1, 0).unlink()
    shard_path(store, m, 3, 2).unlink()
    manifest_copy(store, m, 4).unlink()
    untouched = snapshot(tmp_path)  # every file left, manifests included
    after = await heal.repair_object(BUCKET, "mp")
    assert not after.needs_repair, after.to_json()
    now = await store.get_manifest(BUCKET, "mp")
    assert now.generation == m.generation  # nothing disagreed: no new generation
    assert store.index.get_manifest(BUCKET, "mp") == index_before
    for j in range(N):
        assert manifest_copy(store, now, j).read_bytes() == now.encode()
    raw = shard_path(store, now, 1, 0).read_bytes()
    for offset in range(0, len(raw), FULL_RECORD):
        assert decode_record(raw[offset : offset + FULL_RECORD]).header.generation == 1
    # what was there is untouched: only the lost files were written
    after_snap = snapshot(tmp_path)
    assert {p: after_snap[p] for p in untouched} == untouched
    assert len(after_snap) == len(untouched) + 3
    assert await store.get_object_bytes(BUCKET, "mp") == data


async def test_a_wiped_disk_is_refilled_without_touching_the_others(tmp_path, store):
    heal = HealService(store, config())
    objects = {f"k{i}": await put(store, f"k{i}", 1000 * i + 5) for i in range(6)}
    small = b"tiny inline object"
    await store.put_object(BUCKET, "tiny", stream_of(small), expected_size=len(small))
    objects["tiny"] = small
    victim = Path(store.diskset.slots[2].disk.root)
    for entry in victim.iterdir():  # everything but the disk's identity
        if entry.name != FORMAT_FILE:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    others = {p: v for p, v in snapshot(tmp_path).items() if victim not in p.parents}
    gens = {k: (await store.get_manifest(BUCKET, k)).generation for k in objects}
    for key in objects:
        health = await heal.verify(BUCKET, key)
        assert health.needs_repair
        after = await heal.repair_object(BUCKET, key)
        assert not after.needs_repair, after.to_json()
        assert (await store.get_manifest(BUCKET, key)).generation == gens[key]
    assert {p: v for p, v in snapshot(tmp_path).items() if victim not in p.parents} == (others)
    tiny = await store.get_manifest(BUCKET, "tiny")
    vhex = tiny.version_hex
    assert (victim / inline_path(tiny.object_id, vhex)).exists()
    for key, data in objects.items():
        assert await store.get_object_bytes(BUCKET, key) == data
