"""Bucket usage from the index: objects, logical bytes, raw bytes on the disks, uploads.

Computed by one walk over the index, streaming: a page of manifests at a time, never the whole
key list. Raw bytes come from
each manifest's geometry, not from stat calls: per part, every block becomes k+m shard records
of RECORD_OVERHEAD + ceil(block_length / k) bytes, and every one of the k+m disks keeps one copy
of the manifest envelope (an inline version's file is that envelope followed by its records,
so the same sum holds). That is what the object occupies when healthy; a degraded version
occupies less until it is repaired. Filesystem block rounding is not counted.

Why a walk and not running counters: see the module note in s3free/admin/info.py.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from s3free.format.record import RECORD_OVERHEAD

_ENVELOPE = struct.Struct("<8sHHI")


@dataclass
class Usage:
    """One bucket's figures (or the store's total); field names are the JSON contract."""

    objects: int = 0
    logical_bytes: int = 0
    raw_bytes: int = 0
    uploads: int = 0  # multipart uploads not completed nor aborted
    upload_parts: int = 0
    upload_bytes: int = 0  # bytes of the parts uploaded so far
    upload_raw_bytes: int = 0  # their shard files on the disks

    def add(self, other: Usage) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def to_json(self) -> dict:
        return asdict(self)


def part_raw_bytes(size: int, block_size: int, k: int, m: int) -> int:
    """Bytes the k+m shard files of one part of `size` bytes take (an empty part still has
    one empty block, so its shards carry headers and footers)."""
    full, rest = divmod(size, block_size)
    blocks = full + (1 if rest else 0)
    payload = full * -(-block_size // k) + -(-rest // k)
    if blocks == 0:
        blocks = 1
    return (k + m) * (blocks * RECORD_OVERHEAD + payload)


def manifest_raw_bytes(blob: bytes) -> tuple[int, int]:
    """(logical size, raw bytes) of one indexed manifest envelope. The body is parsed without
    the strict checks of Manifest.decode (the index holds only manifests that passed them);
    a ValueError if the envelope is not even that."""
    if len(blob) < _ENVELOPE.size + 4:
        raise ValueError("manifest envelope truncated")
    (body_length,) = struct.unpack_from("<I", blob, 12)
    body = json.loads(blob[_ENVELOPE.size : _ENVELOPE.size + body_length])
    ec = body["ec"]
    k, m, block_size = ec["k"], ec["m"], ec["block_size"]
    raw = (k + m) * len(blob)
    for part in body["parts"]:
        raw += part_raw_bytes(part["size"], block_size, k, m)
    return body["size"], raw


def _prefix(tag: bytes, bucket: str | None) -> bytes:
    return tag + (bucket.encode() + b"\x00" if bucket is not None else b"")


PAGE = 1000  # index records read per iterator (no iterator stays open across pages)


def _records(db, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) under prefix, in order, a page per iterator: a long walk never
    holds the index (a rebuild's swap waits only for one page)."""
    start = prefix
    stop = prefix + b"\xff"
    while True:
        with db.iterator(start=start, stop=stop) as it:
            page = [record for record, _ in zip(it, range(PAGE), strict=False)]
        yield from page
        if len(page) < PAGE:
            return
        start = page[-1][0] + b"\x00"


def walk_usage(
    db, geometry: tuple[int, int, int], bucket: str | None = None
) -> Iterator[tuple[str, Usage]]:
    """(bucket name, its Usage) for every bucket that has objects or uploads (or just the
    one asked for), in name order. `db` is the index's plyvel DB (or its SwappableDB);
    `geometry` is the set's (k, m, block_size), for upload parts (they carry no manifest
    yet). Memory is one bucket's counters and one page at a time. Each object is counted
    once, as it was when its page was read: exact when no write runs during the walk."""
    k, m, block_size = geometry
    objects = _per_bucket_objects(db, bucket)
    uploads = _per_bucket_uploads(db, bucket, k, m, block_size)
    a, b = next(objects, None), next(uploads, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            yield a  # type: ignore[misc]
            a = next(objects, None)
        elif a is None or b[0] < a[0]:
            yield b
            b = next(uploads, None)
        else:
            a[1].add(b[1])
            yield a
            a, b = next(objects, None), next(uploads, None)


def _per_bucket_objects(db, bucket: str | None) -> Iterator[tuple[str, Usage]]:
    current: str | None = None
    usage = Usage()
    for raw_key, blob in _records(db, _prefix(b"M", bucket)):
        name = raw_key[1 : raw_key.index(b"\x00")].decode()
        if name != current:
            if current is not None:
                yield current, usage
            current, usage = name, Usage()
        size, raw = manifest_raw_bytes(blob)
        usage.objects += 1
        usage.logical_bytes += size
        usage.raw_bytes += raw
    if current is not None:
        yield current, usage


def _per_bucket_uploads(
    db, bucket: str | None, k: int, m: int, block_size: int
) -> Iterator[tuple[str, Usage]]:
    current: str | None = None
    usage = Usage()
    for raw_key, _ in _records(db, _prefix(b"u", bucket)):
        name = raw_key[1 : raw_key.index(b"\x00")].decode()
        upload_id = raw_key.rpartition(b"\x00")[2]
        if name != current:
            if current is not None:
                yield current, usage
            current, usage = name, Usage()
        usage.uploads += 1
        for _, value in _records(db, b"P" + upload_id + b"\x00"):
            part = json.loads(value)
            usage.upload_parts += 1
            usage.upload_bytes += part["size"]
            usage.upload_raw_bytes += part_raw_bytes(part["size"], block_size, k, m)
    if current is not None:
        yield current, usage
