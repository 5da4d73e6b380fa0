"""Functional tests of ObjectStore objects: put/get/head round trips across block boundaries,
metadata, ranges, failed writes that must leave nothing behind, key rules, delete, overwrite,
the read lease on a replaced version, preconditions and part numbers. Real disks, real engine,
64 KiB blocks."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path

import pytest

from s3free.errors import (
    BadDigest,
    IncompleteBody,
    InvalidObjectKey,
    InvalidPartNumber,
    InvalidRange,
    NoSuchKey,
    PreconditionFailed,
)
from s3free.format.ids import object_id, version_hex
from tests.support.engine import SMALL_BLOCK, open_store, shard_files, stream_of, with_store

B = SMALL_BLOCK
BUCKET = "objs"


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


pytestmark = pytest.mark.store(bucket=BUCKET)


def files_under(root: Path, sub: str) -> list[Path]:
    return sorted(p for disk in root.glob("disk*") for p in (disk / sub).rglob("*") if p.is_file())


def version_dirs(root: Path, bucket: str, key: str) -> dict[str, set[str]]:
    """version hex -> names of the disks holding a directory for it."""
    oid = object_id(bucket, key).hex()
    out: dict[str, set[str]] = {}
    for disk in sorted(root.glob("disk*")):
        for vdir in (disk / "objects" / oid[:2] / oid[2:4] / oid).glob("*"):
            out.setdefault(vdir.name, set()).add(disk.name)
    return out


def vhex(version_id: str) -> str:
    return version_hex(version_id)


async def assert_nothing_left(store, root: Path, key: str) -> None:
    """After a failed write into an otherwise empty bucket: nothing visible, nothing on disk."""
    await store.wait_idle()
    # Checked first, with no other await in between: once the error has reached the caller
    # and wait_idle has returned, no temp file may be left for "later".
    assert files_under(root, ".s3free.tmp") == [], "temp shard files left behind"
    assert files_under(root, "objects") == [], "object files left behind"
    with pytest.raises(NoSuchKey):
        await store.head_object(BUCKET, key)
    listing = await store.list_objects(BUCKET)
    assert listing.objects == []


async def chunks(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i : i + size]


class ClientGone(Exception):
    pass


async def breaking_stream(data: bytes, fail_at: int):
    """Sends data[:fail_at] in pieces, then fails as a dropped connection would."""
    async for chunk in chunks(data[:fail_at], 30_000):
        yield chunk
    raise ClientGone("connection reset by peer")


# -- round trips ------------------------------------------------------------------------------

SIZES = [0, 1, B - 1, B, B + 1, 3 * B + 17]


@pytest.mark.parametrize("size", SIZES, ids=[f"size{s}" for s in SIZES])
async def test_put_get_head_round_trip(tmp_path, size, store):
    data = payload(size)

    info = await store.put_object(BUCKET, "obj", stream_of(data, chunk=12_345))
    assert info.size == size
    assert info.etag == md5(data)
    assert info.parts_count == 1
    head = await store.head_object(BUCKET, "obj")
    assert head == info
    reader = await store.open_object(BUCKET, "obj")
    assert reader.content_length == size
    assert reader.info.etag == md5(data)
    got = await reader.read_all()
    assert got == data
    listing = await store.list_objects(BUCKET)
    assert [(o.key, o.size, o.etag) for o in listing.objects] == [("obj", size, md5(data))]
    # erasure coded: one shard file on each of the k+m = 9 disks
    assert len(shard_files(tmp_path)) == 9
    assert version_dirs(tmp_path, BUCKET, "obj") == {
        vhex(info.version_id): {f"disk{i}" for i in range(9)}
    }


async def test_metadata_is_stored_and_returned(tmp_path):
    data = payload(B + 5)
    meta = {"owner": "alice", "ünïcode": "välue ✓", "empty": ""}
    headers = {"Cache-Control": "no-cache", "Content-Disposition": 'attachment; filename="x.bin"'}
    sums = {"sha256": hashlib.sha256(data).hexdigest()}

    async def body(store):
        info = await store.put_object(
            BUCKET,
            "doc.bin",
            stream_of(data),
            content_type="application/x-test",
            user_metadata=meta,
            http_headers=headers,
            checksums=dict(sums),
        )
        for seen in (info, await store.head_object(BUCKET, "doc.bin")):
            assert seen.content_type == "application/x-test"
            assert seen.user_metadata == meta
            assert seen.http_headers == headers
            assert seen.checksums == sums
        reader = await store.open_object(BUCKET, "doc.bin")
        assert reader.info.user_metadata == meta
        assert await reader.read_all() == data

        # checksums may be filled in by a stream wrapper once the body has been read
        late: dict[str, str] = {}

        async def hashing(stream):
            digest = hashlib.sha256()
            async for chunk in stream:
                digest.update(chunk)
                yield chunk
            late["sha256"] = digest.hexdigest()

        await store.put_object(BUCKET, "late", hashing(stream_of(data)), checksums=late)
        assert (await store.head_object(BUCKET, "late")).checksums == sums

    await with_store(tmp_path, body, bucket=BUCKET)

    # the metadata lives in the manifests on the disks: it survives a lost index
    shutil.rmtree(tmp_path / "meta")

    async def after(store):
        head = await store.head_object(BUCKET, "doc.bin")
        assert (head.content_type, head.user_metadata, head.http_headers, head.checksums) == (
            "application/x-test",
            meta,
            headers,
            sums,
        )
        assert await store.get_object_bytes(BUCKET, "doc.bin") == data

    async def reopen():
        store = await open_store(tmp_path)
        try:
            await after(store)
        finally:
            await store.close()

    await reopen()


# -- ranges -----------------------------------------------------------------------------------

RANGE_SIZE = 3 * B + 17
RANGES = [
    (0, 0),  # first byte
    (RANGE_SIZE - 1, RANGE_SIZE - 1),  # last byte
    (B - 1, B),  # the two bytes either side of a block boundary
    (B - 10, 2 * B + 10),  # spans three blocks
    (B, 2 * B - 1),  # exactly one block
    (0, RANGE_SIZE - 1),  # whole
    (5, None),  # start only
    (3 * B, None),  # the short last block
    (10, RANGE_SIZE + 1000),  # end past the object is clipped
    (None, 99),  # end only: bytes 0..99
]


async def test_ranges_equal_slices(store):
    data = payload(RANGE_SIZE)

    await store.put_object(BUCKET, "r", stream_of(data))
    for start, end in RANGES:
        lo = 0 if start is None else start
        hi = RANGE_SIZE if end is None else min(end + 1, RANGE_SIZE)
        reader = await store.open_object(BUCKET, "r", start=start, end=end)
        assert reader.content_length == hi - lo, (start, end)
        got = await reader.read_all()
        assert got == data[lo:hi], (start, end)


async def test_invalid_ranges(tmp_path, store):
    await store.put_object(BUCKET, "r", stream_of(payload(1000)))
    await store.put_object(BUCKET, "empty", stream_of(b""))
    for start, end in [(1000, None), (1000, 2000), (5000, 6000), (-1, 10), (10, 5)]:
        with pytest.raises(InvalidRange):
            await store.open_object(BUCKET, "r", start=start, end=end)
    with pytest.raises(InvalidRange):
        await store.open_object(BUCKET, "empty", start=0, end=0)
    # a refused range holds no lease: an overwrite removes the old files at once
    old = (await store.head_object(BUCKET, "r")).version_id
    await store.put_object(BUCKET, "r", stream_of(b"new"))
    await store.wait_idle()
    assert vhex(old) not in version_dirs(tmp_path, BUCKET, "r")


# -- failed writes leave nothing behind -------------------------------------------------------


@pytest.mark.parametrize("announced", [3 * B + 1, 3 * B - 1, B + 1], ids=["short", "long", "far"])
async def test_expected_size_mismatch_leaves_nothing(tmp_path, announced, store):
    data = payload(3 * B)  # 3 * B + 1 announced: body too short; 3 * B - 1: too long

    with pytest.raises(IncompleteBody):
        await store.put_object(BUCKET, "k", stream_of(data), expected_size=announced)
    await assert_nothing_left(store, tmp_path, "k")


async def test_expected_md5_mismatch_leaves_nothing(tmp_path, store):
    data = payload(2 * B + 3)
    wrong = hashlib.md5(data + b"x").digest()

    with pytest.raises(BadDigest):
        await store.put_object(BUCKET, "k", stream_of(data), expected_md5=wrong)
    await assert_nothing_left(store, tmp_path, "k")
    # the right size and digest are accepted
    info = await store.put_object(
        BUCKET,
        "k",
        stream_of(data),
        expected_size=len(data),
        expected_md5=hashlib.md5(data).digest(),
    )
    assert info.etag == md5(data)
    assert await store.get_object_bytes(BUCKET, "k") == data


@pytest.mark.parametrize("fail_at", [0, 10, B, 2 * B + 100])
async def test_stream_failing_midway_leaves_nothing(tmp_path, fail_at, store):
    data = payload(3 * B)

    with pytest.raises(ClientGone):
        await store.put_object(BUCKET, "k", breaking_stream(data, fail_at))
    await assert_nothing_left(store, tmp_path, "k")


# -- keys -------------------------------------------------------------------------------------

BAD_KEYS = [
    "",
    "a" * 1025,
    "é" * 512 + "a",  # 1025 bytes in UTF-8
    "a\x00b",
    "\x00",
    "\ud800",  # a lone surrogate has no UTF-8 form
]

GOOD_KEYS = [
    "a" * 1024,
    "é" * 512,  # exactly 1024 bytes
    "ünïcödé/ファイル 😀.txt",
    "with space",
    " leading and trailing ",
    "special !\"#$%&'()*+,;=?@[\\]^`{|}~",
    "../../escape/attempt",
    "./.",
    "a\nb\tc\r",
    "\x01\x7f",
    "/",
    "//double//slash//",
]


@pytest.mark.store(n=3)
async def test_invalid_keys(tmp_path, store):
    for key in BAD_KEYS:
        with pytest.raises(InvalidObjectKey):
            await store.put_object(BUCKET, key, stream_of(b"x"))
        with pytest.raises(InvalidObjectKey):
            await store.delete_object(BUCKET, key)
        with pytest.raises(InvalidObjectKey):
            await store.create_multipart_upload(BUCKET, key)
    assert (await store.list_objects(BUCKET)).objects == []
    assert files_under(tmp_path, "objects") == []
    assert not list(tmp_path.glob("disk*/multipart/*"))


@pytest.mark.store(n=3)
async def test_reading_invalid_keys_is_a_storage_error(store):
    """A GET/HEAD naming a key no object can have is refused with a storage error the S3
    layer can map (not a UnicodeEncodeError from deep inside the index)."""

    for key in BAD_KEYS:
        with pytest.raises((InvalidObjectKey, NoSuchKey)):
            await store.head_object(BUCKET, key)
        with pytest.raises((InvalidObjectKey, NoSuchKey)):
            await store.get_object_bytes(BUCKET, key)


@pytest.mark.store(n=3)
async def test_unusual_keys_round_trip(tmp_path, store):
    for i, key in enumerate(GOOD_KEYS):
        await store.put_object(BUCKET, key, stream_of(payload(100 + i, seed=i)))
    for i, key in enumerate(GOOD_KEYS):
        assert await store.get_object_bytes(BUCKET, key) == payload(100 + i, seed=i)
        assert (await store.head_object(BUCKET, key)).key == key
    listing = await store.list_objects(BUCKET)
    assert [o.key for o in listing.objects] == sorted(GOOD_KEYS, key=lambda k: k.encode())
    # keys name nothing on the disks: nothing lands outside the disk and index dirs
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "disk0",
        "disk1",
        "disk2",
        "meta",
        "meta.lock",
    ]


# -- delete and overwrite ---------------------------------------------------------------------


async def test_delete_is_idempotent_and_removes_files(tmp_path):
    data = payload(2 * B + 1)

    async def body(store):
        await store.put_object(BUCKET, "keep", stream_of(b"keep me"))
        info = await store.put_object(BUCKET, "k", stream_of(data))
        assert set(version_dirs(tmp_path, BUCKET, "k")) == {vhex(info.version_id)}
        assert await store.delete_object(BUCKET, "k") is True
        assert await store.delete_object(BUCKET, "k") is False
        assert await store.delete_object(BUCKET, "never-was") is False
        await store.wait_idle()
        with pytest.raises(NoSuchKey):
            await store.head_object(BUCKET, "k")
        with pytest.raises(NoSuchKey):
            await store.get_object_bytes(BUCKET, "k")
        assert [o.key for o in (await store.list_objects(BUCKET)).objects] == ["keep"]
        assert version_dirs(tmp_path, BUCKET, "k") == {}
        assert len(shard_files(tmp_path)) == 9  # only "keep" is left
        assert await store.get_object_bytes(BUCKET, "keep") == b"keep me"

    await with_store(tmp_path, body, bucket=BUCKET)

    # a deleted object does not come back when the index is rebuilt from the disks
    shutil.rmtree(tmp_path / "meta")

    async def reopen():
        store = await open_store(tmp_path)
        try:
            with pytest.raises(NoSuchKey):
                await store.head_object(BUCKET, "k")
            assert [o.key for o in (await store.list_objects(BUCKET)).objects] == ["keep"]
        finally:
            await store.close()

    await reopen()


async def test_overwrite_replaces_content_and_old_files(tmp_path, store):
    old, new = payload(3 * B + 9, seed=1), payload(B // 2, seed=2)

    first = await store.put_object(BUCKET, "k", stream_of(old), content_type="text/old")
    second = await store.put_object(BUCKET, "k", stream_of(new))
    assert second.version_id != first.version_id
    assert await store.get_object_bytes(BUCKET, "k") == new
    head = await store.head_object(BUCKET, "k")
    assert (head.size, head.etag, head.content_type) == (len(new), md5(new), "")
    await store.wait_idle()
    assert version_dirs(tmp_path, BUCKET, "k") == {
        vhex(second.version_id): {f"disk{i}" for i in range(9)}
    }
    listing = await store.list_objects(BUCKET)
    assert [(o.key, o.size, o.etag) for o in listing.objects] == [("k", len(new), md5(new))]


async def test_reader_of_old_version_survives_overwrite(tmp_path, store):
    old, new = payload(4 * B + 1, seed=3), payload(B, seed=4)

    first = await store.put_object(BUCKET, "k", stream_of(old))
    whole = await store.open_object(BUCKET, "k")
    partial = await store.open_object(BUCKET, "k", start=B - 5)
    it = partial.__aiter__()
    head_chunk = await it.__anext__()  # the partial reader is mid-way when the swap happens

    second = await store.put_object(BUCKET, "k", stream_of(new))
    await store.wait_idle()
    # both versions are on disk while readers of the old one remain
    assert set(version_dirs(tmp_path, BUCKET, "k")) == {
        vhex(first.version_id),
        vhex(second.version_id),
    }
    assert await store.get_object_bytes(BUCKET, "k") == new

    assert await whole.read_all() == old
    await store.wait_idle()
    assert vhex(first.version_id) in version_dirs(tmp_path, BUCKET, "k")  # one reader left

    rest = b"".join([chunk async for chunk in it])
    assert bytes(head_chunk) + rest == old[B - 5 :]
    await store.wait_idle()
    assert set(version_dirs(tmp_path, BUCKET, "k")) == {vhex(second.version_id)}
    assert whole.faults == [] and partial.faults == []

    # a reader closed without reading gives its lease back too
    third_reader = await store.open_object(BUCKET, "k")
    await store.put_object(BUCKET, "k", stream_of(old))
    await third_reader.aclose()
    await store.wait_idle()
    assert vhex(second.version_id) not in version_dirs(tmp_path, BUCKET, "k")


async def test_reader_of_deleted_object_finishes(tmp_path, store):
    data = payload(3 * B, seed=5)

    info = await store.put_object(BUCKET, "k", stream_of(data))
    reader = await store.open_object(BUCKET, "k")
    assert await store.delete_object(BUCKET, "k")
    await store.wait_idle()
    with pytest.raises(NoSuchKey):
        await store.head_object(BUCKET, "k")
    assert vhex(info.version_id) in version_dirs(tmp_path, BUCKET, "k")
    assert await reader.read_all() == data
    await store.wait_idle()
    assert version_dirs(tmp_path, BUCKET, "k") == {}


# -- preconditions ----------------------------------------------------------------------------


async def test_precondition_failure_keeps_old_object(tmp_path, store):
    old, new = payload(2 * B, seed=6), payload(B + 3, seed=7)
    seen = []

    def if_match_nothing(current):
        seen.append(current)
        raise PreconditionFailed("If-None-Match: * and the key exists")

    first = await store.put_object(BUCKET, "k", stream_of(old), user_metadata={"v": "1"})
    with pytest.raises(PreconditionFailed):
        await store.put_object(BUCKET, "k", stream_of(new), precondition=if_match_nothing)
    assert len(seen) == 1 and seen[0].etag == md5(old) and seen[0].version_id == (first.version_id)
    await store.wait_idle()
    assert await store.get_object_bytes(BUCKET, "k") == old
    assert await store.head_object(BUCKET, "k") == first
    assert version_dirs(tmp_path, BUCKET, "k") == {
        vhex(first.version_id): {f"disk{i}" for i in range(9)}
    }
    assert files_under(tmp_path, ".s3free.tmp") == []

    # a refused write of a new key leaves nothing, and the callable saw no object
    with pytest.raises(PreconditionFailed):
        await store.put_object(BUCKET, "fresh", stream_of(new), precondition=if_match_nothing)
    assert seen[-1] is None
    await store.wait_idle()
    with pytest.raises(NoSuchKey):
        await store.head_object(BUCKET, "fresh")
    assert version_dirs(tmp_path, BUCKET, "fresh") == {}

    # a condition that holds lets the write through
    def if_match_old(current):
        if current is None or current.etag != md5(old):
            raise PreconditionFailed("If-Match")

    info = await store.put_object(BUCKET, "k", stream_of(new), precondition=if_match_old)
    assert await store.get_object_bytes(BUCKET, "k") == new
    await store.wait_idle()
    assert set(version_dirs(tmp_path, BUCKET, "k")) == {vhex(info.version_id)}


# -- missing keys and part numbers ------------------------------------------------------------


@pytest.mark.store(n=3)
async def test_missing_key(store):
    await store.put_object(BUCKET, "present", stream_of(b"x"))
    for key in ("absent", "presen", "present/", "Present"):
        with pytest.raises(NoSuchKey):
            await store.get_object_bytes(BUCKET, key)
        with pytest.raises(NoSuchKey):
            await store.head_object(BUCKET, key)


async def test_part_number_on_single_and_multipart_objects(store):
    single = payload(2 * B + 1, seed=8)
    parts = [payload(B + 7, seed=9), payload(2 * B, seed=10), payload(333, seed=11)]

    await store.put_object(BUCKET, "single", stream_of(single))
    reader = await store.open_object(BUCKET, "single", part_number=1)
    assert await reader.read_all() == single
    for bad in (0, 2, 10_000):
        with pytest.raises(InvalidPartNumber):
            await store.open_object(BUCKET, "single", part_number=bad)

    upload = await store.create_multipart_upload(BUCKET, "multi")
    done = []
    for number, data in zip((2, 4, 9), parts, strict=True):
        info = await store.upload_part(BUCKET, "multi", upload, number, stream_of(data))
        done.append((number, info.etag))
    await store.complete_multipart_upload(BUCKET, "multi", upload, done)
    for number, data in zip((2, 4, 9), parts, strict=True):
        reader = await store.open_object(BUCKET, "multi", part_number=number)
        assert reader.content_length == len(data)
        assert await reader.read_all() == data, number
    for bad in (1, 3, 10):
        with pytest.raises(InvalidPartNumber):
            await store.open_object(BUCKET, "multi", part_number=bad)
