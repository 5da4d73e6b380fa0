"""Functional tests of ObjectStore buckets: create/head/list/delete, S3 naming rules, atomic
creation, BucketNotEmpty, uploads aborted with their bucket, and bucket records that outlive a
lost index. Real disks in temp dirs, the real engine."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from s3free.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    InvalidBucketName,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
)
from tests.support.engine import open_store, stream_of

GOOD_NAMES = [
    "abc",
    "a1b",
    "123",
    "a-b-c",
    "a.b.c",
    "my-bucket.example.com",
    "a" * 63,
    "0-0",
    "a--b",  # doubled hyphens are allowed (only the reserved suffixes are not)
    "xn-abc",  # only "xn--" is reserved
    "sthree",  # only "sthree-" is reserved
    "abc-s3alia",
    "1.2.3",  # not an IPv4 address
    "1.2.3.4.5",
    "256bucket",
]

BAD_NAMES = [
    "",
    "ab",  # too short
    "a" * 64,  # too long
    "ABC",
    "aBc",
    "a_b",
    "a b",
    "abc/def",
    "ü-bucket",
    "-abc",
    "abc-",
    ".abc",
    "abc.",
    "a..b",
    "a.-b",
    "a-.b",
    "192.168.5.4",
    "10.0.0.1",
    "xn--abc",
    "sthree-abc",
    "amzn-s3-demo-bucket",
    "abc-s3alias",
    "abc--ol-s3",
    "abc.mrap",
    "abc--x-s3",
    "abc--table-s3",
    "abc\n",  # a trailing newline is not a letter or digit
    "\nabc",
    "ab\nc",
]


def bucket_records(root: Path, name: str) -> list[dict]:
    """The bucket's record as each disk holds it (the disks are the truth)."""
    out = []
    for disk in sorted(root.glob("disk*")):
        path = disk / "buckets" / f"{name}.json"
        if path.exists():
            out.append(json.loads(path.read_text()))
    return out


async def test_create_head_list_delete(tmp_path, store):
    assert await store.list_buckets() == []
    made = {}
    for name, owner in [("zeta", "u1"), ("alpha", "u2"), ("mid.dle", "")]:
        made[name] = await store.create_bucket(name, owner=owner)
        assert made[name].name == name
        assert made[name].owner == owner
    for name, info in made.items():
        assert await store.head_bucket(name) == info
    listed = await store.list_buckets()
    assert [b.name for b in listed] == ["alpha", "mid.dle", "zeta"]  # sorted by name
    assert {b.name: b for b in listed} == made
    # every disk holds the record
    assert len(bucket_records(tmp_path, "alpha")) == 9
    assert {r["owner"] for r in bucket_records(tmp_path, "alpha")} == {"u2"}

    await store.delete_bucket("alpha")
    with pytest.raises(NoSuchBucket):
        await store.head_bucket("alpha")
    assert [b.name for b in await store.list_buckets()] == ["mid.dle", "zeta"]
    # every disk holds a tombstone (kept: a stale copy on a returning disk loses)
    tombs = bucket_records(tmp_path, "alpha")
    assert len(tombs) == 9 and all(r["deleted"] is True for r in tombs)
    assert tombs[0]["generation"] > made["alpha"].generation
    with pytest.raises(NoSuchBucket):
        await store.delete_bucket("alpha")
    # the name is free again
    again = await store.create_bucket("alpha", owner="u3")
    assert (await store.head_bucket("alpha")).owner == "u3"
    assert again.owner == "u3"


@pytest.mark.parametrize("name", GOOD_NAMES)
@pytest.mark.store(n=3)
async def test_valid_bucket_names(tmp_path, name, store):
    await store.create_bucket(name)
    assert (await store.head_bucket(name)).name == name


@pytest.mark.store(n=3)
async def test_invalid_bucket_names(tmp_path, store):
    accepted = []
    for name in BAD_NAMES:
        try:
            await store.create_bucket(name)
        except InvalidBucketName:
            continue
        accepted.append(name)
    assert accepted == [], f"invalid bucket names were accepted: {accepted!r}"
    assert await store.list_buckets() == []
    assert not list(tmp_path.glob("disk*/buckets/*"))


@pytest.mark.store(n=3)
async def test_bucket_already_exists_carries_owner(tmp_path, store):
    first = await store.create_bucket("shared", owner="alice")
    for owner in ("bob", "alice", ""):
        with pytest.raises(BucketAlreadyExists) as exc:
            await store.create_bucket("shared", owner=owner)
        assert exc.value.owner == "alice"
    assert await store.head_bucket("shared") == first
    assert [r["owner"] for r in bucket_records(tmp_path, "shared")] == ["alice"] * 3


async def test_racing_creators_exactly_one_wins(tmp_path, store):
    owners = [f"owner{i}" for i in range(25)]
    results = await asyncio.gather(
        *(store.create_bucket("race", owner=o) for o in owners), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == len(owners) - 1
    winner = winners[0]
    assert all(isinstance(e, BucketAlreadyExists) for e in losers), losers
    assert {e.owner for e in losers} == {winner.owner}
    assert await store.head_bucket("race") == winner
    assert [b.name for b in await store.list_buckets()] == ["race"]
    # the disks agree with the index on who won
    records = bucket_records(tmp_path, "race")
    assert len(records) == 9
    assert {r["owner"] for r in records} == {winner.owner}


@pytest.mark.store(n=3)
async def test_bucket_not_empty(tmp_path, store):
    await store.create_bucket("full")
    await store.put_object("full", "k", stream_of(b"data"))
    with pytest.raises(BucketNotEmpty):
        await store.delete_bucket("full")
    # refused: the bucket and its object are untouched
    assert await store.get_object_bytes("full", "k") == b"data"
    assert len(bucket_records(tmp_path, "full")) == 3
    assert await store.delete_object("full", "k")
    await store.delete_bucket("full")
    with pytest.raises(NoSuchBucket):
        await store.head_bucket("full")


async def test_delete_bucket_aborts_uploads(tmp_path, store):
    await store.create_bucket("ups")
    ids = [await store.create_multipart_upload("ups", f"key{i}") for i in range(3)]
    for i, upload_id in enumerate(ids):
        await store.upload_part("ups", f"key{i}", upload_id, 1, stream_of(b"x" * 1000))
    staged = [p for p in tmp_path.glob("disk*/multipart/*") if p.is_dir()]
    assert {p.name for p in staged} == set(ids)

    await store.delete_bucket("ups")  # uploads in progress do not block the delete
    assert not list(tmp_path.glob("disk*/multipart/*"))
    with pytest.raises(NoSuchBucket):
        await store.upload_part("ups", "key0", ids[0], 2, stream_of(b"y"))
    with pytest.raises(NoSuchBucket):
        await store.list_parts("ups", "key0", ids[0])

    # a new bucket of the same name does not inherit them
    await store.create_bucket("ups")
    uploads, truncated = await store.list_multipart_uploads("ups")
    assert uploads == [] and not truncated
    for i, upload_id in enumerate(ids):
        with pytest.raises(NoSuchUpload):
            await store.list_parts("ups", f"key{i}", upload_id)
        with pytest.raises(NoSuchUpload):
            await store.complete_multipart_upload("ups", f"key{i}", upload_id, [(1, "x")])


@pytest.mark.store(n=3)
async def test_object_ops_in_missing_bucket(tmp_path, store):
    await store.create_bucket("other")
    await store.put_object("other", "k", stream_of(b"elsewhere"))
    ops = [
        lambda: store.put_object("nope", "k", stream_of(b"abc")),
        lambda: store.get_object_bytes("nope", "k"),
        lambda: store.open_object("nope", "k"),
        lambda: store.head_object("nope", "k"),
        lambda: store.delete_object("nope", "k"),
        lambda: store.list_objects("nope"),
        lambda: store.create_multipart_upload("nope", "k"),
        lambda: store.list_multipart_uploads("nope"),
        lambda: store.upload_part("nope", "k", "0" * 32, 1, stream_of(b"abc")),
        lambda: store.list_parts("nope", "k", "0" * 32),
        lambda: store.abort_multipart_upload("nope", "k", "0" * 32),
    ]
    for i, op in enumerate(ops):
        with pytest.raises(NoSuchBucket):
            await op()
        await store.wait_idle()
        assert [b.name for b in await store.list_buckets()] == ["other"], i
    # nothing was written for the missing bucket
    assert len(list(tmp_path.glob("disk*/objects/*/*/*/*/part.*"))) == 3
    assert not list(tmp_path.glob("disk*/multipart/*"))
    assert not list(tmp_path.glob("disk*/buckets/nope.json"))
    # and a missing key in an existing bucket is NoSuchKey, not NoSuchBucket
    with pytest.raises(NoSuchKey):
        await store.head_object("other", "missing")


async def test_bucket_records_survive_index_rebuild(tmp_path):
    store = await open_store(tmp_path)
    try:
        kept = {
            "photos": await store.create_bucket("photos", owner="alice"),
            "backups": await store.create_bucket("backups", owner="bob"),
            "empty.one": await store.create_bucket("empty.one"),
        }
        await store.create_bucket("gone", owner="carol")
        await store.delete_bucket("gone")
        await store.put_object("photos", "cat.jpg", stream_of(b"meow" * 1000))
    finally:
        await store.close()

    shutil.rmtree(tmp_path / "meta")
    store = await open_store(tmp_path)
    try:
        assert {b.name: b for b in await store.list_buckets()} == kept
        with pytest.raises(NoSuchBucket):
            await store.head_bucket("gone")
        assert await store.get_object_bytes("photos", "cat.jpg") == b"meow" * 1000
        with pytest.raises(BucketAlreadyExists) as exc:
            await store.create_bucket("backups", owner="mallory")
        assert exc.value.owner == "bob"
    finally:
        await store.close()
