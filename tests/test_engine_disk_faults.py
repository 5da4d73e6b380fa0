"""The engine over disks that fail: FaultyDisk(LocalDisk(path)) raises real OSErrors (EIO,
ENOSPC, EROFS) on the calls a test picks, in front of real directories.

Reads: up to m failing disks give exact bytes and faults naming those disks; more is
DataUnavailable. Writes: the write quorum is k+1 shards per block. Within it a put succeeds and
reports the shards it could not write; beyond it the put fails with InsufficientWriteQuorum and
leaves nothing behind (no visible object, no temp files, no shard or manifest files), and an
older version of the key stays readable.
"""

from __future__ import annotations

import asyncio
import errno
import random
from pathlib import Path

import pytest

from s3free.engine import ObjectStore, ShardFault
from s3free.errors import DataUnavailable, InsufficientWriteQuorum, NoSuchKey
from s3free.format.ids import object_id
from s3free.storage.disk import TMP_DIR, LocalDisk
from s3free.storage.faulty import FaultyDisk
from tests.support.engine import SMALL_BLOCK, disk_paths, open_store, shard_files, stream_of

BUCKET = "diskfaults"
K, M = 6, 3
N = K + M
BS = SMALL_BLOCK
SIZES = {"one": 1, "block": BS, "above": BS + 1, "big": 300_000}


def _data(key: str, size: int) -> bytes:
    return random.Random(f"{key}:{size}").randbytes(size)


async def faulty_store(root: Path) -> tuple[ObjectStore, list[FaultyDisk]]:
    disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(root, N)]
    store = await open_store(root, disks=disks)
    assert (store.diskset.k, store.diskset.m) == (K, M)
    assert store.diskset.write_quorum == K + 1
    # positions follow the order given on a fresh set
    assert [s.disk for s in store.diskset.slots] == disks
    return store, disks


async def put_all(store: ObjectStore, sizes: dict[str, int] = SIZES) -> dict[str, bytes]:
    out = {}
    for key, size in sizes.items():
        data = _data(key, size)
        await store.put_object(BUCKET, key, stream_of(data, 40_000))
        out[key] = data
    return out


async def read(store: ObjectStore, key: str, **kw) -> tuple[bytes, list[ShardFault]]:
    reader = await store.open_object(BUCKET, key, **kw)
    return await reader.read_all(), list(reader.faults)


def disk_id_of(store: ObjectStore, disk: FaultyDisk) -> str:
    return next(s.disk_id for s in store.diskset.slots if s.disk is disk)


def tmp_files(root: Path) -> list[Path]:
    return [p for d in disk_paths(root, N) for p in (d / TMP_DIR).glob("*")]


def files_of(root: Path, key: str) -> list[Path]:
    """Every file under any disk's directory for this key's object id."""
    oid = object_id(BUCKET, key).hex()
    return sorted(
        p
        for d in disk_paths(root, N)
        for p in (d / "objects" / oid[:2] / oid[2:4] / oid).rglob("*")
        if p.is_file()
    )


def staging_files(root: Path) -> list[Path]:
    return sorted(p for d in disk_paths(root, N) for p in (d / "multipart").rglob("part.*"))


async def settle() -> None:
    """Let fault listeners (scheduled on the loop from reader threads) run."""
    for _ in range(3):
        await asyncio.sleep(0)


# -- reads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["read_at", "open_read"])
async def test_read_errors_on_m_disks_give_exact_bytes_and_faults(tmp_path, op):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        expected = await put_all(store)
        failing = [disks[0], disks[4], disks[7]]
        failing_ids = {disk_id_of(store, d) for d in failing}
        for d in failing:
            d.fail(op, errno.EIO)
        heard: list[ShardFault] = []
        store.fault_listeners.append(heard.append)
        all_faults = []
        for key, data in expected.items():
            manifest = await store.get_manifest(BUCKET, key)
            got, faults = await read(store, key)
            assert got == data, key
            for f in faults:
                assert f.disk_id in failing_ids, f
                assert manifest.placement[f.shard_index] == f.disk_id
                assert f.part_number == 1 and f.key == key
                if op == "read_at":
                    assert "read failed" in f.reason and f.block_index is not None, f
                else:
                    # the first failure says why; later blocks skip the known-dead file
                    assert f.block_index is None, f
                    assert "open failed" in f.reason or "unusable" in f.reason, f
            holding_data = {j for j, d in enumerate(manifest.placement[:K]) if d in failing_ids}
            assert holding_data <= {f.shard_index for f in faults}, key
            if op == "open_read":
                assert holding_data <= {f.shard_index for f in faults if "open failed" in f.reason}
            all_faults += faults
            mid = len(data) // 2
            got, _ = await read(store, key, start=mid, end=len(data) - 1)
            assert got == data[mid:]
        assert all_faults
        assert sum(d.injected for d in failing) > 0
        await settle()
        assert sorted(map(repr, heard)) == sorted(map(repr, store.recent_faults))
        assert {f.disk_id for f in heard} <= failing_ids

        # a fourth failing disk is one too many, for every object
        disks[2].fail(op, errno.EIO)
        for key in expected:
            with pytest.raises(DataUnavailable):
                await store.get_object_bytes(BUCKET, key)
        # the disks recover: everything reads, nothing is reported
        for d in disks:
            d.heal()
        before = len(store.recent_faults)
        for key, data in expected.items():
            got, faults = await read(store, key)
            assert got == data and faults == []
        assert len(store.recent_faults) == before
    finally:
        await store.close()


async def test_a_disk_failing_in_the_middle_of_a_read(tmp_path):
    """read_at starts failing after a few calls on three disks: blocks already read came
    from them, later blocks come from parity, and the bytes are exact."""

    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        data = _data("big", 700_000)
        await store.put_object(BUCKET, "big", stream_of(data))
        blocks = -(-len(data) // BS)
        allowed = {}
        # Three disks that hold data shards of "big" (placement is random per set), so
        # the read certainly touches them.
        manifest = await store.get_manifest(BUCKET, "big")
        by_id = {disk_id_of(store, d): d for d in disks}
        victims = [by_id[disk_id] for disk_id in manifest.placement[: manifest.k]][:3]
        for n, d in enumerate(victims):
            d.fail("read_at", errno.EIO, after=2 + n)
            allowed[disk_id_of(store, d)] = 2 + n
        got, faults = await read(store, "big")
        assert got == data
        assert faults and {f.disk_id for f in faults} <= set(allowed)
        for disk_id, good_calls in allowed.items():
            # each block reads one record per shard: the first calls succeeded
            bad_blocks = {f.block_index for f in faults if f.disk_id == disk_id}
            assert len(bad_blocks) <= blocks - good_calls, (disk_id, bad_blocks)
    finally:
        await store.close()


# -- writes within the quorum -------------------------------------------------------------------


async def test_enospc_on_one_disk_during_put(tmp_path):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        heard: list[ShardFault] = []
        store.fault_listeners.append(heard.append)
        full = disks[2]
        full.fail("write", errno.ENOSPC)
        data = _data("big", 300_000)
        info = await store.put_object(BUCKET, "big", stream_of(data))
        await settle()
        assert full.injected > 0
        manifest = await store.get_manifest(BUCKET, "big")
        full_id = disk_id_of(store, full)
        j = manifest.placement.index(full_id)
        assert info.size == len(data)
        faults = [f for f in store.recent_faults if f.key == "big"]
        assert len(faults) == 1
        fault = faults[0]
        assert (fault.shard_index, fault.disk_id) == (j, full_id)
        assert fault.reason.startswith("not written")
        assert fault.version_id == manifest.version_id
        assert heard == faults
        # nothing of the failed shard on the full disk: no shard, manifest or temp file
        assert not [p for p in files_of(tmp_path, "big") if Path(full.root) in p.parents]
        assert len(files_of(tmp_path, "big")) == 2 * (N - 1)  # part + manifest per disk
        assert tmp_files(tmp_path) == []
        got, read_faults = await read(store, "big")
        assert got == data
        # the missing shard is reported again by readers that need it
        assert all(f.shard_index == j for f in read_faults)
        assert bool(read_faults) == (j < K)
    finally:
        await store.close()


async def test_not_written_fault_names_the_part(tmp_path):
    """A 'not written' fault is the healer's work order: it must name a part the object has
    (a single-part PUT has part 1 only)."""

    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        disks[5].fail("write", errno.ENOSPC)
        await store.put_object(BUCKET, "k", stream_of(_data("k", 1000)))
        manifest = await store.get_manifest(BUCKET, "k")
        (fault,) = [f for f in store.recent_faults if f.key == "k"]
        assert fault.part_number in {p.number for p in manifest.parts}, fault
    finally:
        await store.close()


async def test_two_disks_failing_in_different_ways_is_within_the_quorum(tmp_path):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        disks[0].fail("create_temp", errno.EIO)
        disks[8].fail("commit", errno.EIO)
        data = _data("x", 200_000)
        await store.put_object(BUCKET, "x", stream_of(data))
        ids = {disk_id_of(store, disks[0]), disk_id_of(store, disks[8])}
        faults = [f for f in store.recent_faults if f.key == "x"]
        assert {f.disk_id for f in faults} == ids
        assert all(f.reason.startswith("not written") for f in faults)
        assert (await store.get_object_bytes(BUCKET, "x")) == data
        assert len(files_of(tmp_path, "x")) == 2 * (N - 2)
        await store.close()
        assert tmp_files(tmp_path) == []
    except BaseException:
        await store.close()
        raise


async def test_manifest_write_failing_on_one_disk(tmp_path):
    store, disks = await faulty_store(tmp_path)
    await store.create_bucket(BUCKET)
    disks[3].fail("write_file", errno.EIO)
    data = _data("m", 150_000)
    await store.put_object(BUCKET, "m", stream_of(data))
    manifest = await store.get_manifest(BUCKET, "m")
    bad_id = disk_id_of(store, disks[3])
    (fault,) = [f for f in store.recent_faults if f.key == "m"]
    assert fault.disk_id == bad_id and fault.shard_index == manifest.placement.index(bad_id)
    assert "manifest" in fault.reason
    assert await store.get_object_bytes(BUCKET, "m") == data
    manifests = [p for p in files_of(tmp_path, "m") if p.name == "manifest"]
    assert len(manifests) == N - 1
    await store.close()
    # the manifest copies on the other disks are enough to rebuild the index
    import shutil

    shutil.rmtree(tmp_path / "meta")
    store = await open_store(tmp_path)
    try:
        assert await store.get_object_bytes(BUCKET, "m") == data
        assert (await store.get_manifest(BUCKET, "m")) == manifest
    finally:
        await store.close()


# -- writes beyond the quorum -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "err"),
    [
        ("write", errno.ENOSPC),
        ("create_temp", errno.EIO),
        ("commit", errno.EIO),
        ("write_file", errno.EIO),
        ("write", errno.EROFS),
    ],
)
async def test_failures_beyond_the_quorum_leave_nothing_behind(tmp_path, op, err):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        old = _data("old", 90_000)
        await store.put_object(BUCKET, "kept", stream_of(old))
        old_info = await store.head_object(BUCKET, "kept")
        old_files = files_of(tmp_path, "kept")
        for d in (disks[1], disks[2], disks[6]):
            d.fail(op, err)
        # a new key: nothing visible, nothing on disk
        with pytest.raises(InsufficientWriteQuorum):
            await store.put_object(BUCKET, "new", stream_of(_data("new", 200_000)))
        with pytest.raises(NoSuchKey):
            await store.head_object(BUCKET, "new")
        # an overwrite: the old version stays, whole
        with pytest.raises(InsufficientWriteQuorum):
            await store.put_object(BUCKET, "kept", stream_of(_data("v2", 200_000)))
        assert await store.head_object(BUCKET, "kept") == old_info
        assert await store.get_object_bytes(BUCKET, "kept") == old
        listing = await store.list_objects(BUCKET)
        assert [o.key for o in listing.objects] == ["kept"]
        await store.wait_idle()
    finally:
        await store.close()
    assert files_of(tmp_path, "new") == []
    assert files_of(tmp_path, "kept") == old_files
    assert tmp_files(tmp_path) == []
    assert sum(d.injected for d in disks) > 0
    # and after a restart (index rebuilt from the disks) still only the old object
    import shutil

    shutil.rmtree(tmp_path / "meta")
    store = await open_store(tmp_path)
    try:
        assert [o.key for o in (await store.list_objects(BUCKET)).objects] == ["kept"]
        assert await store.get_object_bytes(BUCKET, "kept") == old
    finally:
        await store.close()


# -- multipart ----------------------------------------------------------------------------------


async def _upload(store, key, sizes, *, upload_id=None, fail_part=None, fail=None):
    """Upload parts (optionally making fail() happen before part fail_part); returns the
    upload id, the (number, etag) list and the whole body."""
    upload_id = upload_id or await store.create_multipart_upload(BUCKET, key)
    listed, whole = [], b""
    for number, size in enumerate(sizes, 1):
        if number == fail_part and fail is not None:
            fail()
        data = _data(f"{key}#{number}", size)
        info = await store.upload_part(BUCKET, key, upload_id, number, stream_of(data))
        listed.append((number, info.etag))
        whole += data
    return upload_id, listed, whole


async def test_multipart_with_one_disk_failing_during_a_part(tmp_path):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        bad = disks[7]
        upload, listed, whole = await _upload(
            store,
            "mp",
            [100_000, BS + 10, 5],
            fail_part=2,
            fail=lambda: bad.fail("write", errno.ENOSPC),
        )
        bad.heal()
        await store.complete_multipart_upload(BUCKET, "mp", upload, listed)
        manifest = await store.get_manifest(BUCKET, "mp")
        bad_id = disk_id_of(store, bad)
        j = manifest.placement.index(bad_id)
        faults = [f for f in store.recent_faults if f.key == "mp"]
        assert faults and all(f.reason.startswith("not written") for f in faults)
        assert all((f.disk_id, f.shard_index) == (bad_id, j) for f in faults)
        # the shard is left out of the whole object (its other parts are dropped too):
        # the disk holds no file of it, and a reader that needs shard j says so
        assert not [p for p in files_of(tmp_path, "mp") if Path(bad.root) in p.parents]
        got, read_faults = await read(store, "mp")
        assert got == whole
        assert all((f.disk_id, f.shard_index) == (bad_id, j) for f in read_faults)
        assert bool(read_faults) == (j < K)
        assert staging_files(tmp_path) == []
        assert tmp_files(tmp_path) == []
        for number in (1, 2, 3):
            got = await store.get_object_bytes(BUCKET, "mp", part_number=number)
            lo = sum([100_000, BS + 10, 5][: number - 1])
            assert got == whole[lo : lo + len(got)]
    finally:
        await store.close()


async def test_multipart_part_beyond_the_quorum_can_be_retried(tmp_path):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        upload = await store.create_multipart_upload(BUCKET, "mp")
        first = _data("mp#1", 80_000)
        p1 = await store.upload_part(BUCKET, "mp", upload, 1, stream_of(first))
        for d in (disks[0], disks[3], disks[5]):
            d.fail("write", errno.EIO)
        second = _data("mp#2", 70_000)
        with pytest.raises(InsufficientWriteQuorum):
            await store.upload_part(BUCKET, "mp", upload, 2, stream_of(second))
        parts, _, _ = await store.list_parts(BUCKET, "mp", upload)
        assert [p.number for p in parts] == [1]
        # the failed attempt committed nothing: only part 1 is staged, on every disk
        assert [p.name for p in staging_files(tmp_path)] == ["part.00001"] * N
        for d in disks:
            d.heal()
        p2 = await store.upload_part(BUCKET, "mp", upload, 2, stream_of(second))
        await store.complete_multipart_upload(BUCKET, "mp", upload, [(1, p1.etag), (2, p2.etag)])
        assert await store.get_object_bytes(BUCKET, "mp") == first + second
        assert staging_files(tmp_path) == []
    finally:
        await store.close()
    assert tmp_files(tmp_path) == []


async def test_multipart_complete_with_one_disk_failing(tmp_path):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        upload, listed, whole = await _upload(store, "mp", [90_000, 20_000])
        disks[4].fail("rename", errno.EIO)
        await store.complete_multipart_upload(BUCKET, "mp", upload, listed)
        assert await store.get_object_bytes(BUCKET, "mp") == whole
        bad_id = disk_id_of(store, disks[4])
        faults = [f for f in store.recent_faults if f.key == "mp"]
        assert faults and {f.disk_id for f in faults} == {bad_id}
        uploads, _ = await store.list_multipart_uploads(BUCKET)
        assert uploads == []
    finally:
        await store.close()


@pytest.mark.parametrize("op", ["rename", "write_file"])
async def test_multipart_complete_beyond_the_quorum_fails_cleanly_and_can_be_retried(tmp_path, op):
    """A failed CompleteMultipartUpload (a 500 to the client) publishes nothing, and like S3
    the client may retry it: the upload and its parts must survive the failed attempt."""

    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        upload, listed, whole = await _upload(store, "mp", [90_000, 20_000])
        for d in (disks[2], disks[3], disks[8]):
            d.fail(op, errno.EIO)
        with pytest.raises(InsufficientWriteQuorum):
            await store.complete_multipart_upload(BUCKET, "mp", upload, listed)
        with pytest.raises(NoSuchKey):
            await store.head_object(BUCKET, "mp")
        await store.wait_idle()
        assert files_of(tmp_path, "mp") == []
        for d in disks:
            d.heal()
        uploads, _ = await store.list_multipart_uploads(BUCKET)
        assert [u.upload_id for u in uploads] == [upload]
        await store.complete_multipart_upload(BUCKET, "mp", upload, listed)
        assert await store.get_object_bytes(BUCKET, "mp") == whole
    finally:
        await store.close()


# -- a disk turning read-only -------------------------------------------------------------------


def _make_read_only(disk: FaultyDisk) -> None:
    for op in ("create_temp", "write", "commit", "write_file", "rename"):
        disk.fail(op, errno.EROFS)


async def test_disks_turning_read_only_during_a_sequence_of_puts(tmp_path):
    store, disks = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        expected: dict[str, bytes] = {}
        read_only: list[FaultyDisk] = []
        files_when_frozen: dict[int, list[Path]] = {}
        for n in range(12):
            if n == 3:
                read_only.append(disks[4])
            if n == 7:
                read_only.append(disks[6])
            for d in read_only:
                if id(d) not in files_when_frozen:
                    files_when_frozen[id(d)] = sorted(Path(d.root).rglob("*"))
                    _make_read_only(d)
            key = f"obj-{n:02d}"
            data = _data(key, [1, 5000, BS, 130_000][n % 4])
            await store.put_object(BUCKET, key, stream_of(data))
            expected[key] = data
            ro_ids = {disk_id_of(store, d) for d in read_only}
            faults = [f for f in store.recent_faults if f.key == key]
            assert {f.disk_id for f in faults} == ro_ids, key
            assert all(f.reason.startswith("not written") for f in faults)
        # a third read-only disk: the quorum (7 of 9) is lost, nothing is committed
        _make_read_only(disks[0])
        with pytest.raises(InsufficientWriteQuorum):
            await store.put_object(BUCKET, "one-too-many", stream_of(_data("x", 70_000)))
        with pytest.raises(NoSuchKey):
            await store.head_object(BUCKET, "one-too-many")
        for key, data in expected.items():
            assert await store.get_object_bytes(BUCKET, key) == data, key
        for d in read_only:
            assert sorted(Path(d.root).rglob("*")) == files_when_frozen[id(d)]
    finally:
        await store.close()
    assert files_of(tmp_path, "one-too-many") == []
    assert tmp_files(tmp_path) == []


async def test_shard_files_helper_sees_only_committed_objects(tmp_path):
    """Sanity for the helpers above: after a clean put, each of the nine disks has the part
    and the manifest, and shard_files (tests.support.engine) lists the nine part files."""

    store, _ = await faulty_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        await store.put_object(BUCKET, "k", stream_of(b"abc"))
        assert len(files_of(tmp_path, "k")) == 2 * N
        assert len(shard_files(tmp_path)) == N
    finally:
        await store.close()
