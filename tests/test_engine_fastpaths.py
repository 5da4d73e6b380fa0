"""The small-object fast paths, checked for correctness rather than speed: the decoded-manifest
cache, the pool's one-call path, and a GET's one-block prefetch (its errors and conditions)."""

from __future__ import annotations

import asyncio
import contextvars
import errno
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest

from s3free.engine import ObjectStore
from s3free.engine.manifestcache import ManifestCache
from s3free.engine.pool import IOPool
from s3free.errors import DataUnavailable
from s3free.format.errors import FormatError
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk, flip_bit
from tests.support.engine import disk_paths, inline_file, open_store, stream_of

BUCKET = "fast"


async def _store(root: Path, **kw) -> ObjectStore:
    store = await open_store(root, **kw)
    await store.create_bucket(BUCKET)
    return store


async def _put(store: ObjectStore, key: str, data: bytes):
    return await store.put_object(BUCKET, key, stream_of(data, 1000), expected_size=len(data))


async def test_manifest_cache_keys_on_exact_bytes(tmp_path):
    store = await _store(tmp_path)
    try:
        await _put(store, "a", b"x" * 100)
        manifest = await store.get_manifest(BUCKET, "a")
    finally:
        await store.close()
    cache = ManifestCache(entries=2)
    raw = manifest.encode()
    first = cache.decode(raw)
    assert first == manifest
    assert cache.decode(raw) is first  # the decode is shared
    bumped = replace(manifest, generation=manifest.generation + 1)
    assert cache.decode(bumped.encode()).generation == manifest.generation + 1
    damaged = bytearray(raw)
    damaged[40] ^= 1
    with pytest.raises(FormatError):
        cache.decode(bytes(damaged))  # never answered from the cache
    other = replace(manifest, content_type="text/other")
    cache.remember(other.encode(), other)
    assert cache.decode(raw) is not first  # evicted: only two entries are kept
    big = ManifestCache(max_bytes=10)
    assert big.decode(raw) is not big.decode(raw)  # too large to keep


async def test_pool_call_results_errors_and_context():
    pool = IOPool(2)
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("request-7")
    try:
        assert await pool.call(lambda a, b: a + b, 2, 3) == 5
        assert await pool.call(var.get) == "request-7"  # the context follows the call
        with pytest.raises(ZeroDivisionError):
            await pool.call(lambda: 1 / 0)
        results = await asyncio.gather(*(pool.call(os.getpid) for _ in range(50)))
        assert set(results) == {os.getpid()}
    finally:
        pool.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        pool.call(os.getpid)


async def test_prefetched_get_ranges_and_overwrite(tmp_path):
    store = await _store(tmp_path)
    try:
        data = random.Random(1).randbytes(5000)
        await _put(store, "k", data)
        assert await store.get_object_bytes(BUCKET, "k", prefetch=True) == data
        got = await store.get_object_bytes(BUCKET, "k", start=100, end=4000, prefetch=True)
        assert got == data[100:4001]
        newer = random.Random(2).randbytes(3000)
        await _put(store, "k", newer)  # the cache must not answer with the old version
        assert await store.get_object_bytes(BUCKET, "k", prefetch=True) == newer
        # A bigger object (several blocks) is read the ordinary way.
        big = random.Random(3).randbytes(store.diskset.block_size * 2 + 7)
        await store.put_object(BUCKET, "big", stream_of(big, 65536))
        assert await store.get_object_bytes(BUCKET, "big", prefetch=True) == big
    finally:
        await store.close()


async def test_prefetch_error_waits_for_the_condition_check(tmp_path):
    """A block that cannot be read is an error only when its bytes are asked for: a
    precondition that refuses the read still wins (304/412 before a 500)."""

    store = await _store(tmp_path)
    try:
        await _put(store, "k", b"y" * 3000)
        manifest = await store.get_manifest(BUCKET, "k")
        for shard in range(manifest.m + 1):  # more than m bad: unreadable
            path = inline_file(store, manifest, shard)
            flip_bit(path, os.path.getsize(path) - 100)

        class Refused(Exception):
            pass

        def refuse(info):
            raise Refused

        with pytest.raises(Refused):
            await store.open_object(BUCKET, "k", prepare=refuse, prefetch=True)
        with pytest.raises(DataUnavailable):
            await store.get_object_bytes(BUCKET, "k", prefetch=True)
    finally:
        await store.close()


async def test_prefetch_reads_through_disk_faults(tmp_path):
    disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(tmp_path, 9)]
    store = await _store(tmp_path, disks=disks)
    try:
        data = random.Random(4).randbytes(2000)
        await _put(store, "k", data)
        manifest = await store.get_manifest(BUCKET, "k")
        slot = store.diskset.slot_for(manifest.placement[0])
        slot.disk.fail("read_at", errno.EIO)
        assert await store.get_object_bytes(BUCKET, "k", prefetch=True) == data
        assert any(f.shard_index == 0 and "injected" in f.reason for f in store.recent_faults)
    finally:
        await store.close()
