"""Index rebuild: uploads in progress survive losing the index, crashed writes stay invisible."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from s3free.errors import NoSuchUpload
from tests.support.engine import open_store, shard_files, stream_of


async def test_uploads_in_progress_survive_an_index_rebuild(tmp_path):
    a, b = os.urandom(200_000), os.urandom(999)

    store = await open_store(tmp_path)
    await store.create_bucket("bkt")
    upload = await store.create_multipart_upload(
        "bkt", "big", content_type="application/x-tar", user_metadata={"who": "me"}
    )
    p1 = await store.upload_part("bkt", "big", upload, 1, stream_of(a))
    p4 = await store.upload_part("bkt", "big", upload, 4, stream_of(b))
    await store.close()
    shutil.rmtree(tmp_path / "meta")

    store = await open_store(tmp_path)
    parts, truncated, _ = await store.list_parts("bkt", "big", upload)
    assert not truncated
    assert [(p.number, p.size, p.etag) for p in parts] == [
        (1, len(a), hashlib.md5(a).hexdigest()),
        (4, len(b), hashlib.md5(b).hexdigest()),
    ]
    uploads, _ = await store.list_multipart_uploads("bkt")
    assert [(u.key, u.upload_id) for u in uploads] == [("big", upload)]
    info = await store.complete_multipart_upload("bkt", "big", upload, [(1, p1.etag), (4, p4.etag)])
    assert info.content_type == "application/x-tar"
    assert info.user_metadata == {"who": "me"}
    assert await store.get_object_bytes("bkt", "big") == a + b
    with pytest.raises(NoSuchUpload):
        await store.list_parts("bkt", "big", upload)
    await store.close()


async def test_an_upload_with_a_corrupt_part_shard_is_still_restored(tmp_path):
    data = os.urandom(150_000)

    store = await open_store(tmp_path)
    await store.create_bucket("bkt")
    upload = await store.create_multipart_upload("bkt", "k")
    part = await store.upload_part("bkt", "k", upload, 1, stream_of(data))
    await store.close()
    staged = sorted((tmp_path).glob("disk*/multipart/*/part.00001"))
    assert len(staged) == 9
    staged[0].write_bytes(b"\0" * staged[0].stat().st_size)  # one shard rots
    shutil.rmtree(tmp_path / "meta")

    store = await open_store(tmp_path)
    parts, _, _ = await store.list_parts("bkt", "k", upload)
    assert [(p.number, p.etag) for p in parts] == [(1, part.etag)]
    await store.complete_multipart_upload("bkt", "k", upload, [(1, part.etag)])
    assert await store.get_object_bytes("bkt", "k") == data
    await store.close()


async def test_shards_without_any_manifest_are_not_made_visible_by_a_rebuild(tmp_path):
    """A write that crashed after its shards were in place but before any manifest was
    written was never acknowledged: a rebuild must not publish it."""

    store = await open_store(tmp_path)
    await store.create_bucket("bkt")
    await store.put_object("bkt", "kept", stream_of(b"kept"))
    await store.put_object("bkt", "crashed", stream_of(b"never acknowledged"))
    await store.close()
    crashed = hashlib.md5(b"never acknowledged").hexdigest()
    for path in sorted(tmp_path.glob("disk*/objects/*/*/*/*/manifest")):
        if crashed.encode() in path.read_bytes():
            path.unlink()
    shutil.rmtree(tmp_path / "meta")

    store = await open_store(tmp_path)
    listing = await store.list_objects("bkt")
    assert [o.key for o in listing.objects] == ["kept"]
    report = await store.rebuild_index()
    assert len(report.headerless) == 1
    assert len(shard_files(tmp_path)) == 18  # left alone, not deleted
    await store.close()
