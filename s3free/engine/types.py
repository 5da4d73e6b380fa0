"""Values the engine hands to its callers (the S3 layer, the healer, the CLI)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

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
    # Bucket tagging, key -> value; left out of the record when empty (records unchanged).
    tags: dict[str, str] = field(default_factory=dict)

    def to_record(self) -> dict:
        record = {
            "acl": self.acl,
            "created_ms": self.created_ms,
            "name": self.name,
            "owner": self.owner,
        }
        if self.generation:
            record["generation"] = self.generation
        if self.tags:
            record["tags"] = dict(self.tags)
        return record

    @classmethod
    def from_record(cls, record: dict) -> BucketInfo:
        return cls(
            record["name"],
            record["created_ms"],
            record.get("owner", ""),
            record.get("acl", "private"),
            record.get("generation", 0),
            dict(record.get("tags", {})),
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
    tags: dict[str, str] = field(default_factory=dict)

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
            tags=dict(m.tags),
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


class FaultGroup(StrEnum):
    """The bounded label a fault is counted under (the s3free_shards_bad metric's reason)."""

    OFFLINE = "offline"
    MISSING = "missing"
    NOT_WRITTEN = "not_written"
    IO = "io"
    CORRUPT = "corrupt"


class FaultKind(StrEnum):
    """Why a shard is bad or missing: what metrics and the healer decide on. The fault's
    `reason` says the same in words, for people; no code reads that text."""

    # A read could not use the shard file because of its disk (it may come back).
    DISK_OFFLINE = "disk_offline"
    NOT_IN_SET = "not_in_set"  # the placement names a disk that is not part of this set
    # A read could not use the shard file itself.
    MISSING = "missing"
    UNUSABLE = "unusable"  # an earlier read of the same version found the file unusable
    IO_ERROR = "io_error"  # opening or reading it raised an OSError
    # A record failed a check.
    CORRUPT = "corrupt"  # decoding (magic, CRC, length), its Merkle leaf, an inline envelope
    MISPLACED = "misplaced"  # its header names another object, version, part, block or shard
    NEWER_GENERATION = "newer_generation"  # written by a repair the manifest does not know
    DISAGREES = "disagrees"  # passed its own checks but is not the verified block's shard
    # A write could not make the shard.
    NOT_WRITTEN = "not_written"
    NOT_WRITTEN_OFFLINE = "not_written_offline"  # its disk was offline
    NOT_WRITTEN_FULL = "not_written_full"  # the monitor had marked its disk full

    @property
    def group(self) -> FaultGroup:
        return _FAULT_GROUPS[self]


_FAULT_GROUPS: dict[FaultKind, FaultGroup] = {
    FaultKind.DISK_OFFLINE: FaultGroup.OFFLINE,
    FaultKind.NOT_IN_SET: FaultGroup.OFFLINE,
    FaultKind.MISSING: FaultGroup.MISSING,
    FaultKind.UNUSABLE: FaultGroup.MISSING,
    FaultKind.IO_ERROR: FaultGroup.IO,
    FaultKind.CORRUPT: FaultGroup.CORRUPT,
    FaultKind.MISPLACED: FaultGroup.CORRUPT,
    FaultKind.NEWER_GENERATION: FaultGroup.CORRUPT,
    FaultKind.DISAGREES: FaultGroup.CORRUPT,
    FaultKind.NOT_WRITTEN: FaultGroup.NOT_WRITTEN,
    FaultKind.NOT_WRITTEN_OFFLINE: FaultGroup.NOT_WRITTEN,
    FaultKind.NOT_WRITTEN_FULL: FaultGroup.NOT_WRITTEN,
}


class WriteMiss(str):
    """Why a write left a shard out when the reason is one the healer acts on (the disk was
    offline or full): the words, as a str, so the failure maps, quorum errors and log lines
    that carry it are unchanged; and its kind, which `missed_kind` reads back."""

    kind: FaultKind

    def __new__(cls, kind: FaultKind, text: str) -> WriteMiss:
        self = super().__new__(cls, text)
        self.kind = kind
        return self


def missed_kind(why: str) -> FaultKind:
    """The kind of a shard a write did not make, from the failure it recorded."""
    return why.kind if isinstance(why, WriteMiss) else FaultKind.NOT_WRITTEN


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
    reason: str  # for people (logs, the repair queue's entries); code decides on `kind`
    kind: FaultKind
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
