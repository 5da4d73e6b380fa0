"""Group commit: writes share one syncfs per disk, and a failed syncfs fails that disk's shard."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from s3free.errors import InsufficientWriteQuorum, NoSuchKey
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk
from tests.support.engine import disk_paths, open_store, stream_of


class CountingDisk(FaultyDisk):
    """A real disk that counts its syncfs calls."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.syncs = 0

    def sync(self) -> None:
        self.syncs += 1
        super().sync()


def disks(tmp_path, n=9):
    return [CountingDisk(LocalDisk(p)) for p in disk_paths(tmp_path, n)]


async def test_concurrent_puts_share_syncs(tmp_path):
    wrapped = disks(tmp_path)

    store = await open_store(tmp_path, disks=wrapped)
    await store.create_bucket("bkt")
    before = sum(d.syncs for d in wrapped)
    payloads = {f"k{i}": os.urandom(3000 + i) for i in range(40)}
    await asyncio.gather(*(store.put_object("bkt", k, stream_of(v)) for k, v in payloads.items()))
    used = sum(d.syncs for d in wrapped) - before
    # Alone, each PUT would sync each of its 9 disks twice (shards, then manifests).
    assert 0 < used < 2 * 9 * len(payloads)
    for key, value in payloads.items():
        assert await store.get_object_bytes("bkt", key) == value
    await store.close()


async def test_a_failed_syncfs_fails_that_shard_only(tmp_path):
    wrapped = disks(tmp_path)

    store = await open_store(tmp_path, disks=wrapped)
    await store.create_bucket("bkt")
    heard = []
    store.fault_listeners.append(heard.append)
    wrapped[4].fail("sync", errno.EIO)
    data = os.urandom(200_000)
    await store.put_object("bkt", "k", stream_of(data))
    await asyncio.sleep(0)
    bad = {f.disk_id for f in heard}
    assert bad == {store.diskset.slots[4].disk_id}
    assert all("sync" in f.reason for f in heard)
    wrapped[4].heal()
    assert await store.get_object_bytes("bkt", "k") == data
    await store.close()


async def test_syncfs_failing_beyond_the_quorum_commits_nothing(tmp_path):
    wrapped = disks(tmp_path)

    store = await open_store(tmp_path, disks=wrapped)
    await store.create_bucket("bkt")
    for d in wrapped[:3]:
        d.fail("sync", errno.EIO)
    with pytest.raises(InsufficientWriteQuorum):
        await store.put_object("bkt", "k", stream_of(os.urandom(100_000)))
    for d in wrapped:
        d.heal()
    with pytest.raises(NoSuchKey):
        await store.head_object("bkt", "k")
    await store.wait_idle()
    leftovers = [p for p in tmp_path.glob("disk*/objects/*/*/*/*/*")]
    assert leftovers == []
    assert [p for p in tmp_path.glob("disk*/.s3free.tmp/*")] == []
    await store.close()
