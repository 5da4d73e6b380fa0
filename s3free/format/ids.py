"""Identifiers written into headers and manifests, derived the same way by every writer."""

from __future__ import annotations

import os
import time
import uuid

import blake3

_OBJECT_ID_CONTEXT = b"s3free object id v1\x00"
_BUCKET_HASH_CONTEXT = b"s3free bucket hash v1\x00"


def object_id(bucket: str, key: str) -> bytes:
    """16 bytes naming (bucket, key): stable across versions, so placement and the object
    directory follow the name."""
    return blake3.blake3(_OBJECT_ID_CONTEXT + bucket.encode() + b"\x00" + key.encode()).digest(16)


def bucket_hash(bucket: str) -> bytes:
    return blake3.blake3(_BUCKET_HASH_CONTEXT + bucket.encode()).digest(16)


_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix ms, then a 12-bit counter that keeps ids made in one
    millisecond increasing within this process, then random bits."""
    global _last_ms, _counter
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms:
        ms = _last_ms
        _counter += 1
        if _counter > 0xFFF:
            ms += 1
            _counter = 0
    else:
        _counter = 0
    _last_ms = ms
    rand = int.from_bytes(os.urandom(8), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= _counter << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def version_hex(version_id: str) -> str:
    """A version id ("0192...-7abc-...") as the 32 hex digits that name its files on disk."""
    return version_id.replace("-", "")


def version_id_from_hex(vhex: str) -> str:
    """The inverse of version_hex: 32 hex digits as the dashed version id."""
    return f"{vhex[:8]}-{vhex[8:12]}-{vhex[12:16]}-{vhex[16:20]}-{vhex[20:]}"
