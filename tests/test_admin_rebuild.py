"""The online index rebuild and bucket usage on the real engine and real directories.

Writes made while the rebuild walks the disks must survive the swap, and versions deleted or
replaced meanwhile must not come back. The walk is held at a chosen point by disks that block
one listing (the disks are the environment, the rebuild is the code under test), so the
writes land exactly where the test wants them: before the walk reached them, or after it had
seen everything.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from pathlib import Path

import pytest

from s3free.admin.info import usage
from s3free.admin.rebuild import IndexRebuilder, RebuildRefused
from s3free.admin.usage import manifest_raw_bytes, part_raw_bytes
from s3free.errors import NoSuchKey
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk
from tests.support.engine import disk_paths, open_store, stream_of


class HoldingDisk(FaultyDisk):
    """Blocks the first list_dir of a path starting with `hold_prefix` until released."""

    def __init__(self, inner, shared: dict) -> None:
        super().__init__(inner)
        self.shared = shared

    def list_dir(self, rel: str) -> list[str]:
        prefix = self.shared.get("prefix")
        if prefix is not None and rel.startswith(prefix) and not self.shared["held"].is_set():
            self.shared["held"].set()
            assert self.shared["release"].wait(30), "the test never released the walk"
        return super().list_dir(rel)


def files_under(root: Path, top: str) -> int:
    """Bytes of every file under <disk>/<top> on every disk."""
    total = 0
    for disk in sorted(root.glob("disk*")):
        for dirpath, _, files in os.walk(disk / top):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
    return total


async def listing(store, bucket: str) -> list[str]:
    return [o.key for o in (await store.list_objects(bucket, max_keys=1000)).objects]


@pytest.mark.parametrize("hold_at", ["objects/", "multipart"])
async def test_writes_during_the_walk_survive_the_swap(tmp_path, hold_at):
    """hold_at "objects/": the writes land before the walk reads any object directory;
    "multipart": after it has read them all (the side index holds the old versions and the
    deleted key, which the swap must correct)."""
    shared = {"prefix": None, "held": threading.Event(), "release": threading.Event()}
    old, new, keep = os.urandom(150_000), os.urandom(70_000), os.urandom(10)

    disks = [HoldingDisk(LocalDisk(p), shared) for p in disk_paths(tmp_path, 6)]
    for d in disks:
        d.root.mkdir(parents=True, exist_ok=True)
    store = await open_store(tmp_path, disks=disks, k=4, m=2)
    rebuilder = IndexRebuilder(store)
    await store.create_bucket("bkt")
    for key, data in (("over", old), ("gone", old), ("keep", keep)):
        await store.put_object("bkt", key, stream_of(data))
    shared["prefix"] = hold_at
    job = rebuilder.start()
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, shared["held"].wait, 10)
    # The walk is held: write, overwrite, delete, create, start an upload.
    await store.put_object("bkt", "over", stream_of(new))
    assert await store.delete_object("bkt", "gone")
    await store.put_object("bkt", "born", stream_of(keep))
    await store.create_bucket("later")
    await store.put_object("later", "x", stream_of(b"x" * 1000))
    upload = await store.create_multipart_upload("bkt", "mp")
    await store.upload_part("bkt", "mp", upload, 1, stream_of(new))
    assert job.state == "running"
    shared["release"].set()
    await rebuilder.wait()
    assert job.state == "done", job.error
    assert job.changed_during["objects"] >= 4, job.changed_during
    assert (job.objects, job.buckets, job.uploads) == (4, 2, 1)
    assert await listing(store, "bkt") == ["born", "keep", "over"]
    assert await store.get_object_bytes("bkt", "over") == new
    assert await store.get_object_bytes("bkt", "keep") == keep
    with pytest.raises(NoSuchKey):
        await store.get_object_bytes("bkt", "gone")
    assert await store.get_object_bytes("later", "x") == b"x" * 1000
    parts, _, _ = await store.list_parts("bkt", "mp", upload)
    assert [(p.number, p.etag) for p in parts] == [(1, hashlib.md5(new).hexdigest())]
    # The store keeps working on the new index, and a restart opens it as it is.
    await store.put_object("bkt", "after", stream_of(keep))
    await store.wait_idle()
    await store.close()
    assert (tmp_path / "meta.previous").is_dir()
    assert not (tmp_path / "meta.rebuild").exists()
    store = await open_store(tmp_path, n=6, k=4, m=2)
    assert await listing(store, "bkt") == ["after", "born", "keep", "over"]
    assert await store.get_object_bytes("bkt", "over") == new
    await store.close()


async def test_rebuild_restores_what_the_index_lost_and_reports_what_it_skipped(tmp_path):
    """A live index that lost records (here: an object and a bucket record dropped through
    the index itself) gets them back; an older version and a version without any manifest
    are counted as skipped, not restored."""
    data = os.urandom(100_000)

    store = await open_store(tmp_path, n=6, k=4, m=2)
    rebuilder = IndexRebuilder(store)
    await store.create_bucket("bkt")
    await store.create_bucket("other")
    for i in range(5):
        await store.put_object("bkt", f"k{i}", stream_of(data))
    await store.put_object("other", "o", stream_of(data))
    await store.wait_idle()
    # Lose records behind the store's back (what a damaged index looks like).
    await store.run_io(store.index.delete_object, "bkt", "k3")
    await store.run_io(store.index.delete_bucket, "other")
    # A stray older version of k0 (a manifest copy of a replaced version) and shards
    # with no manifest.
    manifest = await store.get_manifest("bkt", "k0")
    vdir = tmp_path / "disk0" / "objects" / manifest.object_id[:2] / manifest.object_id[2:4]
    stray = vdir / manifest.object_id / ("0" * 12 + "7" + "0" * 19)
    stray.mkdir(parents=True)
    (stray / "part.00001").write_bytes(b"not a shard")
    job = rebuilder.start()
    await rebuilder.wait()
    assert job.state == "done", job.error
    assert (job.objects, job.buckets) == (6, 2)
    assert job.skipped_no_manifest == 1
    assert await listing(store, "bkt") == [f"k{i}" for i in range(5)]
    assert await store.get_object_bytes("bkt", "k3") == data
    assert [b.name for b in await store.list_buckets()] == ["bkt", "other"]
    with pytest.raises(RebuildRefused):
        rebuilder._running.state = "running"
        rebuilder.start()
    rebuilder._running.state = "done"
    await store.close()


async def test_usage_is_exact_and_matches_the_files_on_the_disks(tmp_path):
    """Objects, bytes and raw bytes after put, overwrite, delete, multipart (in progress and
    completed), inline and empty objects; raw bytes equal the bytes of the files."""
    a, b = os.urandom(300_001), os.urandom(64 * 1024 * 3)

    store = await open_store(tmp_path, n=6, k=4, m=2)
    await store.create_bucket("bkt")
    await store.create_bucket("empty")
    sizes = {"a": a, "b": b, "tiny": b"t" * 100, "zero": b""}
    for key, data in sizes.items():
        await store.put_object("bkt", key, stream_of(data), expected_size=len(data))
    await store.put_object("bkt", "a", stream_of(b))  # overwrite
    sizes["a"] = b
    await store.put_object("bkt", "doomed", stream_of(a))
    await store.delete_object("bkt", "doomed")
    upload = await store.create_multipart_upload("bkt", "mp")
    p1 = await store.upload_part("bkt", "mp", upload, 1, stream_of(a))
    p2 = await store.upload_part("bkt", "mp", upload, 2, stream_of(b))
    await store.upload_part("bkt", "mp", upload, 2, stream_of(b))  # the same part again
    await store.wait_idle()
    rows, total = await usage(store, None)
    by = {r["bucket"]: r for r in rows}
    assert by["empty"]["objects"] == 0 and by["empty"]["raw_bytes"] == 0
    row = by["bkt"]
    assert row["objects"] == 4
    assert row["logical_bytes"] == sum(len(d) for d in sizes.values())
    assert row["raw_bytes"] == files_under(tmp_path, "objects")
    assert (row["uploads"], row["upload_parts"]) == (1, 2)
    assert row["upload_bytes"] == len(a) + len(b)
    staged = files_under(tmp_path, "multipart")
    records = sum(os.path.getsize(p) for p in tmp_path.glob("disk*/multipart/*/upload.json"))
    assert row["upload_raw_bytes"] == staged - records
    assert total.objects == 4 and total.raw_bytes == row["raw_bytes"]
    # raw ~ logical * (k+m)/k: the rest is headers, footers, padding and manifests.
    assert row["raw_bytes"] >= row["logical_bytes"] * 6 / 4
    await store.complete_multipart_upload("bkt", "mp", upload, [(1, p1.etag), (2, p2.etag)])
    await store.wait_idle()
    (row,), _ = await usage(store, "bkt")
    assert (row["objects"], row["uploads"], row["upload_bytes"]) == (5, 0, 0)
    assert row["logical_bytes"] == sum(len(d) for d in sizes.values()) + len(a) + len(b)
    assert row["raw_bytes"] == files_under(tmp_path, "objects")
    blob = await store.run_io(store.index.get_manifest, "bkt", "mp")
    assert manifest_raw_bytes(blob)[0] == len(a) + len(b)
    await store.close()


def test_part_raw_bytes_geometry():
    # 4+2, 64 KiB blocks: one full block is 6 records of 128+64+16384 bytes.
    from s3free.format.record import RECORD_OVERHEAD

    assert part_raw_bytes(65536, 65536, 4, 2) == 6 * (RECORD_OVERHEAD + 16384)
    assert part_raw_bytes(0, 65536, 4, 2) == 6 * RECORD_OVERHEAD
    assert part_raw_bytes(65537, 65536, 4, 2) == 6 * (2 * RECORD_OVERHEAD + 16384 + 1)
    assert part_raw_bytes(5, 65536, 4, 2) == 6 * (RECORD_OVERHEAD + 2)
