"""The fixed 128-byte shard header that opens every shard record.

Layout (little-endian), also drawn in specs/beexl-v1.md:

    off size field
      0    8 magic            b"BeeXLv1\\0"
      8    2 format_version   1
     10    2 header_size      128
     12    1 codec_id         1 = Reed-Solomon over GF(2^8) as zfec computes it
     13    1 k                data shards per block, 1..255
     14    1 m                parity shards per block, 1..255, k + m <= 256
     15    1 shard_index      0..k+m-1 (0..k-1 data, k.. parity)
     16   16 object_id        BLAKE3-128 of bucket NUL key (see ids.py)
     32   16 bucket_hash      BLAKE3-128 of the bucket name
     48   16 version_id       UUIDv7 of the write, 16 raw bytes
     64    4 part_number      1..10000
     68    4 block_index      0-based within the part
     72    4 block_length     plaintext bytes in this block
     76    4 payload_length   shard payload bytes = ceil(block_length / k)
     80    8 generation       >= 1, raised by every repair
     88   32 content_hash     BLAKE3-256 of the plaintext block
    120    4 flags            0 in v1; anything else is refused
    124    4 header_crc       CRC32C of bytes 0..123
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

from s3free.format.errors import FormatError

HEADER_MAGIC = b"BeeXLv1\x00"
FORMAT_VERSION = 1
HEADER_SIZE = 128
CODEC_ZFEC_RS = 1
MAX_PART_NUMBER = 10000
MAX_BLOCK_LENGTH = 64 * 1024 * 1024

_LAYOUT = struct.Struct("<8sHHBBBB16s16s16sIIIIQ32sI")
assert _LAYOUT.size == HEADER_SIZE - 4
_IDENTITY = struct.Struct("<8sHHBBBB16s16s16sIIII")  # the fields before the generation
_REST = struct.Struct("<Q32sI")  # generation, content hash, flags
assert _IDENTITY.size + _REST.size == _LAYOUT.size
IDENTITY_SIZE = _IDENTITY.size  # 80


def _payload_length(block_length: int, k: int) -> int:
    return -(-block_length // k)


@dataclass(frozen=True, slots=True)
class ShardHeader:
    """Identity and integrity of one shard of one block; enough to place it without a manifest."""

    codec_id: int
    k: int
    m: int
    shard_index: int
    object_id: bytes
    bucket_hash: bytes
    version_id: bytes
    part_number: int
    block_index: int
    block_length: int
    payload_length: int
    generation: int
    content_hash: bytes

    def validate(self) -> None:
        """Raise FormatError for any field out of range; encode and decode both call it."""
        if self.codec_id != CODEC_ZFEC_RS:
            raise FormatError(f"unknown codec id {self.codec_id}")
        if not (1 <= self.k <= 255 and 1 <= self.m <= 255 and self.k + self.m <= 256):
            raise FormatError(f"k={self.k} m={self.m} out of range")
        if not 0 <= self.shard_index < self.k + self.m:
            raise FormatError(f"shard index {self.shard_index} out of range for k+m")
        for name in ("object_id", "bucket_hash", "version_id"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 16:
                raise FormatError(f"{name} must be 16 bytes")
        if (self.version_id[6] >> 4) != 7 or (self.version_id[8] >> 6) != 0b10:
            raise FormatError("version id is not a UUIDv7")
        if not 1 <= self.part_number <= MAX_PART_NUMBER:
            raise FormatError(f"part number {self.part_number} out of range")
        if not 0 <= self.block_index < 2**32:
            raise FormatError(f"block index {self.block_index} out of range")
        if not 0 <= self.block_length <= MAX_BLOCK_LENGTH:
            raise FormatError(f"block length {self.block_length} out of range")
        if self.payload_length != _payload_length(self.block_length, self.k):
            raise FormatError(
                f"payload length {self.payload_length} != ceil({self.block_length}/{self.k})"
            )
        if not 1 <= self.generation < 2**64:
            raise FormatError(f"generation {self.generation} out of range")
        if not isinstance(self.content_hash, bytes) or len(self.content_hash) != 32:
            raise FormatError("content hash must be 32 bytes")

    def encode(self) -> bytes:
        self.validate()
        body = identity_prefix(
            k=self.k,
            m=self.m,
            shard_index=self.shard_index,
            object_id=self.object_id,
            bucket_hash=self.bucket_hash,
            version_id=self.version_id,
            part_number=self.part_number,
            block_index=self.block_index,
            block_length=self.block_length,
        ) + _REST.pack(self.generation, self.content_hash, 0)
        return body + crc32c.crc32c(body).to_bytes(4, "little")

    @classmethod
    def decode(cls, data: bytes | memoryview) -> ShardHeader:
        """Decode the first HEADER_SIZE bytes of data; FormatError for anything not valid v1."""
        if len(data) < HEADER_SIZE:
            raise FormatError(f"header truncated: {len(data)} < {HEADER_SIZE} bytes")
        raw = bytes(data[:HEADER_SIZE])
        if raw[:8] != HEADER_MAGIC:
            raise FormatError("bad shard header magic")
        stored_crc = int.from_bytes(raw[124:128], "little")
        if crc32c.crc32c(raw[:124]) != stored_crc:
            raise FormatError("shard header CRC32C mismatch")
        (
            _magic,
            version,
            header_size,
            codec_id,
            k,
            m,
            shard_index,
            object_id,
            bucket_hash,
            version_id,
            part_number,
            block_index,
            block_length,
            payload_length,
            generation,
            content_hash,
            flags,
        ) = _LAYOUT.unpack(raw[:124])
        if version != FORMAT_VERSION:
            raise FormatError(f"unsupported shard format version {version}")
        if header_size != HEADER_SIZE:
            raise FormatError(f"unexpected header size {header_size}")
        if flags != 0:
            raise FormatError(f"unknown header flags {flags:#x}")
        header = cls(
            codec_id=codec_id,
            k=k,
            m=m,
            shard_index=shard_index,
            object_id=object_id,
            bucket_hash=bucket_hash,
            version_id=version_id,
            part_number=part_number,
            block_index=block_index,
            block_length=block_length,
            payload_length=payload_length,
            generation=generation,
            content_hash=content_hash,
        )
        header.validate()
        return header


def identity_prefix(
    *,
    k: int,
    m: int,
    shard_index: int,
    object_id: bytes,
    bucket_hash: bytes,
    version_id: bytes,
    part_number: int,
    block_index: int,
    block_length: int,
) -> bytes:
    """The first IDENTITY_SIZE bytes every valid header of this shard of this block has: all
    fields before the generation. A header that starts with them passed every check of those
    fields that `decode` and `validate` make (the values come from a valid manifest)."""
    return _IDENTITY.pack(
        HEADER_MAGIC,
        FORMAT_VERSION,
        HEADER_SIZE,
        CODEC_ZFEC_RS,
        k,
        m,
        shard_index,
        object_id,
        bucket_hash,
        version_id,
        part_number,
        block_index,
        block_length,
        _payload_length(block_length, k),
    )
