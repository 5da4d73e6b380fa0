"""Functional tests of multipart uploads on the real engine: assembly and the S3 multipart ETag,
part replacement, completion errors, minimum part size, unknown uploads, part and upload
listings, isolation from object listings, and the staging directories on the disks."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from s3free.errors import (
    BadDigest,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchKey,
    NoSuchUpload,
)
from s3free.format.ids import object_id, version_hex
from tests.support.engine import SMALL_BLOCK, shard_files, stream_of

B = SMALL_BLOCK
KIB = 1024
BUCKET = "multi"


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed * 7919 + size).randbytes(size)


def s3_multipart_etag(parts: list[bytes]) -> str:
    """AWS's multipart ETag: MD5 of the concatenated binary MD5s of the parts, "-", count."""
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"


pytestmark = pytest.mark.store(bucket=BUCKET)


def staging_dirs(root: Path, upload_id: str | None = None) -> list[Path]:
    pattern = f"disk*/multipart/{upload_id or '*'}"
    return sorted(root.glob(pattern))


def version_dirs(root: Path, key: str) -> set[str]:
    oid = object_id(BUCKET, key).hex()
    return {p.name for p in root.glob(f"disk*/objects/{oid[:2]}/{oid[2:4]}/{oid}/*")}


async def upload(store, key, upload_id, number, data):
    info = await store.upload_part(BUCKET, key, upload_id, number, stream_of(data, chunk=40_000))
    assert info.number == number
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    return info


async def test_complete_assembles_parts(tmp_path, store):
    parts = {1: payload(100 * KIB, 1), 3: payload(70 * KIB, 3), 7: payload(5, 7)}

    upload_id = await store.create_multipart_upload(
        BUCKET,
        "big.bin",
        content_type="application/x-big",
        user_metadata={"origin": "test"},
        http_headers={"Cache-Control": "max-age=60"},
    )
    etags = {}
    for number in (7, 1, 3):  # uploaded out of order
        etags[number] = (await upload(store, "big.bin", upload_id, number, parts[number])).etag
    # every disk stages every part until completion
    assert len(staging_dirs(tmp_path, upload_id)) == 9
    assert len(list(tmp_path.glob(f"disk*/multipart/{upload_id}/part.*"))) == 9 * 3

    ordered = [parts[n] for n in (1, 3, 7)]
    info = await store.complete_multipart_upload(
        BUCKET, "big.bin", upload_id, [(n, etags[n]) for n in (1, 3, 7)]
    )
    whole = b"".join(ordered)
    assert info.etag == s3_multipart_etag(ordered)
    assert info.size == len(whole)
    assert info.parts_count == 3
    assert (info.content_type, info.user_metadata, info.http_headers) == (
        "application/x-big",
        {"origin": "test"},
        {"Cache-Control": "max-age=60"},
    )
    assert await store.head_object(BUCKET, "big.bin") == info
    assert await store.get_object_bytes(BUCKET, "big.bin") == whole
    # ranges across the part boundaries
    p1 = len(parts[1])
    for start, end in [(p1 - 1, p1), (p1 - 3, p1 + len(parts[3]) + 2), (B, 2 * B + 7)]:
        got = await store.get_object_bytes(BUCKET, "big.bin", start=start, end=end)
        assert got == whole[start : end + 1], (start, end)
    listing = await store.list_objects(BUCKET)
    assert [(o.key, o.size, o.etag) for o in listing.objects] == [
        ("big.bin", len(whole), info.etag)
    ]

    # nothing of the upload is left: no staging dir, no upload, no more calls on it
    assert staging_dirs(tmp_path) == []
    assert (await store.list_multipart_uploads(BUCKET)) == ([], False)
    assert len(shard_files(tmp_path)) == 9 * 3
    with pytest.raises(NoSuchUpload):
        await store.upload_part(BUCKET, "big.bin", upload_id, 2, stream_of(b"late"))
    with pytest.raises(NoSuchUpload):
        await store.list_parts(BUCKET, "big.bin", upload_id)
    with pytest.raises(NoSuchUpload):
        await store.complete_multipart_upload(BUCKET, "big.bin", upload_id, [(1, etags[1])])
    with pytest.raises(NoSuchUpload):
        await store.abort_multipart_upload(BUCKET, "big.bin", upload_id)
    assert await store.get_object_bytes(BUCKET, "big.bin") == whole


async def test_complete_with_a_subset_and_quoted_etags(tmp_path, store):
    parts = [payload(B + 1, 10), payload(B, 11), payload(300, 12)]

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    infos = [await upload(store, "k", upload_id, n, d) for n, d in enumerate(parts, 1)]
    info = await store.complete_multipart_upload(
        BUCKET, "k", upload_id, [(1, f'"{infos[0].etag}"'), (3, f'"{infos[2].etag}"')]
    )
    assert info.etag == s3_multipart_etag([parts[0], parts[2]])
    assert await store.get_object_bytes(BUCKET, "k") == parts[0] + parts[2]
    # the part left out is gone with the staging directory
    assert staging_dirs(tmp_path) == []
    assert len(shard_files(tmp_path)) == 9 * 2


async def test_reuploading_a_part_replaces_it(store):
    first, second = payload(B + 100, 20), payload(B // 3, 21)

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    old = await upload(store, "k", upload_id, 1, first)
    new = await upload(store, "k", upload_id, 1, second)
    parts, truncated, _ = await store.list_parts(BUCKET, "k", upload_id)
    assert [(p.number, p.size, p.etag) for p in parts] == [(1, len(second), new.etag)]
    assert not truncated
    with pytest.raises(InvalidPart):
        await store.complete_multipart_upload(BUCKET, "k", upload_id, [(1, old.etag)])
    info = await store.complete_multipart_upload(BUCKET, "k", upload_id, [(1, new.etag)])
    assert info.etag == s3_multipart_etag([second])
    assert await store.get_object_bytes(BUCKET, "k") == second


async def test_completion_errors_keep_the_upload(tmp_path, store):
    a, b = payload(B, 30), payload(10, 31)

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    ea = (await upload(store, "k", upload_id, 1, a)).etag
    eb = (await upload(store, "k", upload_id, 2, b)).etag
    bad_lists = [
        (InvalidPart, []),
        (InvalidPart, [(1, ea), (2, ea)]),  # wrong ETag
        (InvalidPart, [(1, ea), (3, eb)]),  # part 3 never uploaded
        (InvalidPart, [(1, "0" * 32)]),
        (InvalidPartOrder, [(2, eb), (1, ea)]),
        (InvalidPartOrder, [(1, ea), (1, ea)]),  # a repeated number is out of order too
    ]
    for error, listed in bad_lists:
        with pytest.raises(error):
            await store.complete_multipart_upload(BUCKET, "k", upload_id, listed)
        # a refused completion changes nothing
        with pytest.raises(NoSuchKey):
            await store.head_object(BUCKET, "k")
        parts, _, _ = await store.list_parts(BUCKET, "k", upload_id)
        assert [p.number for p in parts] == [1, 2], listed
    assert len(staging_dirs(tmp_path, upload_id)) == 9
    info = await store.complete_multipart_upload(BUCKET, "k", upload_id, [(1, ea), (2, eb)])
    assert await store.get_object_bytes(BUCKET, "k") == a + b
    assert info.etag == s3_multipart_etag([a, b])


@pytest.mark.store(n=3)
async def test_part_numbers_out_of_range(store):
    upload_id = await store.create_multipart_upload(BUCKET, "k")
    for number in (0, -1, 10_001):
        with pytest.raises(InvalidArgument):
            await store.upload_part(BUCKET, "k", upload_id, number, stream_of(b"x"))
    info = await upload(store, "k", upload_id, 10_000, b"last possible part")
    parts, _, _ = await store.list_parts(BUCKET, "k", upload_id)
    assert [p.number for p in parts] == [10_000]
    done = await store.complete_multipart_upload(BUCKET, "k", upload_id, [(10_000, info.etag)])
    assert done.parts_count == 1
    assert await store.get_object_bytes(BUCKET, "k") == b"last possible part"


@pytest.mark.store(min_part_size=100 * KIB)
async def test_entity_too_small(store):
    small, edge, last = payload(50 * KIB, 40), payload(100 * KIB, 41), payload(1, 42)

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    e_small = (await upload(store, "k", upload_id, 1, small)).etag
    e_last = (await upload(store, "k", upload_id, 2, last)).etag
    with pytest.raises(EntityTooSmall):
        await store.complete_multipart_upload(BUCKET, "k", upload_id, [(1, e_small), (2, e_last)])
    with pytest.raises(NoSuchKey):
        await store.head_object(BUCKET, "k")
    # exactly the minimum is enough, and the last part may be smaller
    e_edge = (await upload(store, "k", upload_id, 1, edge)).etag
    info = await store.complete_multipart_upload(BUCKET, "k", upload_id, [(1, e_edge), (2, e_last)])
    assert info.etag == s3_multipart_etag([edge, last])
    assert await store.get_object_bytes(BUCKET, "k") == edge + last

    # a lone small part is the last part: allowed
    lone = await store.create_multipart_upload(BUCKET, "lone")
    e = (await upload(store, "lone", lone, 1, small)).etag
    await store.complete_multipart_upload(BUCKET, "lone", lone, [(1, e)])
    assert await store.get_object_bytes(BUCKET, "lone") == small


@pytest.mark.store(n=3)
async def test_no_such_upload(tmp_path, store):
    live = await store.create_multipart_upload(BUCKET, "k")
    await upload(store, "k", live, 1, b"data")
    aborted = await store.create_multipart_upload(BUCKET, "k")
    await upload(store, "k", aborted, 1, b"data")
    await store.abort_multipart_upload(BUCKET, "k", aborted)
    cases = [
        ("k", "0" * 32),  # never existed
        ("k", "not-an-id"),
        ("k", aborted),
        ("other", live),  # a real upload, but for another key
    ]
    for key, upload_id in cases:
        with pytest.raises(NoSuchUpload):
            await store.upload_part(BUCKET, key, upload_id, 1, stream_of(b"x"))
        with pytest.raises(NoSuchUpload):
            await store.list_parts(BUCKET, key, upload_id)
        with pytest.raises(NoSuchUpload):
            await store.complete_multipart_upload(BUCKET, key, upload_id, [(1, "x")])
        with pytest.raises(NoSuchUpload):
            await store.abort_multipart_upload(BUCKET, key, upload_id)
    # the live upload was not disturbed by any of that
    parts, _, _ = await store.list_parts(BUCKET, "k", live)
    assert [(p.number, p.size) for p in parts] == [(1, 4)]
    assert [u.upload_id for u in (await store.list_multipart_uploads(BUCKET))[0]] == [live]
    assert [p.name for p in staging_dirs(tmp_path)] == [live] * 3


@pytest.mark.store(n=3)
async def test_list_parts_paging(store):
    sizes = {1: 10, 2: 20, 4: 40, 5: 50, 9: 90}

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    expected = []
    for number in (9, 2, 5, 1, 4):
        data = payload(sizes[number], number)
        info = await upload(store, "k", upload_id, number, data)
        expected.append((number, len(data), info.etag))
    expected.sort()

    parts, truncated, marker = await store.list_parts(BUCKET, "k", upload_id)
    assert [(p.number, p.size, p.etag) for p in parts] == expected
    assert not truncated

    for page_size in (1, 2, 3, 5):
        seen, marker, pages = [], 0, 0
        while pages < 10:
            parts, truncated, marker_out = await store.list_parts(
                BUCKET, "k", upload_id, part_number_marker=marker, max_parts=page_size
            )
            pages += 1
            assert len(parts) <= page_size
            assert all(p.number > marker for p in parts)
            seen += [(p.number, p.size, p.etag) for p in parts]
            if not truncated:
                break
            assert marker_out == parts[-1].number
            marker = marker_out
        assert seen == expected, page_size
        assert pages == -(-len(expected) // page_size)
    # a marker between part numbers starts at the next part
    parts, _, _ = await store.list_parts(BUCKET, "k", upload_id, part_number_marker=3)
    assert [p.number for p in parts] == [4, 5, 9]
    parts, truncated, _ = await store.list_parts(BUCKET, "k", upload_id, part_number_marker=9)
    assert parts == [] and not truncated


@pytest.mark.store(n=3)
async def test_list_multipart_uploads(store):
    ids: dict[str, list[str]] = {}
    for key in ("b/1", "a/2", "c", "a/1", "a/2", "a/2/deeper", "ab"):
        ids.setdefault(key, []).append(await store.create_multipart_upload(BUCKET, key))
    await store.create_bucket("elsewhere")
    await store.create_multipart_upload("elsewhere", "a/1")
    everything = sorted(
        ((k, u) for k, us in ids.items() for u in us), key=lambda p: (p[0].encode(), p[1])
    )

    async def listed(**kwargs):
        uploads, truncated = await store.list_multipart_uploads(BUCKET, **kwargs)
        assert all(u.bucket == BUCKET and u.initiated_ms > 0 for u in uploads)
        return [(u.key, u.upload_id) for u in uploads], truncated

    assert await listed() == (everything, False)
    assert await listed(prefix="a/") == (
        [p for p in everything if p[0].startswith("a/")],
        False,
    )
    assert await listed(prefix="a") == ([p for p in everything if p[0].startswith("a")], False)
    assert await listed(prefix="zzz") == ([], False)
    # key marker: uploads of later keys only
    assert await listed(key_marker="a/2") == (
        [p for p in everything if p[0].encode() > b"a/2"],
        False,
    )
    # key and upload id marker: later uploads of that key, then later keys
    a2 = sorted(ids["a/2"])
    after_first = await listed(key_marker="a/2", upload_id_marker=a2[0])
    assert after_first == (
        [("a/2", a2[1])] + [p for p in everything if p[0].encode() > b"a/2"],
        False,
    )
    # paging with the last entry as the markers visits every upload exactly once
    for page_size in (1, 2, 3):
        seen, key_marker, id_marker = [], "", ""
        for _ in range(20):
            page, truncated = await listed(
                key_marker=key_marker, upload_id_marker=id_marker, max_uploads=page_size
            )
            assert len(page) <= page_size
            seen += page
            if not truncated:
                break
            key_marker, id_marker = page[-1]
        assert seen == everything, page_size
    # an aborted upload leaves the listing
    await store.abort_multipart_upload(BUCKET, "c", ids["c"][0])
    assert ("c", ids["c"][0]) not in (await listed())[0]


@pytest.mark.store(n=3)
async def test_upload_in_progress_is_invisible(tmp_path, store):
    await store.put_object(BUCKET, "existing", stream_of(b"old content"))
    up_new = await store.create_multipart_upload(BUCKET, "new")
    up_existing = await store.create_multipart_upload(BUCKET, "existing")
    await upload(store, "new", up_new, 1, payload(B + 1, 50))
    await upload(store, "existing", up_existing, 1, payload(B + 1, 51))
    listing = await store.list_objects(BUCKET)
    assert [o.key for o in listing.objects] == ["existing"]
    assert listing.common_prefixes == []
    with pytest.raises(NoSuchKey):
        await store.head_object(BUCKET, "new")
    with pytest.raises(NoSuchKey):
        await store.get_object_bytes(BUCKET, "new")
    assert await store.get_object_bytes(BUCKET, "existing") == b"old content"
    assert (await store.head_object(BUCKET, "existing")).size == len(b"old content")
    assert len(shard_files(tmp_path)) == 3  # only the committed object's shards


async def test_abort_removes_staging_everywhere(tmp_path, store):
    upload_id = await store.create_multipart_upload(BUCKET, "k")
    other = await store.create_multipart_upload(BUCKET, "other")
    for number in (1, 2):
        await upload(store, "k", upload_id, number, payload(B + 3, number))
    await upload(store, "other", other, 1, b"stay")
    assert len(staging_dirs(tmp_path, upload_id)) == 9
    await store.abort_multipart_upload(BUCKET, "k", upload_id)
    assert staging_dirs(tmp_path, upload_id) == []
    assert len(staging_dirs(tmp_path, other)) == 9  # the other upload is untouched
    assert [u.upload_id for u in (await store.list_multipart_uploads(BUCKET))[0]] == [other]
    assert shard_files(tmp_path) == []
    with pytest.raises(NoSuchKey):
        await store.head_object(BUCKET, "k")


async def test_complete_over_existing_key_replaces_it(tmp_path, store):
    old = payload(2 * B + 5, 60)
    parts = [payload(B, 61), payload(17, 62)]

    first = await store.put_object(BUCKET, "k", stream_of(old), user_metadata={"v": "1"})
    upload_id = await store.create_multipart_upload(BUCKET, "k", user_metadata={"v": "2"})
    listed = [(n, (await upload(store, "k", upload_id, n, d)).etag) for n, d in enumerate(parts, 1)]
    # the old object stays readable until the completion
    assert await store.get_object_bytes(BUCKET, "k") == old
    info = await store.complete_multipart_upload(BUCKET, "k", upload_id, listed)
    assert info.version_id != first.version_id
    assert await store.get_object_bytes(BUCKET, "k") == b"".join(parts)
    head = await store.head_object(BUCKET, "k")
    assert (head.etag, head.user_metadata) == (s3_multipart_etag(parts), {"v": "2"})
    await store.wait_idle()
    assert version_dirs(tmp_path, "k") == {version_hex(info.version_id)}
    assert len(shard_files(tmp_path)) == 9 * 2
    assert staging_dirs(tmp_path) == []


@pytest.mark.store(n=3)
async def test_bad_part_body_is_not_recorded(store):
    data = payload(B + 9, 70)

    upload_id = await store.create_multipart_upload(BUCKET, "k")
    good = await upload(store, "k", upload_id, 1, data)
    with pytest.raises(BadDigest):
        await store.upload_part(
            BUCKET,
            "k",
            upload_id,
            1,
            stream_of(payload(B, 71)),
            expected_md5=hashlib.md5(b"something else").digest(),
        )
    # the earlier upload of part 1 still stands
    parts, _, _ = await store.list_parts(BUCKET, "k", upload_id)
    assert [(p.number, p.etag) for p in parts] == [(1, good.etag)]
    info = await store.complete_multipart_upload(BUCKET, "k", upload_id, [(1, good.etag)])
    assert info.etag == s3_multipart_etag([data])
    assert await store.get_object_bytes(BUCKET, "k") == data
