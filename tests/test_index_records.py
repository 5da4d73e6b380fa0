"""The index records (meta/index.py dataclasses) are stored byte for byte as the plain dicts
they replaced: the index of an existing store, and every upload.json on its disks, must read
back unchanged. The expected bytes are built here from the field lists, independently of the
dataclasses."""

from __future__ import annotations

import json

from s3free.format.ids import version_hex
from s3free.meta.index import JournalEntry
from s3free.storage.layout import UPLOAD_RECORD, upload_dir
from tests.support.engine import open_store, stream_of


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


async def test_records_keep_their_stored_bytes(tmp_path):
    async def main() -> None:
        store = await open_store(tmp_path, 6, k=4, m=2)
        try:
            await store.create_bucket("bkt")
            info = await store.put_object("bkt", "obj", stream_of(b"x" * 1000))
            m = await store.get_manifest("bkt", "obj")
            entry = store.index.db.get(b"Obkt\x00obj")
            assert entry == canonical(
                {"etag": m.etag, "mtime": m.last_modified_ms, "size": 1000, "version": m.version_id}
            )
            assert info.etag == m.etag

            upload_id = await store.create_multipart_upload(
                "bkt", "mp", content_type="text/plain", user_metadata={"a": "1"}
            )
            raw = json.loads(store.index.db.get(b"U" + upload_id.encode()))
            fields = [
                "bucket",
                "checksums",
                "content_type",
                "http_headers",
                "initiated_ms",
                "key",
                "object_id",
                "placement",
                "upload_id",
                "user_metadata",
                "version_id",
            ]
            assert sorted(raw) == fields
            assert (raw["bucket"], raw["key"], raw["upload_id"]) == ("bkt", "mp", upload_id)
            assert (raw["content_type"], raw["user_metadata"]) == ("text/plain", {"a": "1"})
            assert (raw["checksums"], raw["http_headers"]) == ({}, {})
            assert store.index.db.get(b"U" + upload_id.encode()) == canonical(raw)
            on_disk = tmp_path / "disk0" / upload_dir(upload_id) / UPLOAD_RECORD
            if not on_disk.exists():  # the record is on the upload's placement only
                on_disk = next(tmp_path.glob(f"disk*/{upload_dir(upload_id)}/{UPLOAD_RECORD}"))
            assert on_disk.read_bytes() == (json.dumps(raw, sort_keys=True) + "\n").encode()

            part = await store.upload_part("bkt", "mp", upload_id, 1, stream_of(b"y" * 500))
            stored = json.loads(store.index.db.get(b"P" + upload_id.encode() + b"\x0000001"))
            assert sorted(stored) == [
                "blocks",
                "etag",
                "failed",
                "md5",
                "merkle_root",
                "mtime",
                "number",
                "size",
            ]
            assert (stored["number"], stored["size"], stored["etag"]) == (1, 500, part.etag)
            assert stored["failed"] == [] and stored["blocks"] == 1

            # A journal entry, as a DELETE writes it before removing the manifests.
            store.index.put_journal(m.version_id, JournalEntry.of(m, deleting=True))
            assert store.index.db.get(b"J" + m.version_id.encode()) == canonical(
                {
                    "bucket": "bkt",
                    "deleting": True,
                    "key": "obj",
                    "object_id": m.object_id,
                    "placement": list(m.placement),
                    "upload_id": None,
                }
            )
            store.index.drop_journal(m.version_id)
            assert m.version_hex == version_hex(m.version_id) == m.version_id.replace("-", "")
        finally:
            await store.close()

    await main()
