"""Concurrency tests of the real engine: parallel puts, racing writers of one key, readers during
overwrites (the version lease), delete racing put, writes into a bucket deleted meanwhile, and
parallel and aborted multipart part uploads. Every wait is bounded."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest

from s3free.errors import NoSuchBucket, NoSuchKey, NoSuchUpload
from s3free.format.ids import object_id, version_hex
from tests.support.engine import SMALL_BLOCK, bounded, open_store, shard_files, stream_of

B = SMALL_BLOCK
BUCKET = "conc"
TIMEOUT = 20  # seconds; any single wait longer than this is a hang


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed * 104_729 + size).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


pytestmark = pytest.mark.store(bucket=BUCKET)


def version_dirs(root: Path, key: str, bucket: str = BUCKET) -> set[str]:
    oid = object_id(bucket, key).hex()
    return {p.name for p in root.glob(f"disk*/objects/{oid[:2]}/{oid[2:4]}/{oid}/*")}


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("disk*/.s3free.tmp/*"))


async def trickle(data: bytes, seed: int):
    """Uneven chunks with yields in between, so concurrent writers interleave."""
    rng = random.Random(seed)
    i = 0
    while i < len(data):
        n = rng.randint(1, 40_000)
        yield data[i : i + n]
        i += n
        for _ in range(rng.randint(0, 3)):
            await asyncio.sleep(0)


async def gated(data: bytes, started: asyncio.Event, gate: asyncio.Event):
    """Half the body, then wait for the test's signal, then the rest."""
    yield data[: len(data) // 2]
    started.set()
    await asyncio.wait_for(gate.wait(), TIMEOUT)
    yield data[len(data) // 2 :]


async def state_of(store, key: str):
    try:
        head = await store.head_object(BUCKET, key)
    except NoSuchKey:
        return None
    return head.etag, head.version_id, await store.get_object_bytes(BUCKET, key)


@bounded(TIMEOUT * 3)
async def test_many_concurrent_puts_of_different_keys(tmp_path, store):
    rng = random.Random(1)
    objects = {f"dir{i % 4}/key{i}": payload(rng.randint(0, 2 * B + 3), i) for i in range(40)}

    infos = await asyncio.gather(
        *(store.put_object(BUCKET, k, trickle(d, i)) for i, (k, d) in enumerate(objects.items()))
    )
    for info, (key, data) in zip(infos, objects.items(), strict=True):
        assert (info.key, info.size, info.etag) == (key, len(data), md5(data))
    reads = await asyncio.gather(*(store.get_object_bytes(BUCKET, k) for k in objects))
    assert dict(zip(objects, reads, strict=True)) == objects
    listing = await store.list_objects(BUCKET)
    assert [o.key for o in listing.objects] == sorted(objects, key=str.encode)
    assert len(shard_files(tmp_path)) == len(objects) * 9
    assert temp_files(tmp_path) == []


@bounded(TIMEOUT * 3)
async def test_concurrent_puts_of_one_key_leave_exactly_one(tmp_path, store):
    bodies = [payload(2 * B + 1000 * i, 100 + i) for i in range(12)]
    by_etag = {md5(d): d for d in bodies}

    for round_ in range(2):  # into an absent key, then over an existing one
        infos = await asyncio.gather(
            *(store.put_object(BUCKET, "k", trickle(d, i)) for i, d in enumerate(bodies))
        )
        assert sorted(i.etag for i in infos) == sorted(by_etag)
        head = await store.head_object(BUCKET, "k")
        assert head.version_id in {i.version_id for i in infos}
        data = await store.get_object_bytes(BUCKET, "k")
        assert data == by_etag[head.etag], round_  # one whole payload, never a mix
        await store.wait_idle()
        assert version_dirs(tmp_path, "k") == {version_hex(head.version_id)}
        assert len(shard_files(tmp_path)) == 9
        assert temp_files(tmp_path) == []
        listing = await store.list_objects(BUCKET)
        assert [(o.key, o.etag) for o in listing.objects] == [("k", head.etag)]


@bounded(TIMEOUT * 3)
async def test_gets_during_overwrites_return_whole_payloads(tmp_path, store):
    bodies = [payload(3 * B + 1, 200 + i) for i in range(4)]
    lo, hi = B - 5, 2 * B + 5

    await store.put_object(BUCKET, "k", stream_of(bodies[0]))
    done = asyncio.Event()
    outcomes = {"whole": 0, "range": 0}

    async def writer():
        try:
            for i in range(1, 13):
                await store.put_object(BUCKET, "k", trickle(bodies[i % 4], i))
        finally:
            done.set()

    async def reader(seed: int):
        rng = random.Random(seed)
        for _ in range(300):
            if done.is_set():
                return
            if rng.random() < 0.5:
                reader_ = await store.open_object(BUCKET, "k")
                data = await reader_.read_all()
                assert data in bodies, "a read mixed two versions or was cut short"
                assert md5(data) == reader_.info.etag
                outcomes["whole"] += 1
            else:
                reader_ = await store.open_object(BUCKET, "k", start=lo, end=hi)
                data = await reader_.read_all()
                assert data in [b[lo : hi + 1] for b in bodies]
                outcomes["range"] += 1
            assert reader_.faults == []

    await asyncio.gather(writer(), *(reader(s) for s in range(4)))
    assert outcomes["whole"] and outcomes["range"]
    await store.wait_idle()
    head = await store.head_object(BUCKET, "k")
    assert version_dirs(tmp_path, "k") == {version_hex(head.version_id)}


@pytest.mark.store(n=3)
@bounded(TIMEOUT * 3)
async def test_get_that_starts_at_the_switch_reads_a_whole_version(store):
    """A GET whose index lookup overlaps an overwrite's switch must read the old or the new
    version whole. The lease is taken only after the lookup returns, so the old version can be
    retired (and its files removed) in between. A large manifest (here large metadata; a
    10,000-part manifest is ~1 MB) makes the lookup slow enough to show the window; the GET is
    started from the writer's precondition, i.e. just before the switch."""
    metadata = {f"m{i:05d}": "v" * 200 for i in range(20_000)}
    old, new = payload(3000, 1), payload(3000, 2)

    outcomes = []
    for round_ in range(4):
        key = f"k{round_}"
        await store.put_object(BUCKET, key, stream_of(old), user_metadata=metadata)
        readers: list[asyncio.Task] = []

        def start_reader(current, key=key, readers=readers):
            readers.append(asyncio.ensure_future(store.get_object_bytes(BUCKET, key)))

        await store.put_object(BUCKET, key, stream_of(new), precondition=start_reader)
        (result,) = await asyncio.gather(*readers, return_exceptions=True)
        outcomes.append(result if isinstance(result, BaseException) else result in (old, new))
    assert outcomes == [True] * 4, outcomes


async def test_delete_racing_put_ends_consistent(tmp_path):
    bodies = [payload(B + 10 * i, 300 + i) for i in range(3)]
    by_etag = {md5(d): d for d in bodies}
    rounds = 10

    async def body(store):
        rng = random.Random(7)
        for r in range(rounds):
            key = f"k{r}"
            if r % 2:
                await store.put_object(BUCKET, key, stream_of(bodies[0]))
            ops = [store.put_object(BUCKET, key, trickle(bodies[i], r * 10 + i)) for i in (1, 2)]
            ops += [store.delete_object(BUCKET, key) for _ in range(2)]
            rng.shuffle(ops)
            results = await asyncio.gather(*ops, return_exceptions=True)
            errors = [x for x in results if isinstance(x, BaseException)]
            assert errors == [], errors

        await store.wait_idle()
        seen = {}
        for r in range(rounds):
            key = f"k{r}"
            state = await state_of(store, key)
            if state is None:
                assert version_dirs(tmp_path, key) == set(), key
            else:
                etag, version, data = state
                assert data == by_etag[etag]
                assert version_dirs(tmp_path, key) == {version_hex(version)}, key
            seen[key] = state
        listed = {o.key: o.etag for o in (await store.list_objects(BUCKET)).objects}
        assert listed == {k: s[0] for k, s in seen.items() if s is not None}
        assert temp_files(tmp_path) == []
        return seen

    store = await open_store(tmp_path)
    try:
        await store.create_bucket(BUCKET)
        seen = await asyncio.wait_for(body(store), TIMEOUT * 3)
    finally:
        await store.close()
    # the disks say the same as the index did: rebuild it from them and compare
    shutil.rmtree(tmp_path / "meta")
    store = await open_store(tmp_path)
    try:
        for key, state in seen.items():
            assert await state_of(store, key) == state, key
    finally:
        await store.close()


@bounded(TIMEOUT * 3)
async def test_put_into_bucket_deleted_meanwhile(tmp_path, store):
    data = payload(2 * B + 7, 400)

    await store.create_bucket("doomed")
    started, gate = asyncio.Event(), asyncio.Event()
    put = asyncio.ensure_future(store.put_object("doomed", "k", gated(data, started, gate)))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    await store.delete_bucket("doomed")  # empty: the write in flight is not in it yet
    gate.set()
    with pytest.raises(NoSuchBucket):
        await asyncio.wait_for(put, TIMEOUT)
    await store.wait_idle()
    with pytest.raises(NoSuchBucket):
        await store.head_bucket("doomed")
    assert version_dirs(tmp_path, "k", bucket="doomed") == set()
    assert shard_files(tmp_path) == []
    assert temp_files(tmp_path) == []
    # What stays of the bucket is its tombstone (newest wins over a stale copy).
    for record in tmp_path.glob("disk*/buckets/doomed.json"):
        assert json.loads(record.read_text())["deleted"] is True


@bounded(TIMEOUT * 3)
async def test_parallel_part_uploads(tmp_path, store):
    parts = [payload(B + 100 * i, 500 + i) for i in range(1, 7)]

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    infos = await asyncio.gather(
        *(
            store.upload_part(BUCKET, "k", upload_id, n, trickle(d, n))
            for n, d in enumerate(parts, 1)
        ),
        # the same part number twice at once: one of the two bodies wins, whole
        store.upload_part(BUCKET, "k", upload_id, 3, trickle(payload(5000, 9), 9)),
    )
    listed, _, _ = await store.list_parts(BUCKET, "k", upload_id)
    assert [p.number for p in listed] == [1, 2, 3, 4, 5, 6]
    part3 = {p.number: p for p in listed}[3]
    assert part3.etag in (infos[2].etag, infos[6].etag)
    chosen = parts[2] if part3.etag == infos[2].etag else payload(5000, 9)
    expected = [*parts[:2], chosen, *parts[3:]]
    info = await store.complete_multipart_upload(
        BUCKET, "k", upload_id, [(p.number, p.etag) for p in listed]
    )
    whole = await store.get_object_bytes(BUCKET, "k")
    assert whole == b"".join(expected)
    digests = b"".join(hashlib.md5(p).digest() for p in expected)
    assert info.etag == f"{hashlib.md5(digests).hexdigest()}-6"
    assert not list(tmp_path.glob("disk*/multipart/*"))


@bounded(TIMEOUT * 3)
async def test_part_upload_racing_abort(tmp_path, store):
    data = payload(2 * B + 1, 600)

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    await store.upload_part(BUCKET, "k", upload_id, 1, stream_of(b"first part"))
    started, gate = asyncio.Event(), asyncio.Event()
    part = asyncio.ensure_future(
        store.upload_part(BUCKET, "k", upload_id, 2, gated(data, started, gate))
    )
    await asyncio.wait_for(started.wait(), TIMEOUT)
    await store.abort_multipart_upload(BUCKET, "k", upload_id)
    gate.set()
    with pytest.raises(NoSuchUpload):
        await asyncio.wait_for(part, TIMEOUT)
    await store.wait_idle()
    assert temp_files(tmp_path) == [], "the refused part's temp files were left behind"
    assert not list(tmp_path.glob("disk*/multipart/*"))
    assert (await store.list_multipart_uploads(BUCKET)) == ([], False)
    with pytest.raises(NoSuchKey):
        await store.head_object(BUCKET, "k")
