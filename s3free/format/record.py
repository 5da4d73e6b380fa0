"""A shard record: header + payload + footer, the unit every integrity check works on.

A shard file is the records of one part's blocks for one shard index, in block order. Every
record but the last of a part has the same size, so record i starts at i * full_record_size.
"""

from __future__ import annotations

from dataclasses import dataclass

import blake3
import crc32c

from s3free.format.errors import FormatError
from s3free.format.footer import FOOTER_MAGIC, FOOTER_SIZE, ShardFooter
from s3free.format.header import HEADER_SIZE, IDENTITY_SIZE, ShardHeader

RECORD_OVERHEAD = HEADER_SIZE + FOOTER_SIZE


def leaf_hash(payload: bytes | memoryview) -> bytes:
    """The footer's Merkle leaf: BLAKE3-256 of one shard payload."""
    return blake3.blake3(payload).digest()


def record_size(payload_length: int) -> int:
    return RECORD_OVERHEAD + payload_length


@dataclass(frozen=True, slots=True)
class ShardRecord:
    header: ShardHeader
    payload: memoryview
    footer: ShardFooter

    def leaf_ok(self) -> bool:
        """Whether the payload still hashes to the footer's leaf (the costlier, cryptographic
        check; the CRC already passed when this record was decoded)."""
        return leaf_hash(self.payload) == self.footer.merkle_leaf


def encode_record(header: ShardHeader, payload: bytes | memoryview) -> bytes:
    """The bytes of one shard record, ready to append to a shard file."""
    if len(payload) != header.payload_length:
        raise FormatError(f"payload is {len(payload)} bytes, header says {header.payload_length}")
    head = header.encode()
    footer = ShardFooter(
        header.payload_length, header.block_index, header.generation, leaf_hash(payload)
    )
    return b"".join((head, payload, ShardFooter.seal(footer.encode_fields(), head, payload)))


def decode_record(data: bytes | memoryview, *, verify_leaf: bool = False) -> ShardRecord:
    """Check and split one whole record; FormatError for any damage.

    Checks: header magic/version/CRC/ranges, exact length, footer magic, the fields the footer
    repeats, and the CRC32C over the whole record. With verify_leaf also the BLAKE3 leaf.
    """
    view = memoryview(data)
    header = ShardHeader.decode(view)
    expected = record_size(header.payload_length)
    if len(view) != expected:
        raise FormatError(f"record is {len(view)} bytes, header says {expected}")
    payload = view[HEADER_SIZE : HEADER_SIZE + header.payload_length]
    foot = view[HEADER_SIZE + header.payload_length :]
    footer = ShardFooter.decode_fields(foot)
    if (footer.payload_length, footer.block_index, footer.generation) != (
        header.payload_length,
        header.block_index,
        header.generation,
    ):
        raise FormatError("footer does not match its header (spliced or torn record)")
    stored = int.from_bytes(foot[60:64], "little")
    crc = crc32c.crc32c(view[: HEADER_SIZE + header.payload_length])
    crc = crc32c.crc32c(foot[:60], crc)
    if crc != stored:
        raise FormatError("shard record CRC32C mismatch")
    record = ShardRecord(header, payload, footer)
    if verify_leaf and not record.leaf_ok():
        raise FormatError("shard payload does not match its Merkle leaf")
    return record


_ZERO4 = bytes(4)


def checked_payload(
    data: memoryview, identity: bytes, max_generation: int
) -> tuple[memoryview, bytes] | None:
    """(payload, content hash) of a record that is exactly what a shard with this identity
    (`header.identity_prefix`) of a manifest at `max_generation` must hold, or None.

    Makes every check that `decode_record` and a reader's identity and generation checks make
    together, without building objects: the fast path of a small GET. None says only that
    something is wrong; `decode_record` says what."""
    payload_length = int.from_bytes(identity[76:80], "little")
    end = HEADER_SIZE + payload_length
    if len(data) != end + FOOTER_SIZE or data[:IDENTITY_SIZE] != identity:
        return None
    generation = data[80:88]
    if not 1 <= int.from_bytes(generation, "little") <= max_generation:
        return None
    if data[120:124] != _ZERO4:  # flags
        return None
    if crc32c.crc32c(data[:124]) != int.from_bytes(data[124:128], "little"):
        return None
    foot = data[end:]
    if (
        foot[:8] != FOOTER_MAGIC
        or foot[8:12] != identity[76:80]  # payload length
        or foot[12:16] != identity[68:72]  # block index
        or foot[16:24] != generation
        or foot[56:60] != _ZERO4
    ):
        return None
    crc = crc32c.crc32c(foot[:60], crc32c.crc32c(data[:end]))
    if crc != int.from_bytes(foot[60:64], "little"):
        return None
    return data[HEADER_SIZE:end], bytes(data[88:120])
