"""Inline versions (spec 8.5): a PUT of at most `inline_max` bytes whose size is announced is
stored as one file per disk, `objects/aa/bb/<o>.<v>.inline` = manifest envelope followed by that
disk's shard records, with no version directory. These tests use the real store on real files
and damage those files the way bitrot and crashes do."""

from __future__ import annotations

import errno
import os
import random
import shutil
import struct
from pathlib import Path

import crc32c
import pytest

from s3free.engine import ObjectStore
from s3free.errors import DataUnavailable, InsufficientWriteQuorum
from s3free.format import HEADER_SIZE, RECORD_OVERHEAD, decode_record
from s3free.format.errors import FormatError
from s3free.format.manifest import Manifest, PartEntry, envelope_length
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk, flip_bit
from s3free.storage.layout import parse_inline_name, version_dir
from tests.support.engine import disk_paths, inline_file, open_store, shard_files, stream_of

BUCKET = "inline"
K, M = 6, 3


def _data(n: int, seed: str = "x") -> bytes:
    return random.Random(f"{seed}/{n}").randbytes(n)


async def _put(store: ObjectStore, key: str, data: bytes, *, announce: bool = True):
    size = len(data) if announce else None
    return await store.put_object(BUCKET, key, stream_of(data, 1000), expected_size=size)


async def _store(root: Path, **kw) -> ObjectStore:
    store = await open_store(root, **kw)
    await store.create_bucket(BUCKET)
    return store


def inline_files(root: Path) -> list[Path]:
    return sorted(Path(root).glob("disk*/objects/*/*/*.inline"))


async def test_a_small_put_is_one_file_per_disk_holding_manifest_and_records(tmp_path):
    store = await _store(tmp_path)
    data = _data(4096)
    await _put(store, "small", data)
    manifest = await store.get_manifest(BUCKET, "small")
    assert manifest.inline
    files = inline_files(tmp_path)
    assert len(files) == K + M
    assert shard_files(tmp_path) == [] and shard_files(tmp_path, "manifest") == []
    for j in range(K + M):
        path = inline_file(store, manifest, j)
        on_disk, records = Manifest.decode_file(path.read_bytes())
        assert on_disk == manifest
        record = decode_record(bytes(records))
        assert record.header.shard_index == j
        assert record.header.block_length == len(data)
        assert parse_inline_name(path.name) == (
            manifest.object_id,
            manifest.version_hex,
        )
    # the index keeps the envelope only
    assert store.index.get_manifest(BUCKET, "small") == manifest.encode()
    assert await store.get_object_bytes(BUCKET, "small") == data
    assert await store.get_object_bytes(BUCKET, "small", start=100, end=199) == data[100:200]
    await store.close()


@pytest.mark.parametrize(
    "size,announce,inline",
    [(0, True, True), (1, True, True), (64 * 1024, True, True), (64 * 1024 + 1, True, False)],
)
async def test_which_puts_are_inline(tmp_path, size, announce, inline):
    # block size 64 KiB caps inline_max: a part of two blocks is never inline
    store = await _store(tmp_path)
    data = _data(size)
    await _put(store, "k", data, announce=announce)
    assert (await store.get_manifest(BUCKET, "k")).inline is inline
    assert bool(inline_files(tmp_path)) is inline
    assert await store.get_object_bytes(BUCKET, "k") == data
    await store.close()


async def test_an_unannounced_size_is_stored_as_ordinary_files(tmp_path):
    store = await _store(tmp_path)
    await _put(store, "k", b"abc", announce=False)
    assert not (await store.get_manifest(BUCKET, "k")).inline
    assert inline_files(tmp_path) == []
    assert len(shard_files(tmp_path)) == K + M
    await store.close()


@pytest.mark.parametrize("where", ["envelope", "header", "payload", "footer", "truncate", "delete"])
async def test_up_to_m_damaged_inline_files_read_back_exactly_and_are_reported(tmp_path, where):
    store = await _store(tmp_path)
    data = _data(5000)
    await _put(store, "k", data)
    manifest = await store.get_manifest(BUCKET, "k")
    for shard in (0, 2, 7):  # m shards: two data, one parity that a decode then needs
        path = inline_file(store, manifest, shard)
        base = envelope_length(path.read_bytes())
        if where == "envelope":
            # the envelope's length field: the records are looked for in the wrong place
            # (a flip in the JSON body only spoils that manifest copy, which reads do not
            # use: the index has the manifest; the scrubber finds such copies)
            flip_bit(path, 12, 2)
        elif where == "header":
            flip_bit(path, base + 40, 1)
        elif where == "payload":
            flip_bit(path, base + HEADER_SIZE + 10, 5)
        elif where == "footer":
            flip_bit(path, os.path.getsize(path) - 10, 0)
        elif where == "truncate":
            os.truncate(path, base + RECORD_OVERHEAD // 2)
        else:
            path.unlink()
    reader = await store.open_object(BUCKET, "k")
    assert await reader.read_all() == data
    assert sorted({f.shard_index for f in reader.faults}) == [0, 2, 7]
    await store.close()


async def test_more_than_m_damaged_inline_files_is_data_unavailable(tmp_path):
    store = await _store(tmp_path)
    await _put(store, "k", _data(3000))
    manifest = await store.get_manifest(BUCKET, "k")
    for shard in range(M + 1):
        path = inline_file(store, manifest, shard)
        flip_bit(path, envelope_length(path.read_bytes()) + HEADER_SIZE, 0)
    with pytest.raises(DataUnavailable):
        await store.get_object_bytes(BUCKET, "k")
    await store.close()


async def test_overwrite_and_delete_remove_the_inline_files(tmp_path):
    store = await _store(tmp_path)
    await _put(store, "k", b"first")
    first = set(inline_files(tmp_path))
    await _put(store, "k", b"second")
    await store.wait_idle()
    second = set(inline_files(tmp_path))
    assert len(second) == K + M and not first & second
    assert await store.get_object_bytes(BUCKET, "k") == b"second"
    assert await store.delete_object(BUCKET, "k")
    await store.wait_idle()
    assert inline_files(tmp_path) == []
    await store.close()


async def test_overwriting_an_inline_object_with_a_large_one_and_back(tmp_path):
    store = await _store(tmp_path)
    big = _data(200_000, "big")
    await _put(store, "k", b"tiny")
    await _put(store, "k", big)
    await store.wait_idle()
    assert inline_files(tmp_path) == [] and len(shard_files(tmp_path)) == (K + M)
    await _put(store, "k", b"tiny again")
    await store.wait_idle()
    assert shard_files(tmp_path) == [] and len(inline_files(tmp_path)) == K + M
    manifest = await store.get_manifest(BUCKET, "k")
    for slot in store.diskset.slots:
        vdir = version_dir(manifest.object_id, manifest.version_hex)
        assert not (Path(slot.disk.root) / vdir).exists()
    assert await store.get_object_bytes(BUCKET, "k") == b"tiny again"
    await store.close()


async def test_the_index_is_rebuilt_from_inline_files(tmp_path):
    store = await _store(tmp_path)
    expected = {f"k{i}": _data(i * 97, f"r{i}") for i in range(12)}
    for key, data in expected.items():
        await _put(store, key, data, announce=True)
    await store.close()
    shutil.rmtree(tmp_path / "meta")
    store = await open_store(tmp_path)
    listed = [o.key for o in (await store.list_objects(BUCKET)).objects]
    assert listed == sorted(expected)
    for key, data in expected.items():
        assert await store.get_object_bytes(BUCKET, key) == data
    await store.close()


async def test_a_header_update_keeps_every_disks_records(tmp_path):
    store = await _store(tmp_path)
    data = _data(1234)
    await _put(store, "k", data)
    info = await store.update_object_headers(BUCKET, "k", {"cache-control": "no-store"})
    assert info.http_headers == {"cache-control": "no-store"}
    manifest = await store.get_manifest(BUCKET, "k")
    assert manifest.generation == 2
    for j in range(K + M):
        on_disk, records = Manifest.decode_file(inline_file(store, manifest, j).read_bytes())
        assert on_disk == manifest
        assert decode_record(bytes(records)).header.shard_index == j
    # data shards gone: the parity records written with generation 1 still decode it
    for j in range(M):
        inline_file(store, manifest, j).unlink()
    assert await store.get_object_bytes(BUCKET, "k") == data
    await store.close()


async def test_a_failed_inline_file_on_one_disk_degrades_the_write(tmp_path):
    disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(tmp_path, K + M)]
    store = await _store(tmp_path, disks=disks)
    faults = []
    store.fault_listeners.append(faults.append)
    disks[0].fail("create_file", errno.ENOSPC)
    data = _data(2000)
    await _put(store, "k", data)
    assert len(inline_files(tmp_path)) == K + M - 1
    assert await store.get_object_bytes(BUCKET, "k") == data
    await store.wait_idle()
    assert any("not written" in f.reason for f in faults)
    await store.close()


async def test_inline_files_failing_beyond_the_quorum_leave_nothing(tmp_path):
    disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(tmp_path, K + M)]
    store = await _store(tmp_path, disks=disks)
    for disk in disks[:M]:  # quorum is k+1: m failures are one too many
        disk.fail("create_file", errno.EIO)
    with pytest.raises(InsufficientWriteQuorum):
        await _put(store, "k", b"never visible")
    await store.wait_idle()
    assert inline_files(tmp_path) == []
    assert (await store.list_objects(BUCKET)).objects == []
    await store.close()


def _manifest(**overrides) -> Manifest:
    fields = dict(
        bucket="bucket-a",
        key="k",
        object_id="0" * 31 + "1",
        version_id="01890a5d-ac96-774b-bcce-b302099a8057",
        size=4096,
        etag="a" * 32,
        last_modified_ms=1_700_000_000_000,
        content_type="",
        parts=(PartEntry(1, 4096, "a" * 32, 1, "1" * 64),),
        k=6,
        m=3,
        block_size=65_536,
        placement=tuple(f"{i:032x}" for i in range(9)),
        generation=1,
        merkle_root="3" * 64,
    )
    fields.update(overrides)
    return Manifest(**fields)


def _envelope(body: bytes) -> bytes:
    head = struct.pack("<8sHHI", b"BeeXLmf\0", 1, 0, len(body)) + body
    return head + crc32c.crc32c(head).to_bytes(4, "little")


def test_manifest_files_are_decoded_strictly():
    plain = _manifest()
    blob = plain.encode()
    assert Manifest.decode_file(blob)[0] == plain
    with pytest.raises(FormatError):
        Manifest.decode_file(blob + b"\0")  # trailing bytes after an ordinary manifest
    with pytest.raises(FormatError):
        Manifest.decode_file(blob[:-1])
    inline = _manifest(inline=True)
    assert b'"inline":true' in inline.encode() and b"inline" not in blob
    with pytest.raises(FormatError):
        Manifest.decode_file(inline.encode())  # inline without its records
    got, tail = Manifest.decode_file(inline.encode() + b"records")
    assert got == inline and bytes(tail) == b"records"
    with pytest.raises(FormatError):
        Manifest.decode(inline.encode() + b"records")  # decode takes one envelope only
    body = blob[16:-4].replace(b'"http_headers"', b'"http_headers":{},"inline":false,"x"')
    body = blob[16:-4].replace(b',"key"', b',"inline":false,"key"')
    with pytest.raises(FormatError, match="default"):
        Manifest.decode(_envelope(body))  # absent when false, never present with it
    two_parts = (PartEntry(1, 10, "a" * 32, 1, "1" * 64), PartEntry(2, 10, "b" * 32, 1, "2" * 64))
    with pytest.raises(FormatError, match="inline"):
        _manifest(inline=True, parts=two_parts, size=20).encode()
    big = (PartEntry(1, 70_000, "a" * 32, 2, "1" * 64),)
    with pytest.raises(FormatError, match="inline"):
        _manifest(inline=True, parts=big, size=70_000).encode()
