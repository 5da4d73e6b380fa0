"""The fixed 64-byte shard footer that closes every shard record.

Layout (little-endian):

    off size field
      0    8 magic           b"BeeXLend"
      8    4 payload_length  repeats the header's
     12    4 block_index     repeats the header's
     16    8 generation      repeats the header's
     24   32 merkle_leaf     BLAKE3-256 of this shard's payload
     56    4 reserved        0
     60    4 record_crc      CRC32C of header (128) + payload + footer bytes 0..59

The repeated fields and the CRC over the whole record make a torn, truncated or spliced record
fail as a unit; the leaf lets a scrubber prove one shard's payload without decoding the block.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

from s3free.format.errors import FormatError

FOOTER_MAGIC = b"BeeXLend"
FOOTER_SIZE = 64

_LAYOUT = struct.Struct("<8sIIQ32sI")
assert _LAYOUT.size == FOOTER_SIZE - 4


@dataclass(frozen=True, slots=True)
class ShardFooter:
    payload_length: int
    block_index: int
    generation: int
    merkle_leaf: bytes

    def encode_fields(self) -> bytes:
        """The 60 bytes the record CRC covers after header and payload."""
        if len(self.merkle_leaf) != 32:
            raise FormatError("merkle leaf must be 32 bytes")
        return _LAYOUT.pack(
            FOOTER_MAGIC,
            self.payload_length,
            self.block_index,
            self.generation,
            self.merkle_leaf,
            0,
        )

    @staticmethod
    def seal(fields: bytes, header: bytes, payload: bytes | memoryview) -> bytes:
        """Append the record CRC to the footer fields."""
        crc = crc32c.crc32c(header)
        crc = crc32c.crc32c(payload, crc)
        crc = crc32c.crc32c(fields, crc)
        return fields + crc.to_bytes(4, "little")

    @classmethod
    def decode_fields(cls, data: bytes | memoryview) -> ShardFooter:
        """Decode the footer's fields; the caller checks the record CRC (it needs the payload)."""
        if len(data) != FOOTER_SIZE:
            raise FormatError(f"footer must be {FOOTER_SIZE} bytes, got {len(data)}")
        magic, payload_length, block_index, generation, leaf, reserved = _LAYOUT.unpack(
            bytes(data[:60])
        )
        if magic != FOOTER_MAGIC:
            raise FormatError("bad shard footer magic")
        if reserved != 0:
            raise FormatError("footer reserved field is not zero")
        return cls(payload_length, block_index, generation, leaf)
