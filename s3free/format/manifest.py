"""The object manifest: what an object is and where its shards live.

Encoding (little-endian envelope around canonical JSON):

    off  size field
      0     8 magic        b"BeeXLmf\\0"
      8     2 version      1
     10     2 reserved     0
     12     4 body_length  N
     16     N body         UTF-8 JSON, keys sorted, no spaces (json.dumps(sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False))
   16+N     4 crc          CRC32C of bytes 0 .. 16+N-1

An inline manifest (`"inline": true`, small single-block objects) is followed in its file by the
shard records of part 1 for the disk it is on: `decode_file` splits the two. The index keeps
only the envelope.

Decoding is strict: unknown version, unknown or missing field, wrong type, value out of range,
inconsistent sizes, or a body that is not in canonical form are all FormatError.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field

import crc32c

from s3free.format.errors import FormatError
from s3free.format.header import CODEC_ZFEC_RS, MAX_BLOCK_LENGTH, MAX_PART_NUMBER
from s3free.format.ids import version_hex

MANIFEST_MAGIC = b"BeeXLmf\x00"
MANIFEST_VERSION = 1
MAX_MANIFEST_BODY = 16 * 1024 * 1024
_ENVELOPE = struct.Struct("<8sHHI")

HASH_ALGO = "blake3"
CHECKSUM_ALGO = "crc32c"

# Object tags (spec 8.3): S3's limits, which the decoder also enforces.
MAX_TAGS = 10
MAX_TAG_KEY = 128  # Unicode characters
MAX_TAG_VALUE = 256

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def blocks_for(size: int, block_size: int) -> int:
    """Blocks a part of `size` bytes takes; an empty part still has one (empty) block so that
    every part, even an empty object, leaves self-describing shards on disk."""
    return max(1, -(-size // block_size))


@dataclass(frozen=True, slots=True)
class PartEntry:
    number: int
    size: int
    etag: str
    blocks: int
    merkle_root: str

    def to_json(self) -> dict:
        return {
            "blocks": self.blocks,
            "etag": self.etag,
            "merkle_root": self.merkle_root,
            "number": self.number,
            "size": self.size,
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    bucket: str
    key: str
    object_id: str
    version_id: str
    size: int
    etag: str
    last_modified_ms: int
    content_type: str
    parts: tuple[PartEntry, ...]
    k: int
    m: int
    block_size: int
    placement: tuple[str, ...]
    generation: int
    merkle_root: str
    user_metadata: dict[str, str] = field(default_factory=dict)
    http_headers: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    codec_id: int = CODEC_ZFEC_RS
    inline: bool = False
    # The object's tags (S3 object tagging), key -> value; encoded sorted by key, absent
    # when empty so manifests of untagged objects are unchanged.
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def version_hex(self) -> str:
        """The version id as the 32 hex digits that name the version's files on disk."""
        return version_hex(self.version_id)

    # -- encoding --------------------------------------------------------------------------

    def to_json(self) -> dict:
        out = {
            "bucket": self.bucket,
            "checksum_algo": CHECKSUM_ALGO,
            "checksums": dict(self.checksums),
            "content_type": self.content_type,
            "ec": {"block_size": self.block_size, "codec": self.codec_id, "k": self.k, "m": self.m},
            "etag": self.etag,
            "generation": self.generation,
            "hash_algo": HASH_ALGO,
            "http_headers": dict(self.http_headers),
            "key": self.key,
            "last_modified_ms": self.last_modified_ms,
            "merkle_root": self.merkle_root,
            "object_id": self.object_id,
            "parts": [p.to_json() for p in self.parts],
            "placement": list(self.placement),
            "size": self.size,
            "user_metadata": dict(self.user_metadata),
            "version_id": self.version_id,
        }
        if self.inline:  # absent when false, so manifests of ordinary objects are unchanged
            out["inline"] = True
        if self.tags:  # absent when empty, like inline
            out["tags"] = dict(self.tags)
        return out

    def encode(self) -> bytes:
        self.validate()
        body = _canonical(self.to_json())
        if len(body) > MAX_MANIFEST_BODY:
            raise FormatError(f"manifest body of {len(body)} bytes is over the limit")
        head = _ENVELOPE.pack(MANIFEST_MAGIC, MANIFEST_VERSION, 0, len(body))
        blob = head + body
        return blob + crc32c.crc32c(blob).to_bytes(4, "little")

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Manifest:
        """One manifest envelope, nothing before or after it."""
        return cls._decode_envelope(bytes(data))

    @classmethod
    def decode_file(cls, data: bytes | memoryview) -> tuple[Manifest, memoryview]:
        """A manifest file: the envelope and, for an inline manifest, the shard records that
        follow it (empty otherwise; trailing bytes after an ordinary manifest are refused)."""
        view = memoryview(data)
        end = envelope_length(view)
        manifest = cls._decode_envelope(bytes(view[:end]))
        tail = view[end:]
        if tail.nbytes and not manifest.inline:
            raise FormatError("manifest length does not match its envelope")
        if manifest.inline and not tail.nbytes:
            raise FormatError("inline manifest without its shard records")
        return manifest, tail

    @classmethod
    def _decode_envelope(cls, raw: bytes) -> Manifest:
        if len(raw) < _ENVELOPE.size + 4:
            raise FormatError("manifest truncated")
        magic, version, reserved, body_length = _ENVELOPE.unpack(raw[: _ENVELOPE.size])
        if magic != MANIFEST_MAGIC:
            raise FormatError("bad manifest magic")
        if version != MANIFEST_VERSION:
            raise FormatError(f"unsupported manifest version {version}")
        if reserved != 0:
            raise FormatError("manifest reserved field is not zero")
        if body_length > MAX_MANIFEST_BODY or len(raw) != _ENVELOPE.size + body_length + 4:
            raise FormatError("manifest length does not match its envelope")
        end = _ENVELOPE.size + body_length
        if crc32c.crc32c(raw[:end]) != int.from_bytes(raw[end:], "little"):
            raise FormatError("manifest CRC32C mismatch")
        body = raw[_ENVELOPE.size : end]
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FormatError(f"manifest body is not JSON: {exc}") from None
        manifest = cls.from_json(obj)
        if _canonical(manifest.to_json()) != body:
            raise FormatError("manifest body is not in canonical form")
        return manifest

    @classmethod
    def from_json(cls, obj: object) -> Manifest:
        d = _Fields(obj, "manifest")
        ec = _Fields(d.take("ec", dict), "ec")
        parts_raw = d.take("parts", list)
        parts = []
        for i, p in enumerate(parts_raw):
            pf = _Fields(p, f"parts[{i}]")
            parts.append(
                PartEntry(
                    number=pf.take("number", int),
                    size=pf.take("size", int),
                    etag=pf.take("etag", str),
                    blocks=pf.take("blocks", int),
                    merkle_root=pf.take("merkle_root", str),
                )
            )
            pf.done()
        if d.take("hash_algo", str) != HASH_ALGO:
            raise FormatError("unknown manifest hash algorithm")
        if d.take("checksum_algo", str) != CHECKSUM_ALGO:
            raise FormatError("unknown manifest checksum algorithm")
        manifest = cls(
            bucket=d.take("bucket", str),
            key=d.take("key", str),
            object_id=d.take("object_id", str),
            version_id=d.take("version_id", str),
            size=d.take("size", int),
            etag=d.take("etag", str),
            last_modified_ms=d.take("last_modified_ms", int),
            content_type=d.take("content_type", str),
            parts=tuple(parts),
            k=ec.take("k", int),
            m=ec.take("m", int),
            block_size=ec.take("block_size", int),
            placement=tuple(d.take("placement", list)),
            generation=d.take("generation", int),
            merkle_root=d.take("merkle_root", str),
            user_metadata=d.take("user_metadata", dict),
            http_headers=d.take("http_headers", dict),
            checksums=d.take("checksums", dict),
            codec_id=ec.take("codec", int),
            inline=d.take_optional("inline", bool, False),
            tags=d.take_optional("tags", dict, {}),
        )
        ec.done()
        d.done()
        manifest.validate()
        return manifest

    # -- invariants --------------------------------------------------------------------------

    def validate(self) -> None:
        if self.codec_id != CODEC_ZFEC_RS:
            raise FormatError(f"unknown codec id {self.codec_id}")
        if not (1 <= self.k <= 255 and 1 <= self.m <= 255 and self.k + self.m <= 256):
            raise FormatError("k/m out of range")
        if not 1 <= self.block_size <= MAX_BLOCK_LENGTH:
            raise FormatError("block size out of range")
        if not isinstance(self.bucket, str) or not _utf8_ok(self.bucket):
            raise FormatError("bucket name must be valid UTF-8")
        if not 3 <= len(self.bucket) <= 63:
            raise FormatError("bucket name length out of range")
        if not _utf8_ok(self.key) or not 1 <= len(self.key.encode("utf-8")) <= 1024:
            raise FormatError("key must be 1..1024 bytes of UTF-8")
        if not _HEX32.fullmatch(self.object_id):
            raise FormatError("object id must be 32 lowercase hex digits")
        if not _UUID.fullmatch(self.version_id):
            raise FormatError("version id must be a canonical UUIDv7")
        if not _HEX64.fullmatch(self.merkle_root):
            raise FormatError("merkle root must be 64 lowercase hex digits")
        if not 0 <= self.size < 2**63:
            raise FormatError("size out of range")
        if not 0 <= self.last_modified_ms < 2**63:
            raise FormatError("last modified out of range")
        if not 1 <= self.generation < 2**63:
            raise FormatError("generation out of range")
        if len(self.placement) != self.k + self.m or not all(
            isinstance(p, str) and _HEX32.fullmatch(p) for p in self.placement
        ):
            raise FormatError("placement must list k+m disk ids")
        if len(set(self.placement)) != len(self.placement):
            raise FormatError("placement must name k+m distinct disks")
        if not self.parts or len(self.parts) > MAX_PART_NUMBER:
            raise FormatError("an object has 1..10000 parts")
        previous = 0
        total = 0
        for part in self.parts:
            if not previous < part.number <= MAX_PART_NUMBER:
                raise FormatError("part numbers must be increasing within 1..10000")
            previous = part.number
            if part.size < 0 or part.blocks != blocks_for(part.size, self.block_size):
                raise FormatError(f"part {part.number}: block count does not match its size")
            if not _HEX64.fullmatch(part.merkle_root):
                raise FormatError(f"part {part.number}: merkle root must be 64 hex digits")
            total += part.size
        if total != self.size:
            raise FormatError("part sizes do not add up to the object size")
        for name in ("user_metadata", "http_headers", "checksums"):
            mapping = getattr(self, name)
            if not isinstance(mapping, dict) or not all(
                isinstance(a, str) and isinstance(b, str) and _utf8_ok(a) and _utf8_ok(b)
                for a, b in mapping.items()
            ):
                raise FormatError(f"{name} must map strings to strings")
        check_tags(self.tags, MAX_TAGS)
        if self.inline is not False and (
            self.inline is not True or len(self.parts) != 1 or self.parts[0].blocks != 1
        ):
            raise FormatError("an inline manifest has exactly one part of one block")
        for text in (self.etag, self.content_type, *(p.etag for p in self.parts)):
            if not isinstance(text, str) or not _utf8_ok(text):
                raise FormatError("text fields must be valid UTF-8 strings")


def check_tags(tags: object, limit: int) -> None:
    """FormatError unless tags maps at most `limit` keys of 1..128 characters to values of
    0..256 characters, all valid UTF-8 (spec 8.3; bucket records use the same rule, 11.6)."""
    if not isinstance(tags, dict):
        raise FormatError("tags must map strings to strings")
    if len(tags) > limit:
        raise FormatError(f"at most {limit} tags, found {len(tags)}")
    for key, value in tags.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise FormatError("tags must map strings to strings")
        if not (_utf8_ok(key) and _utf8_ok(value)):
            raise FormatError("tags must be valid UTF-8 strings")
        if not 1 <= len(key) <= MAX_TAG_KEY:
            raise FormatError(f"a tag key has 1..{MAX_TAG_KEY} characters")
        if len(value) > MAX_TAG_VALUE:
            raise FormatError(f"a tag value has 0..{MAX_TAG_VALUE} characters")


def envelope_length(data: bytes | memoryview) -> int:
    """Bytes the manifest envelope at the start of data takes (header, body, CRC), from its
    header alone; the magic and the rest are checked by decoding."""
    if len(data) < _ENVELOPE.size + 4:
        raise FormatError("manifest truncated")
    if bytes(data[:8]) != MANIFEST_MAGIC:
        raise FormatError("bad manifest magic")
    (body_length,) = struct.unpack_from("<I", data, 12)
    if body_length > MAX_MANIFEST_BODY:
        raise FormatError("manifest length does not match its envelope")
    end = _ENVELOPE.size + body_length + 4
    if len(data) < end:
        raise FormatError("manifest length does not match its envelope")
    return end


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _Fields:
    """Takes typed fields out of a JSON object and refuses leftovers (strict decoding)."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise FormatError(f"{where} must be an object")
        self._left = dict(obj)
        self._where = where

    def take(self, name: str, kind: type):
        if name not in self._left:
            raise FormatError(f"{self._where}: missing field {name!r}")
        value = self._left.pop(name)
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise FormatError(f"{self._where}.{name} must be an integer")
        if not isinstance(value, kind):
            raise FormatError(f"{self._where}.{name} must be {kind.__name__}")
        return value

    def take_optional(self, name: str, kind: type, default):
        """A field that is absent when it has its default (so it must not be present with it)."""
        if name not in self._left:
            return default
        value = self.take(name, kind)
        if value == default:
            raise FormatError(f"{self._where}.{name} is present with its default value")
        return value

    def done(self) -> None:
        if self._left:
            raise FormatError(f"{self._where}: unknown fields {sorted(self._left)}")
