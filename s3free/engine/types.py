"""Values the engine hands to its callers (the S3 layer, the healer, the CLI)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from s3free.format.manifest import Manifest


def now_ms() -> int:
    """Wall-clock time in milliseconds, as records and manifests store it."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    created_ms: int
    owner: str = ""  # the owner's user id ("" or "root": the root user)
    acl: str = "private"  # canned ACL: private or public-read
    # Of the record's copies on the disks the highest generation wins (format/records.py);
    # 0 for records written before generations (and then left out of the record).
    generation: int = 0

    def to_record(self) -> dict:
        record = {
            "acl": self.acl,
            "created_ms": self.created_ms,
            "name": self.name,
            "owner": self.owner,
        }
        if self.generation:
            record["generation"] = self.generation
        return record

    @classmethod
    def from_record(cls, record: dict) -> BucketInfo:
        return cls(
            record["name"],
            record["created_ms"],
            record.get("owner", ""),
            record.get("acl", "private"),
            record.get("generation", 0),
        )


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    last_modified_ms: int
    content_type: str
    version_id: str
    user_metadata: dict[str, str] = field(default_factory=dict)
    http_headers: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    parts_count: int = 1

    @classmethod
    def from_manifest(cls, m: Manifest) -> ObjectInfo:
        return cls(
            bucket=m.bucket,
            key=m.key,
            size=m.size,
            etag=m.etag,
            last_modified_ms=m.last_modified_ms,
            content_type=m.content_type,
            version_id=m.version_id,
            user_metadata=dict(m.user_metadata),
            http_headers=dict(m.http_headers),
            checksums=dict(m.checksums),
            parts_count=len(m.parts),
        )


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    key: str
    size: int
    etag: str
    last_modified_ms: int


@dataclass(frozen=True, slots=True)
class ListResult:
    objects: list[ObjectSummary]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str


@dataclass(frozen=True, slots=True)
class ShardFault:
    """One shard the engine found bad or missing; the healer's unit of work.

    block_index is None when the whole shard file was unusable (missing, disk offline, not
    written)."""

    bucket: str
    key: str
    version_id: str
    part_number: int
    shard_index: int
    disk_id: str
    reason: str
    block_index: int | None = None
    object_size: int = 0  # the version's size: what the degraded-bytes figure adds up


@dataclass(frozen=True, slots=True)
class PartInfo:
    number: int
    size: int
    etag: str
    last_modified_ms: int


@dataclass(frozen=True, slots=True)
class UploadInfo:
    bucket: str
    key: str
    upload_id: str
    initiated_ms: int
