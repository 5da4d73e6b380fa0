"""The scrubber: bitrot over many objects, orphan collection with its grace period, resuming
from a checkpoint after a restart, pacing, and repairs racing overwrites and deletes."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from s3free.errors import NoSuchKey
from s3free.format.ids import uuid7
from s3free.heal import HealService
from s3free.meta.healstate import HealState
from s3free.meta.index import JournalEntry
from tests.support.engine import stream_of
from tests.support.heal import (
    BS,
    BUCKET,
    HEAL_STORE,
    M,
    N,
    config,
    flip,
    manifest_copy,
    new_store,
    put,
    shard_path,
)

pytestmark = HEAL_STORE

OLD = time.time() - 10 * 86400


def age(path: Path) -> None:
    """Make a file or a whole tree look ten days old."""
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (OLD, OLD))


async def test_scrub_finds_and_repairs_bitrot_over_many_objects(tmp_path, store):
    heal = HealService(store, config())
    try:
        expected = {}
        for i in range(24):
            expected[f"k{i:02d}"] = await put(store, f"k{i:02d}", (i % 4) * BS + i)
        damaged = set()
        for i, key in enumerate(expected):
            if i % 3 == 0:
                m = await store.get_manifest(BUCKET, key)
                for j in range(1 + i % M):
                    flip(
                        shard_path(store, m, 1, (i + j) % N),
                        0,
                        "payload",
                        salt=j,
                        block_length=min(BS, m.size) or 1,  # empty: hits the footer
                    )
                damaged.add(key)
        job = heal.start_scrub()
        job = await heal.wait(job.id, timeout=30)
        assert job.state == "done", job
        assert job.objects_checked == job.objects_total == 24
        assert job.repaired == len(damaged) and job.unrepairable == 0
        assert job.shards_bad >= len(damaged)
        for key, data in expected.items():
            assert not (await heal.verify(BUCKET, key)).needs_repair, key
            assert await store.get_object_bytes(BUCKET, key) == data
        # a second pass finds nothing
        again = await heal.wait(heal.start_scrub().id, timeout=30)
        assert (again.repaired, again.shards_bad) == (0, 0)
        assert heal.status()["scrub"]["id"] == again.id
    finally:
        await heal.stop()


async def test_orphans_older_than_grace_are_collected_young_ones_and_writes_in_flight_kept(
    tmp_path, store
):
    heal = HealService(store, config(orphan_grace_s=3600))
    try:
        data = await put(store, "live", 2 * BS)
        m = await store.get_manifest(BUCKET, "live")
        vhex = m.version_hex
        live_dir = manifest_copy(store, m, 0).parent
        age(live_dir)  # the live object is old too: it must stay
        disks = sorted(tmp_path.glob("disk*"))

        def copy_version(new_vhex: str, old: bool, manifests: bool = True) -> list[Path]:
            out = []
            for j in range(N):
                src = manifest_copy(store, m, j).parent
                dst = src.parent / new_vhex
                shutil.copytree(src, dst)
                if not manifests:
                    (dst / "manifest").unlink()
                if old:
                    age(dst)
                else:  # copytree keeps the source's (old) times
                    for q in [dst, *dst.iterdir()]:
                        os.utime(q)
                out.append(dst)
            return out

        old_orphan = copy_version(uuid7().hex, old=True)
        old_headerless = copy_version(uuid7().hex, old=True, manifests=False)
        young_orphan = copy_version(uuid7().hex, old=False)
        journalled_v = uuid7()
        journalled = copy_version(journalled_v.hex, old=True)
        store.index.put_journal(
            str(journalled_v),
            JournalEntry(BUCKET, "live", m.object_id, list(m.placement)),
        )
        # a stray shard file in the live version, and a copy on a disk outside placement
        stray = live_dir / "part.00007"
        shutil.copy(live_dir / "part.00001", stray)
        age(stray)
        outside = [d for d in store.diskset.slots if d.disk_id not in m.placement]
        assert not outside  # 5 disks, k+m = 5: every disk is in placement
        old_tmp = disks[0] / ".s3free.tmp" / uuid.uuid4().hex
        young_tmp = disks[1] / ".s3free.tmp" / uuid.uuid4().hex
        for p in (old_tmp, young_tmp):
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(b"x")
        age(old_tmp)
        old_upload = disks[2] / "multipart" / uuid.uuid4().hex
        old_upload.mkdir(parents=True)
        (old_upload / "part.00001").write_bytes(b"y")
        age(old_upload)
        # an upload in progress, its staged part aged: kept (the index knows it)
        upload = await store.create_multipart_upload(BUCKET, "mp")
        await store.upload_part(BUCKET, "mp", upload, 1, stream_of(b"z" * 1000))
        for d in disks:
            if (d / "multipart" / upload).exists():
                age(d / "multipart" / upload)

        # a PUT in flight during the scrub: its temp files are young
        gate = asyncio.Event()

        async def slow_body():
            yield b"a" * BS
            await gate.wait()
            yield b"b" * 10

        writing = asyncio.ensure_future(store.put_object(BUCKET, "inflight", slow_body()))
        await asyncio.sleep(0.05)
        job = await heal.wait(heal.start_scrub().id, timeout=30)
        gate.set()
        await writing
        assert job.state == "done", job

        assert all(not p.exists() for p in old_orphan + old_headerless)
        assert all(p.exists() for p in young_orphan + journalled)
        assert not stray.exists() and (live_dir / "part.00001").exists()
        assert not old_tmp.exists() and young_tmp.exists()
        assert not old_upload.exists()
        assert job.orphans_removed == 2 * N + 1 + 1 + 1
        assert await store.get_object_bytes(BUCKET, "live") == data
        assert await store.get_object_bytes(BUCKET, "inflight") == b"a" * BS + b"b" * 10
        await store.upload_part(BUCKET, "mp", upload, 2, stream_of(b"w"))
        assert vhex  # the live version directory name is unchanged
    finally:
        await heal.stop()


async def test_scrub_resumes_from_its_checkpoint_after_a_restart(tmp_path):
    store = await new_store(tmp_path)
    for i in range(30):
        await put(store, f"r{i:02d}", 100)
    # Slow enough (files/s) that the pass is stopped part-way.
    heal = HealService(store, config(scrub_files_per_s=100, checkpoint_every=4))
    await heal.start()
    job = heal.start_scrub()
    for _ in range(200):
        if job.objects_checked >= 10:
            break
        await asyncio.sleep(0.02)
    await heal.stop()
    assert job.state == "cancelled"
    record = HealState(store.index).checkpoint()
    assert record["in_progress"] and record["after"][1] >= "r08"
    stopped_at = record["after"][1]
    await store.close()

    store = await new_store(tmp_path)
    heal = HealService(store, config(checkpoint_every=4))
    await heal.start()  # resumes the interrupted pass by itself
    try:
        scrub_id = heal._scrub_id
        assert scrub_id is not None
        resumed = await heal.wait(scrub_id, timeout=30)
        assert resumed.state == "done"
        # counters carried over: the pass as a whole checked every object once or so,
        # and the resumed part started after the checkpoint
        assert resumed.objects_checked >= 30
        assert resumed.objects_checked - job.objects_checked <= 30 - int(stopped_at[1:])
        record = HealState(store.index).checkpoint()
        assert not record["in_progress"] and record["last_completed_ms"]
    finally:
        await heal.stop()
        await store.close()


async def test_scrub_is_paced_by_the_byte_rate_and_the_rate_can_change_live(tmp_path, store):
    heal = HealService(store, config())
    try:
        for i in range(4):
            await put(store, f"p{i}", 4 * BS)  # ~1.7 MB of records in all
        t0 = time.monotonic()
        job = await heal.wait(heal.start_scrub(rate_mb_s=2.0).id, timeout=30)
        elapsed = time.monotonic() - t0
        assert job.state == "done"
        assert job.throttled > 0
        # ~1.7 MB at 2 MB/s is ~0.85 s (less the small burst credit); generous bounds
        assert elapsed >= 0.8 * (job.bytes_checked / 2e6) - 0.5
        assert elapsed < 10

        job = heal.start_scrub(rate_mb_s=0.01)  # would take minutes
        await asyncio.sleep(0.2)
        assert job.state == "running"
        heal.set_rate(0)
        job = await heal.wait(job.id, timeout=10)
        assert job.state == "done"
    finally:
        await heal.stop()


@pytest.mark.parametrize("race", ["delete", "overwrite"])
async def test_repair_racing_an_overwrite_or_delete_never_resurrects_or_corrupts(tmp_path, race):
    store = await new_store(tmp_path)
    heal = HealService(store, config())
    try:
        await put(store, "r", 16 * BS)
        m = await store.get_manifest(BUCKET, "r")
        flip(shard_path(store, m, 1, 0), 3, "payload")
        # ~1.1 MB verified then ~1 MB rebuilt at 1 MB/s: the rebuild sleeps ~1 s
        job = heal.start_scrub(rate_mb_s=1.0)
        for _ in range(500):
            if job.shards_bad:
                break
            await asyncio.sleep(0.01)
        assert job.shards_bad and job.state == "running"
        new = None
        if race == "delete":
            assert await store.delete_object(BUCKET, "r")
        else:
            new = await put(store, "r", 2 * BS, salt="new")
        heal.set_rate(0)
        job = await heal.wait(job.id, timeout=30)
        assert job.state == "done" and job.repaired == 0
        assert heal.repairs["superseded"] == 1  # the race did hit the repair's switch
        await store.wait_idle()
        old_dirs = list(tmp_path.glob(f"disk*/objects/*/*/*/{m.version_id.replace('-', '')}"))
        assert old_dirs == []  # the repair's new shards went with the version
    finally:
        await heal.stop()
        await store.close()
    # The index rebuilt from the disks alone agrees.
    shutil.rmtree(tmp_path / "meta")
    store = await new_store(tmp_path)
    try:
        if new is None:
            with pytest.raises(NoSuchKey):
                await store.get_manifest(BUCKET, "r")
        else:
            assert await store.get_object_bytes(BUCKET, "r") == new
    finally:
        await store.close()
