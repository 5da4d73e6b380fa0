"""The LevelDB index (plyvel): buckets, object listing order, manifests, multipart state.

It is a cache of the disks: `ObjectStore.rebuild_index` restores it from the manifests and
bucket records on disk. Writes that acknowledge a client request use sync=True so an
acknowledged object is never missing from the index after a crash.

Key space (bucket names never contain NUL; object keys are refused if they do):

    !meta                                   {"set_id": ..., "complete": true}
    B <bucket>                              bucket record (JSON)
    O <bucket> NUL <key>                    listing entry (JSON: size, etag, mtime, version)
    M <bucket> NUL <key>                    the object's manifest (BeeXL bytes)
    U <upload id>                           upload record (JSON)
    u <bucket> NUL <key> NUL <upload id>    upload listing entry (empty)
    P <upload id> NUL <part number:05d>     part record (JSON)
    J <version id>                          crash journal entry (JSON)
    H ...                                   the healer's queue and checkpoint (meta/healstate.py)

Each read and write method is one stage (index.get / index.put, s3free/obs/stage.py) for
metrics and tracing; the generators (iterations over many records) are not.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import plyvel

from s3free.errors import StoreInUse
from s3free.format.manifest import Manifest
from s3free.obs.stage import INDEX_GET, INDEX_PUT, staged

log = logging.getLogger(__name__)

_META = b"!meta"
_STOP = b"\xff"  # greater than any UTF-8 byte


def _j(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# -- records ---------------------------------------------------------------------------------
# Each record's to_json is what is stored (as canonical JSON, keys sorted: _j here, and
# format/records.encode for the upload record on the disks); from_json reads it back. The field
# names are the stored ones, so the bytes are those of the plain dicts they replace.


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """What a listing shows of an object (O <bucket> NUL <key>), kept beside its manifest."""

    etag: str
    mtime: int
    size: int
    version: str

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> ListingEntry:
        return cls(manifest.etag, manifest.last_modified_ms, manifest.size, manifest.version_id)

    def to_json(self) -> dict[str, Any]:
        return {"etag": self.etag, "mtime": self.mtime, "size": self.size, "version": self.version}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ListingEntry:
        return cls(obj["etag"], obj["mtime"], obj["size"], obj["version"])


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A version whose files must not outlive a crash unless the index points at it (J
    <version id>): a write before its switch, a replaced version before its files are
    removed; with `deleting`, a delete to finish; with `upload_id`, a multipart complete
    whose upload is still to be forgotten."""

    bucket: str
    key: str
    object_id: str
    placement: list[str]
    deleting: bool = False
    upload_id: str | None = None

    @classmethod
    def of(
        cls, manifest: Manifest, *, deleting: bool = False, upload_id: str | None = None
    ) -> JournalEntry:
        return cls(
            manifest.bucket,
            manifest.key,
            manifest.object_id,
            list(manifest.placement),
            deleting,
            upload_id,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "deleting": self.deleting,
            "key": self.key,
            "object_id": self.object_id,
            "placement": list(self.placement),
            "upload_id": self.upload_id,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> JournalEntry:
        return cls(
            obj["bucket"],
            obj["key"],
            obj["object_id"],
            list(obj["placement"]),
            bool(obj.get("deleting")),
            obj.get("upload_id"),
        )


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """A multipart upload in progress (U <upload id>, and upload.json on its disks)."""

    bucket: str
    key: str
    upload_id: str
    object_id: str  # hex
    version_id: str  # the version the complete will publish
    placement: list[str]
    initiated_ms: int
    content_type: str = ""
    user_metadata: dict[str, str] = field(default_factory=dict)
    http_headers: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # x-amz-tagging, given at complete

    # The stored fields and their JSON types (recovery checks a record read from a disk);
    # OPTIONAL ones are absent when empty, so records without them read as before.
    FIELDS: ClassVar[dict[str, type]] = {
        "bucket": str,
        "checksums": dict,
        "content_type": str,
        "http_headers": dict,
        "initiated_ms": int,
        "key": str,
        "object_id": str,
        "placement": list,
        "upload_id": str,
        "user_metadata": dict,
        "version_id": str,
    }
    OPTIONAL: ClassVar[dict[str, type]] = {"tags": dict}

    def to_json(self) -> dict[str, Any]:
        out = {
            "bucket": self.bucket,
            "checksums": dict(self.checksums),
            "content_type": self.content_type,
            "http_headers": dict(self.http_headers),
            "initiated_ms": self.initiated_ms,
            "key": self.key,
            "object_id": self.object_id,
            "placement": list(self.placement),
            "upload_id": self.upload_id,
            "user_metadata": dict(self.user_metadata),
            "version_id": self.version_id,
        }
        if self.tags:
            out["tags"] = dict(self.tags)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> UploadRecord:
        return cls(
            bucket=obj["bucket"],
            key=obj["key"],
            upload_id=obj["upload_id"],
            object_id=obj["object_id"],
            version_id=obj["version_id"],
            placement=list(obj["placement"]),
            initiated_ms=obj["initiated_ms"],
            content_type=obj["content_type"],
            user_metadata=dict(obj["user_metadata"]),
            http_headers=dict(obj["http_headers"]),
            checksums=dict(obj["checksums"]),
            tags=dict(obj.get("tags", {})),
        )


@dataclass(frozen=True, slots=True)
class PartRecord:
    """One uploaded part (P <upload id> NUL <number>); `failed`: shards not written."""

    number: int
    size: int
    etag: str
    md5: str
    blocks: int
    merkle_root: str
    mtime: int
    failed: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "blocks": self.blocks,
            "etag": self.etag,
            "failed": list(self.failed),
            "md5": self.md5,
            "merkle_root": self.merkle_root,
            "mtime": self.mtime,
            "number": self.number,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PartRecord:
        return cls(
            number=obj["number"],
            size=obj["size"],
            etag=obj["etag"],
            md5=obj["md5"],
            blocks=obj["blocks"],
            merkle_root=obj["merkle_root"],
            mtime=obj["mtime"],
            failed=list(obj["failed"]),
        )


@dataclass(frozen=True)
class ListPage:
    entries: list[tuple[str, ListingEntry]]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str


class Index:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        # paranoid_checks: a damaged log or table refuses to open (the store then rebuilds the
        # index from the disks) instead of silently dropping the records it cannot read.
        self.db = plyvel.DB(str(self.path), create_if_missing=True, paranoid_checks=True)
        self._create_lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    # -- meta ------------------------------------------------------------------------------

    @staged(INDEX_GET)
    def get_meta(self) -> dict | None:
        raw = self.db.get(_META)
        return json.loads(raw) if raw else None

    @staged(INDEX_PUT)
    def set_meta(self, meta: dict) -> None:
        self.db.put(_META, _j(meta), sync=True)

    @staged(INDEX_PUT)
    def clear(self) -> None:
        """Drop everything (before a rebuild) but the healer's state (prefix H), which names
        versions and outlives a rebuild: a stale entry is dropped when the healer meets it."""
        with self.db.write_batch(sync=True) as batch:
            for key in self.db.iterator(include_value=False):
                if not key.startswith(b"H"):
                    batch.delete(key)

    # -- buckets ---------------------------------------------------------------------------

    @staged(INDEX_PUT)
    def create_bucket(self, name: str, record: dict) -> bool:
        """Atomically create; False if it already exists (no check-then-act race)."""
        key = b"B" + name.encode()
        with self._create_lock:
            if self.db.get(key) is not None:
                return False
            self.db.put(key, _j(record), sync=True)
            return True

    @staged(INDEX_PUT)
    def put_bucket(self, name: str, record: dict) -> None:
        self.db.put(b"B" + name.encode(), _j(record), sync=True)

    @staged(INDEX_GET)
    def get_bucket(self, name: str) -> dict | None:
        raw = self.db.get(b"B" + name.encode())
        return json.loads(raw) if raw else None

    @staged(INDEX_PUT)
    def delete_bucket(self, name: str) -> None:
        self.db.delete(b"B" + name.encode(), sync=True)

    @staged(INDEX_GET)
    def list_buckets(self) -> list[dict]:
        return [json.loads(v) for _, v in self.db.iterator(prefix=b"B")]

    @staged(INDEX_GET)
    def bucket_has_objects(self, name: str) -> bool:
        with self.db.iterator(prefix=b"O" + name.encode() + b"\x00", include_value=False) as it:
            return next(it, None) is not None

    # -- objects ---------------------------------------------------------------------------

    @staticmethod
    def _okey(tag: bytes, bucket: str, key: str) -> bytes:
        return tag + bucket.encode() + b"\x00" + key.encode()

    @staged(INDEX_PUT)
    def put_object(
        self,
        bucket: str,
        key: str,
        entry: ListingEntry,
        manifest: bytes,
        journal: dict[str, JournalEntry | None] | None = None,
    ) -> None:
        with self.db.write_batch(sync=True) as batch:
            batch.put(self._okey(b"O", bucket, key), _j(entry.to_json()))
            batch.put(self._okey(b"M", bucket, key), manifest)
            for version_id, record in (journal or {}).items():
                if record is None:
                    batch.delete(b"J" + version_id.encode())
                else:
                    batch.put(b"J" + version_id.encode(), _j(record.to_json()))

    # -- the crash journal -------------------------------------------------------------------
    # J <version id> -> a JournalEntry (above).

    @staged(INDEX_PUT)
    def put_journal(self, version_id: str, record: JournalEntry) -> None:
        """Not synced: the entry survives a process crash (it is in LevelDB's log, in the page
        cache) and is made durable by the synced index switch that follows; only a power
        loss in between can drop it, leaving a stray version for the scrubber, as before."""
        self.db.put(b"J" + version_id.encode(), _j(record.to_json()))

    @staged(INDEX_PUT)
    def drop_journal(self, version_id: str) -> None:
        self.db.delete(b"J" + version_id.encode())

    @staged(INDEX_GET)
    def journal(self) -> list[tuple[str, JournalEntry]]:
        return [
            (k[1:].decode(), JournalEntry.from_json(json.loads(v)))
            for k, v in self.db.iterator(prefix=b"J")
        ]

    @staged(INDEX_PUT)
    def load(
        self,
        buckets: dict[str, dict],
        objects: Iterator[tuple[str, str, ListingEntry, bytes]],
    ) -> None:
        """Bulk-fill an empty index (a rebuild) in unsynced batches of 10,000 objects. The
        caller's following set_meta is a sync write, which makes all of it durable (one log)."""
        batch = self.db.write_batch()
        for name, record in buckets.items():
            batch.put(b"B" + name.encode(), _j(record))
        for count, (bucket, key, entry, manifest) in enumerate(objects, 1):
            batch.put(self._okey(b"O", bucket, key), _j(entry.to_json()))
            batch.put(self._okey(b"M", bucket, key), manifest)
            if count % 10_000 == 0:
                batch.write()
                batch = self.db.write_batch()
        batch.write()

    @staged(INDEX_GET)
    def get_manifest(self, bucket: str, key: str) -> bytes | None:
        return self.db.get(self._okey(b"M", bucket, key))

    @staged(INDEX_PUT)
    def delete_object(self, bucket: str, key: str) -> None:
        with self.db.write_batch(sync=True) as batch:
            batch.delete(self._okey(b"O", bucket, key))
            batch.delete(self._okey(b"M", bucket, key))

    def iter_manifests(self, bucket: str | None = None) -> Iterator[tuple[str, str, bytes]]:
        prefix = b"M" + (bucket.encode() + b"\x00" if bucket is not None else b"")
        for k, v in self.db.iterator(prefix=prefix):
            b, _, key = k[1:].partition(b"\x00")
            yield b.decode(), key.decode(), v

    @staged(INDEX_GET)
    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        """One page of keys in UTF-8 byte order; with a delimiter, keys sharing the text up to
        the first delimiter after the prefix collapse into one common prefix. The iterator
        jumps past a whole common prefix, so a page costs O(page) however many keys hide
        behind it."""
        base = b"O" + bucket.encode() + b"\x00"
        lo = base + prefix.encode()
        if start_after and base + start_after.encode() >= lo:
            lo = base + start_after.encode() + b"\x00"
        entries: list[tuple[str, ListingEntry]] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        if max_keys <= 0:
            with self.db.iterator(start=lo, stop=base + prefix.encode() + _STOP) as it:
                truncated = next(it, None) is not None
            return ListPage([], [], truncated, "")
        with self.db.iterator(start=lo, stop=base + prefix.encode() + _STOP) as it:
            for raw_key, raw_value in it:
                key = raw_key[len(base) :].decode()
                if delimiter:
                    pos = key.find(delimiter, len(prefix))
                    if pos >= 0:
                        common = key[: pos + len(delimiter)]
                        if start_after and start_after.startswith(common):
                            it.seek(base + common.encode() + _STOP)
                            continue
                        if len(entries) + len(prefixes) >= max_keys:
                            truncated = True
                            break
                        prefixes.append(common)
                        last = common
                        it.seek(base + common.encode() + _STOP)
                        continue
                if len(entries) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                entries.append((key, ListingEntry.from_json(json.loads(raw_value))))
                last = key
        return ListPage(entries, prefixes, truncated, last if truncated else "")

    # -- multipart -------------------------------------------------------------------------

    @staged(INDEX_PUT)
    def put_upload(self, upload_id: str, record: UploadRecord) -> None:
        with self.db.write_batch(sync=True) as batch:
            batch.put(b"U" + upload_id.encode(), _j(record.to_json()))
            batch.put(self._ukey(record.bucket, record.key, upload_id), b"")

    @staticmethod
    def _ukey(bucket: str, key: str, upload_id: str) -> bytes:
        return b"u" + bucket.encode() + b"\x00" + key.encode() + b"\x00" + upload_id.encode()

    @staged(INDEX_GET)
    def get_upload(self, upload_id: str) -> UploadRecord | None:
        raw = self.db.get(b"U" + upload_id.encode())
        return UploadRecord.from_json(json.loads(raw)) if raw else None

    @staged(INDEX_PUT)
    def delete_upload(self, upload_id: str) -> None:
        record = self.get_upload(upload_id)
        with self.db.write_batch(sync=True) as batch:
            batch.delete(b"U" + upload_id.encode())
            if record is not None:
                batch.delete(self._ukey(record.bucket, record.key, upload_id))
            for k in self.db.iterator(
                prefix=b"P" + upload_id.encode() + b"\x00", include_value=False
            ):
                batch.delete(k)

    @staged(INDEX_PUT)
    def put_part(self, upload_id: str, record: PartRecord) -> None:
        number = record.number
        self.db.put(
            b"P" + upload_id.encode() + b"\x00" + b"%05d" % number, _j(record.to_json()), sync=True
        )

    @staged(INDEX_GET)
    def get_part(self, upload_id: str, number: int) -> PartRecord | None:
        raw = self.db.get(b"P" + upload_id.encode() + b"\x00" + b"%05d" % number)
        return PartRecord.from_json(json.loads(raw)) if raw else None

    def list_parts(self, upload_id: str, after: int = 0) -> Iterator[PartRecord]:
        prefix = b"P" + upload_id.encode() + b"\x00"
        start = prefix + b"%05d" % (after + 1)
        for _, v in self.db.iterator(start=start, stop=prefix + _STOP):
            yield PartRecord.from_json(json.loads(v))

    def list_uploads(
        self, bucket: str, *, prefix: str = "", key_marker: str = "", upload_id_marker: str = ""
    ) -> Iterator[tuple[str, str]]:
        """(key, upload id) in key order, then upload id order, after the markers."""
        base = b"u" + bucket.encode() + b"\x00"
        lo = base + prefix.encode()
        if key_marker:
            marker = base + key_marker.encode() + b"\x00"
            marker += upload_id_marker.encode() + b"\x00" if upload_id_marker else _STOP
            lo = max(lo, marker)
        for k in self.db.iterator(
            start=lo, stop=base + prefix.encode() + _STOP, include_value=False
        ):
            key, _, upload_id = k[len(base) :].rpartition(b"\x00")
            yield key.decode(), upload_id.decode()

    def uploads_in_bucket(self, bucket: str) -> list[str]:
        return [u for _, u in self.list_uploads(bucket)]


def open_index(path: Path) -> Index:
    """Open the index; a corrupt one is moved aside (kept for inspection) and rebuilt."""
    try:
        return Index(path)
    except plyvel.Error as exc:
        if "lock" in str(exc).lower():  # held by another process: in use, not corrupt
            raise StoreInUse(f"the index at {path} is in use by another process: {exc}") from None
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.error("index at %s is unusable (%s): moved to %s, rebuilding", path, exc, aside)
        path.rename(aside)
        return Index(path)
