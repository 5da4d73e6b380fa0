"""Fuzzers for the BeeXL v1 decoders (s3free/format/).

The contract under test (format/errors.py): a decoder given any bytes returns a value or raises
FormatError, and nothing else (no IndexError, struct.error, UnicodeError, KeyError, TypeError,
RecursionError, OverflowError...). Decoders accept only canonical encodings, so whatever a
header, footer, record or manifest decoder returns must encode back to exactly the input bytes,
and must satisfy the documented invariants, checked here with this file's own rules rather
than the decoder's.

Inputs are raw random bytes and structure-aware mutations of valid encodings: bit flips,
byte overwrites, truncations, insertions, splices of two encodings, field-level rewrites with
the checksum fixed up (so the range checks behind the CRC are reached), and, for the JSON
formats, mutated JSON trees (wrong types, huge ints, surrogates, nested junk, missing, extra
and duplicated fields, non-canonical spacing and order) inside a valid envelope with a correct
CRC, so the strict JSON validation is what is exercised.

Budget: the CI profile runs a few hundred examples per target in seconds; see fuzz/README.md
for long runs (FUZZ_EXAMPLES=200000 or HYPOTHESIS_PROFILE=long).
"""

from __future__ import annotations

import copy
import json
import os
import re
import struct

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3free.format.diskformat import DiskFormat
from s3free.format.errors import FormatError
from s3free.format.footer import FOOTER_MAGIC, FOOTER_SIZE, ShardFooter
from s3free.format.header import HEADER_MAGIC, HEADER_SIZE, ShardHeader
from s3free.format.manifest import MANIFEST_MAGIC, Manifest, PartEntry
from s3free.format.record import decode_record, encode_record, leaf_hash
from tests.support.strategies import hex_text, manifests, small_km, uuid7_bytes

# -- budget ------------------------------------------------------------------------------------


def _budget() -> int:
    env = os.environ.get("FUZZ_EXAMPLES")
    if env:
        return int(env)
    # The decoders take microseconds: three times the profile's budget stays within seconds.
    return settings.default.max_examples * 3


FUZZ = settings(
    max_examples=_budget(),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

# -- the spec, restated independently of the decoders ------------------------------------------

MAX_BLOCK = 64 * 1024 * 1024  # specs: block_length <= 64 MiB
MAX_PARTS = 10000
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX64 = re.compile(r"[0-9a-f]{64}")
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")

# (offset, width) of every header field before the CRC (header.py's layout table)
HEADER_FIELDS = [
    (0, 8),
    (8, 2),
    (10, 2),
    (12, 1),
    (13, 1),
    (14, 1),
    (15, 1),
    (16, 16),
    (32, 16),
    (48, 16),
    (64, 4),
    (68, 4),
    (72, 4),
    (76, 4),
    (80, 8),
    (88, 32),
    (120, 4),
]
FOOTER_FIELDS = [(0, 8), (8, 4), (12, 4), (16, 8), (24, 32), (56, 4)]
MANIFEST_ENVELOPE = struct.Struct("<8sHHI")
MANIFEST_ENVELOPE_FIELDS = [(0, 8), (8, 2), (10, 2), (12, 4)]

MANIFEST_FIELDS = [
    "bucket",
    "checksum_algo",
    "checksums",
    "content_type",
    "ec",
    "etag",
    "generation",
    "hash_algo",
    "http_headers",
    "key",
    "last_modified_ms",
    "merkle_root",
    "object_id",
    "parts",
    "placement",
    "size",
    "tags",
    "user_metadata",
    "version_id",
]
DISK_FORMAT_FIELDS = [
    "block_size",
    "disk_id",
    "disks",
    "format",
    "k",
    "m",
    "position",
    "set_id",
    "version",
]


def _crc(data: bytes) -> bytes:
    return crc32c.crc32c(data).to_bytes(4, "little")


def fix_header_crc(data: bytes) -> bytes:
    """Recompute the header CRC so a mutated header gets past the checksum to the field checks."""
    if len(data) < HEADER_SIZE:
        return data
    return data[:124] + _crc(data[:124]) + data[HEADER_SIZE:]


def fix_record_crc(data: bytes) -> bytes:
    """Recompute both CRCs of a record (header CRC, then the record CRC over all but the last
    four bytes)."""
    data = fix_header_crc(data)
    if len(data) < HEADER_SIZE + FOOTER_SIZE:
        return data
    return data[:-4] + _crc(data[:-4])


def manifest_envelope(body: bytes, *, version: int = 1, reserved: int = 0) -> bytes:
    blob = MANIFEST_ENVELOPE.pack(MANIFEST_MAGIC, version, reserved, len(body)) + body
    return blob + _crc(blob)


def fix_manifest_crc(data: bytes) -> bytes:
    if len(data) < 4:
        return data
    return data[:-4] + _crc(data[:-4])


# -- generic byte-level mutations ---------------------------------------------------------------


@st.composite
def byte_mutations(draw, data: bytes, other: bytes = b"") -> bytes:
    """1-4 random edits: bit flip, byte overwrite, truncation, extension, deletion, insertion,
    or a splice with `other` (another valid encoding)."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(
            st.sampled_from(["flip", "byte", "truncate", "extend", "delete", "insert", "splice"])
        )
        if op == "flip" and buf:
            bit = draw(st.integers(0, len(buf) * 8 - 1))
            buf[bit // 8] ^= 1 << (bit % 8)
        elif op == "byte" and buf:
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del buf[draw(st.integers(0, len(buf))) :]
        elif op == "extend":
            buf += draw(st.binary(min_size=1, max_size=64))
        elif op == "delete" and buf:
            i = draw(st.integers(0, len(buf) - 1))
            del buf[i : draw(st.integers(i + 1, min(len(buf), i + 64)))]
        elif op == "insert":
            i = draw(st.integers(0, len(buf)))
            buf[i:i] = draw(st.binary(min_size=1, max_size=32))
        elif op == "splice" and other:
            i = draw(st.integers(0, len(buf)))
            buf = buf[:i] + bytearray(other[draw(st.integers(0, len(other))) :])
    return bytes(buf)


@st.composite
def field_mutations(draw, data: bytes, fields: list[tuple[int, int]], base: int = 0) -> bytes:
    """Rewrite 1-3 whole fields with boundary or random values (the caller fixes the CRC)."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        offset, width = draw(st.sampled_from(fields))
        offset += base
        if offset + width > len(buf):
            continue
        if width <= 8:
            top = (1 << (8 * width)) - 1
            value = draw(
                st.one_of(
                    st.sampled_from(
                        [0, 1, 2, 255, 256, 10000, 10001, top, top - 1, 1 << (8 * width - 1)]
                    ),
                    st.integers(0, top),
                )
            )
            buf[offset : offset + width] = (value & top).to_bytes(width, "little")
        else:
            buf[offset : offset + width] = draw(
                st.one_of(st.binary(min_size=width, max_size=width), st.just(bytes(width)))
            )
    return bytes(buf)


# -- valid values -------------------------------------------------------------------------------


@st.composite
def headers(draw, max_block: int = MAX_BLOCK) -> ShardHeader:
    k, m = draw(small_km())
    block_length = draw(st.one_of(st.integers(0, min(max_block, 4096)), st.integers(0, max_block)))
    return ShardHeader(
        codec_id=1,
        k=k,
        m=m,
        shard_index=draw(st.integers(0, k + m - 1)),
        object_id=draw(st.binary(min_size=16, max_size=16)),
        bucket_hash=draw(st.binary(min_size=16, max_size=16)),
        version_id=draw(uuid7_bytes()),
        part_number=draw(st.integers(1, MAX_PARTS)),
        block_index=draw(st.integers(0, 2**32 - 1)),
        block_length=block_length,
        payload_length=-(-block_length // k),
        generation=draw(st.integers(1, 2**64 - 1)),
        content_hash=draw(st.binary(min_size=32, max_size=32)),
    )


@st.composite
def records(draw) -> bytes:
    header = draw(headers(max_block=2048))
    payload = draw(st.binary(min_size=header.payload_length, max_size=header.payload_length))
    return encode_record(header, payload)


@st.composite
def footers(draw) -> bytes:
    fields = ShardFooter(
        payload_length=draw(st.integers(0, 2**32 - 1)),
        block_index=draw(st.integers(0, 2**32 - 1)),
        generation=draw(st.integers(0, 2**64 - 1)),
        merkle_leaf=draw(st.binary(min_size=32, max_size=32)),
    ).encode_fields()
    return fields + draw(st.binary(min_size=4, max_size=4))


@st.composite
def disk_formats(draw) -> DiskFormat:
    disks = draw(st.lists(hex_text(32), min_size=2, max_size=12, unique=True))
    k = draw(st.integers(1, len(disks) - 1))
    return DiskFormat(
        set_id=draw(hex_text(32)),
        disk_id=disks[(position := draw(st.integers(0, len(disks) - 1)))],
        position=position,
        disks=tuple(disks),
        k=k,
        m=draw(st.integers(1, len(disks) - k)),
        block_size=draw(st.integers(1, MAX_BLOCK)),
    )


# -- JSON tree mutations ------------------------------------------------------------------------

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
SUFFIXES = [
    "\n",
    " ",
    "\t",
    "\r",
    "\x00",
    "\ud800",
    "\udfff",
    "A",
    "F",
    "é",
    "\u2028",
    "0",
    "-",
    "\ufeff",
]
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**16), 2**16),
    st.integers(-(2**80), 2**80),
    st.sampled_from(
        [0, 1, -1, 255, 256, 257, 10000, 10001, 2**32, 2**63 - 1, 2**63, 2**64, 2**64 - 1]
    ),
    st.floats(),
    st.text(max_size=20),
    st.text(alphabet=surrogates, min_size=1, max_size=3),
    hex_text(32),
    hex_text(64),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _mutate_here(draw, node, field_names: list[str]):
    """One edit of this node, chosen for its type."""
    if isinstance(node, dict) and node and draw(st.booleans()):
        op = draw(st.sampled_from(["drop", "add", "rename"]))
        key = draw(st.sampled_from(sorted(node)))
        if op == "drop":
            del node[key]
        elif op == "add":
            name = draw(st.one_of(st.sampled_from(field_names), st.text(max_size=8)))
            node[name] = draw(json_values)
        else:
            node[draw(st.sampled_from([key.upper(), key + " ", " " + key, key[:-1]]))] = node.pop(
                key
            )
        return node
    if isinstance(node, list) and node and draw(st.booleans()):
        op = draw(st.sampled_from(["drop", "dup", "append", "reverse", "empty", "wrap"]))
        i = draw(st.integers(0, len(node) - 1))
        if op == "drop":
            del node[i]
        elif op == "dup":
            node.insert(i, copy.deepcopy(node[i]))
        elif op == "append":
            node.append(draw(json_values))
        elif op == "reverse":
            node.reverse()
        elif op == "empty":
            node.clear()
        else:
            node[i] = [node[i]]
        return node
    if isinstance(node, str) and draw(st.integers(0, 3)) > 0:
        op = draw(
            st.sampled_from(["suffix"] * 3 + ["prefix", "upper", "cut", "surrogate", "number"])
        )
        if op == "suffix":
            return node + draw(
                st.sampled_from(SUFFIXES) if draw(st.booleans()) else st.text(max_size=3)
            )
        if op == "prefix":
            return draw(st.sampled_from(SUFFIXES)) + node
        if op == "upper":
            return node.upper()
        if op == "cut":
            return node[: draw(st.integers(0, max(0, len(node) - 1)))]
        if op == "surrogate":
            i = draw(st.integers(0, len(node)))
            return node[:i] + draw(surrogates) + node[i:]
        return int(node, 16) if node and all(c in "0123456789abcdef" for c in node) else 0
    if isinstance(node, int) and not isinstance(node, bool) and draw(st.booleans()):
        op = draw(st.sampled_from(["+1", "-1", "neg", "big", "float", "bool", "str", "zero"]))
        return {
            "+1": lambda: node + 1,
            "-1": lambda: node - 1,
            "neg": lambda: -node,
            "big": lambda: node + 2 ** draw(st.integers(31, 70)),
            "float": lambda: float(node),
            "bool": lambda: bool(node),
            "str": lambda: str(node),
            "zero": lambda: 0,
        }[op]()
    return draw(json_values)


def _mutate(draw, node, field_names: list[str], depth: int = 0):
    """Walk down a random path and edit one node on it."""
    if isinstance(node, dict | list) and node and depth < 6 and draw(st.integers(0, 3)) > 0:
        if isinstance(node, dict):
            key = draw(st.sampled_from(sorted(node)))
            node[key] = _mutate(draw, node[key], field_names, depth + 1)
        else:
            i = draw(st.integers(0, len(node) - 1))
            node[i] = _mutate(draw, node[i], field_names, depth + 1)
        return node
    return _mutate_here(draw, node, field_names)


def _serialize(draw, obj) -> bytes:
    """The JSON text of obj in one of several styles, canonical or not, as UTF-8 (lone
    surrogates pass through as the invalid UTF-8 a careless writer would produce)."""
    # "ascii" is canonical too when the text is pure ASCII, and is how a lone surrogate gets
    # past the UTF-8 decoding (as a \ud800 escape) into the field checks.
    style = draw(
        st.sampled_from(
            ["canonical"] * 3 + ["ascii"] * 3 + ["spaced", "indent", "shuffled", "dupkey", "bignum"]
        )
    )
    canonical = dict(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if style == "ascii":
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    elif style == "spaced":
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False)
    elif style == "indent":
        text = json.dumps(obj, sort_keys=True, indent=draw(st.integers(0, 2)), ensure_ascii=False)
    elif style == "shuffled" and isinstance(obj, dict):
        items = draw(st.permutations(list(obj.items())))
        text = json.dumps(dict(items), separators=(",", ":"), ensure_ascii=False)
    else:
        text = json.dumps(obj, **canonical)
        if style == "dupkey" and text.startswith("{") and len(text) > 2:
            name = draw(st.sampled_from(sorted(obj))) if obj else "x"
            text = "{" + json.dumps(name) + ":" + json.dumps(draw(json_leaves)) + "," + text[1:]
        elif style == "bignum":
            # An integer past Python's int-string limit (ValueError inside json.loads).
            text = re.sub(
                r"\d+", "9" * draw(st.sampled_from([20, 4300, 4301, 10000])), text, count=1
            )
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated_json(draw, obj, field_names: list[str]) -> bytes:
    tree = copy.deepcopy(obj)
    for _ in range(draw(st.integers(1, 3))):
        tree = _mutate(draw, tree, field_names)
    return _serialize(draw, tree)


@st.composite
def deep_nesting(draw) -> bytes:
    depth = draw(st.sampled_from([10, 500, 990, 1000, 1100, 5000, 100_000]))
    kind = draw(st.sampled_from(["list", "dict"]))
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"0" + b"}" * depth


# -- checks -------------------------------------------------------------------------------------


def check_header(data: bytes) -> ShardHeader | None:
    try:
        header = ShardHeader.decode(data)
    except FormatError:
        return None
    assert ShardHeader.decode(memoryview(data)) == header
    assert header.encode() == bytes(data[:HEADER_SIZE]), "accepted a non-canonical header"
    # the spec's ranges, restated
    assert header.codec_id == 1
    assert 1 <= header.k <= 255 and 1 <= header.m <= 255 and header.k + header.m <= 256
    assert 0 <= header.shard_index < header.k + header.m
    assert header.version_id[6] >> 4 == 7 and header.version_id[8] >> 6 == 0b10
    assert 1 <= header.part_number <= MAX_PARTS
    assert 0 <= header.block_length <= MAX_BLOCK
    assert (
        header.payload_length * header.k
        >= header.block_length
        > (header.payload_length - 1) * header.k
    )
    assert header.generation >= 1
    return header


def check_footer(data: bytes) -> ShardFooter | None:
    try:
        footer = ShardFooter.decode_fields(data)
    except FormatError:
        return None
    assert len(data) == FOOTER_SIZE
    assert footer.encode_fields() == bytes(data[:60]), "accepted a non-canonical footer"
    assert len(footer.merkle_leaf) == 32
    return footer


def check_record(data: bytes, verify_leaf: bool):
    try:
        record = decode_record(data, verify_leaf=verify_leaf)
    except FormatError:
        return None
    n = record.header.payload_length
    assert len(data) == HEADER_SIZE + n + FOOTER_SIZE
    assert record.header.encode() == data[:HEADER_SIZE]
    assert bytes(record.payload) == data[HEADER_SIZE : HEADER_SIZE + n]
    foot = data[HEADER_SIZE + n :]
    assert record.footer.encode_fields() == foot[:60]
    assert (record.footer.payload_length, record.footer.block_index, record.footer.generation) == (
        n,
        record.header.block_index,
        record.header.generation,
    )
    assert foot[60:] == _crc(data[:-4]), "accepted a record whose CRC32C does not match"
    if verify_leaf:
        assert leaf_hash(record.payload) == record.footer.merkle_leaf
        assert encode_record(record.header, record.payload) == data
    return record


def check_manifest(data: bytes) -> Manifest | None:
    try:
        manifest = Manifest.decode(data)
    except FormatError:
        return None
    assert manifest.encode() == data, "accepted a non-canonical manifest"
    # the spec's invariants, restated with this file's own (anchored) patterns
    assert HEX32.fullmatch(manifest.object_id), f"object id {manifest.object_id!r}"
    assert UUID7.fullmatch(manifest.version_id), f"version id {manifest.version_id!r}"
    assert HEX64.fullmatch(manifest.merkle_root), f"merkle root {manifest.merkle_root!r}"
    assert len(manifest.placement) == manifest.k + manifest.m
    assert all(HEX32.fullmatch(p) for p in manifest.placement), f"placement {manifest.placement!r}"
    assert len(set(manifest.placement)) == len(manifest.placement)
    assert 3 <= len(manifest.bucket) <= 63
    assert 1 <= len(manifest.key.encode("utf-8")) <= 1024
    for name in ("size", "last_modified_ms", "generation", "k", "m", "block_size", "codec_id"):
        assert type(getattr(manifest, name)) is int, name
    assert 1 <= manifest.block_size <= MAX_BLOCK
    assert 1 <= len(manifest.parts) <= MAX_PARTS
    numbers = [p.number for p in manifest.parts]
    assert numbers == sorted(set(numbers)) and numbers[0] >= 1 and numbers[-1] <= MAX_PARTS
    for part in manifest.parts:
        assert type(part.size) is int and type(part.blocks) is int
        assert part.blocks == max(1, -(-part.size // manifest.block_size))
        assert HEX64.fullmatch(part.merkle_root), f"part merkle root {part.merkle_root!r}"
    assert sum(p.size for p in manifest.parts) == manifest.size
    # tags (spec 8.3): at most 10, keys 1..128 and values 0..256 code points, all strings
    assert type(manifest.tags) is dict and len(manifest.tags) <= 10
    for key, value in manifest.tags.items():
        assert type(key) is str and type(value) is str
        assert 1 <= len(key) <= 128 and len(value) <= 256, (key, value)
    return manifest


def check_disk_format(data: bytes) -> DiskFormat | None:
    try:
        fmt = DiskFormat.decode(data)
    except FormatError:
        return None
    obj = json.loads(data)
    assert sorted(obj) == DISK_FORMAT_FIELDS
    assert obj["format"] == "s3free-disk"
    assert type(obj["version"]) is int and obj["version"] == 1, f"version {obj['version']!r}"
    for name in ("position", "k", "m", "block_size"):
        assert type(getattr(fmt, name)) is int, name
    assert HEX32.fullmatch(fmt.set_id), f"set id {fmt.set_id!r}"
    assert HEX32.fullmatch(fmt.disk_id), f"disk id {fmt.disk_id!r}"
    assert all(isinstance(d, str) and HEX32.fullmatch(d) for d in fmt.disks), f"{fmt.disks!r}"
    assert len(set(fmt.disks)) == len(fmt.disks)
    assert fmt.disks[fmt.position] == fmt.disk_id
    assert fmt.k >= 1 and fmt.m >= 1 and fmt.k + fmt.m <= min(256, len(fmt.disks))
    assert 1 <= fmt.block_size <= MAX_BLOCK
    assert DiskFormat.decode(fmt.encode()) == fmt
    return fmt


# -- shard header -------------------------------------------------------------------------------


header_inputs = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=116, max_size=116).map(
        lambda b: fix_header_crc(HEADER_MAGIC + b + bytes(4))
    ),
    headers().map(ShardHeader.encode),
    st.tuples(headers(), headers()).flatmap(
        lambda hh: byte_mutations(hh[0].encode(), hh[1].encode())
    ),
    headers().flatmap(lambda h: field_mutations(h.encode(), HEADER_FIELDS)).map(fix_header_crc),
    headers().flatmap(lambda h: byte_mutations(h.encode())).map(fix_header_crc),
)


@FUZZ
@given(header_inputs)
def test_fuzz_shard_header(data):
    check_header(data)


@FUZZ
@given(headers(), st.data())
def test_header_valid_roundtrip_and_single_bit_flips(header, data):
    raw = header.encode()
    assert check_header(raw) == header
    assert check_header(raw + data.draw(st.binary(max_size=64))) == header  # decodes a prefix
    bit = data.draw(st.integers(0, HEADER_SIZE * 8 - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):
        ShardHeader.decode(bytes(flipped))  # CRC32C catches every single-bit error


# -- shard footer -------------------------------------------------------------------------------


footer_inputs = st.one_of(
    st.binary(max_size=130),
    st.binary(min_size=52, max_size=52).map(lambda b: FOOTER_MAGIC + b[:48] + bytes(4) + b[48:]),
    footers(),
    footers().flatmap(lambda f: byte_mutations(f)),
    footers().flatmap(lambda f: field_mutations(f, FOOTER_FIELDS)),
)


@FUZZ
@given(footer_inputs)
def test_fuzz_shard_footer(data):
    check_footer(data)


# -- shard record -------------------------------------------------------------------------------


@st.composite
def record_inputs(draw) -> bytes:
    kind = draw(
        st.sampled_from(
            ["raw", "valid", "bytes", "header-field", "footer-field", "payload", "splice"]
        )
    )
    if kind == "raw":
        return draw(st.binary(max_size=600))
    rec = draw(records())
    n = len(rec) - HEADER_SIZE - FOOTER_SIZE
    if kind == "valid":
        return rec
    if kind == "bytes":
        out = draw(byte_mutations(rec))
    elif kind == "header-field":
        out = draw(field_mutations(rec, HEADER_FIELDS))
    elif kind == "footer-field":
        out = draw(field_mutations(rec, FOOTER_FIELDS, base=HEADER_SIZE + n))
    elif kind == "payload" and n:
        out = draw(byte_mutations(rec[HEADER_SIZE : HEADER_SIZE + n]))
        out = rec[:HEADER_SIZE] + out + rec[HEADER_SIZE + n :]
    else:
        out = draw(byte_mutations(rec, draw(records())))
    fix = draw(st.sampled_from(["none", "header", "both"]))
    if fix == "header":
        return fix_header_crc(out)
    if fix == "both":
        return fix_record_crc(out)
    return out


@FUZZ
@given(record_inputs(), st.booleans())
def test_fuzz_record(data, verify_leaf):
    check_record(data, verify_leaf)
    check_record(bytearray(data), verify_leaf)


@FUZZ
@given(records(), st.data())
def test_record_single_bit_flips_and_resealed_payloads(rec, data):
    assert check_record(rec, verify_leaf=True) is not None
    bit = data.draw(st.integers(0, len(rec) * 8 - 1))
    flipped = bytearray(rec)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):
        decode_record(bytes(flipped))
    n = len(rec) - HEADER_SIZE - FOOTER_SIZE
    if n:
        # A payload changed and the CRC recomputed (a forger, or bitrot before the CRC was
        # computed) passes the CRC but not the BLAKE3 leaf.
        i = HEADER_SIZE + data.draw(st.integers(0, n - 1))
        forged = bytearray(rec)
        forged[i] ^= 1 << data.draw(st.integers(0, 7))
        forged = fix_record_crc(bytes(forged))
        assert bytes(decode_record(forged).payload) == forged[HEADER_SIZE : HEADER_SIZE + n]
        with pytest.raises(FormatError):
            decode_record(forged, verify_leaf=True)


# -- manifest -----------------------------------------------------------------------------------


@st.composite
def manifest_inputs(draw) -> bytes:
    kind = draw(
        st.sampled_from(
            [
                "raw",
                "random-body",
                "random-json",
                "field-soup",
                "valid",
                "bytes",
                "envelope",
                "body-bytes",
            ]
            + ["json"] * 10
            + ["deep"]
        )
    )
    if kind == "raw":
        return draw(st.binary(max_size=400))
    if kind == "random-body":
        return manifest_envelope(draw(st.binary(max_size=300)))
    if kind == "random-json":
        return manifest_envelope(_serialize(draw, draw(json_values)))
    if kind == "field-soup":
        obj = draw(st.fixed_dictionaries({name: json_values for name in MANIFEST_FIELDS}))
        return manifest_envelope(_serialize(draw, obj))
    if kind == "deep":
        return manifest_envelope(draw(deep_nesting()))
    valid = draw(manifests())
    raw = valid.encode()
    if kind == "valid":
        return raw
    if kind == "bytes":
        return draw(byte_mutations(raw, draw(manifests()).encode()))
    if kind == "envelope":
        return fix_manifest_crc(draw(field_mutations(raw, MANIFEST_ENVELOPE_FIELDS)))
    if kind == "body-bytes":
        return manifest_envelope(draw(byte_mutations(raw[16:-4])))
    return manifest_envelope(draw(mutated_json(valid.to_json(), MANIFEST_FIELDS)))


@FUZZ
@given(manifest_inputs())
def test_fuzz_manifest(data):
    check_manifest(data)


@FUZZ
@given(manifests(), st.data())
def test_manifest_valid_roundtrip_and_single_bit_flips(manifest, data):
    raw = manifest.encode()
    assert check_manifest(raw) == manifest
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):
        Manifest.decode(bytes(flipped))


# -- format.json --------------------------------------------------------------------------------


def _disk_format_json(fmt: DiskFormat) -> dict:
    return json.loads(fmt.encode())


@st.composite
def disk_format_inputs(draw) -> bytes:
    kind = draw(
        st.sampled_from(
            ["raw", "text", "random-json", "field-soup", "valid", "bytes", "deep"] + ["json"] * 5
        )
    )
    if kind == "raw":
        return draw(st.binary(max_size=400))
    if kind == "text":
        return draw(st.text(max_size=100)).encode()
    if kind == "random-json":
        return _serialize(draw, draw(json_values))
    if kind == "field-soup":
        return _serialize(
            draw, draw(st.fixed_dictionaries({n: json_values for n in DISK_FORMAT_FIELDS}))
        )
    if kind == "deep":
        return draw(deep_nesting())
    raw = draw(disk_formats()).encode()
    if kind == "valid":
        return raw
    if kind == "bytes":
        return draw(byte_mutations(raw, draw(disk_formats()).encode()))
    return draw(mutated_json(json.loads(raw), DISK_FORMAT_FIELDS))


@FUZZ
@given(disk_format_inputs())
def test_fuzz_disk_format(data):
    check_disk_format(data)


@FUZZ
@given(disk_formats())
def test_disk_format_valid_roundtrip(fmt):
    assert check_disk_format(fmt.encode()) == fmt


# -- inputs the fuzzers found -------------------------------------------------------------------
# Each of these broke the contract when found; they stay as fixed regression cases.


def _valid_manifest_json() -> dict:
    return Manifest(
        bucket="bkt",
        key="k",
        object_id="0" * 32,
        version_id="01890000-0000-7000-8000-000000000000",
        size=0,
        etag="",
        last_modified_ms=1,
        content_type="",
        parts=(PartEntry(1, 0, "", 1, "0" * 64),),
        k=4,
        m=2,
        block_size=65536,
        placement=tuple(f"{i:032x}" for i in range(6)),
        generation=1,
        merkle_root="0" * 64,
    ).to_json()


def _manifest_with(field: str, value, *, ascii_only: bool = False) -> bytes:
    obj = _valid_manifest_json()
    obj[field] = value
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only)
    return manifest_envelope(text.encode("utf-8", "surrogatepass"))


def _disk_format_with(field: str, value) -> bytes:
    ids = [f"{i:032x}" for i in range(1, 4)]
    obj = _disk_format_json(DiskFormat("f" * 32, ids[0], 0, tuple(ids), 2, 1, 65536))
    obj[field] = value
    return json.dumps(obj, sort_keys=True, indent=2).encode()


FOUND_MANIFESTS = {
    # a bucket name holding a lone surrogate (JSON "\ud800" escape): UnicodeEncodeError
    "bucket-lone-surrogate": _manifest_with("bucket", "\ud800ab", ascii_only=True),
    # the anchored regexes use "$", which also matches before a final newline
    "object-id-newline": _manifest_with("object_id", "0" * 32 + "\n"),
    "version-id-newline": _manifest_with("version_id", "01890000-0000-7000-8000-000000000000\n"),
    "merkle-root-newline": _manifest_with("merkle_root", "0" * 64 + "\n"),
    "placement-newline": _manifest_with(
        "placement", [f"{i:032x}" for i in range(5)] + ["0" * 32 + "\n"]
    ),
}
FOUND_DISK_FORMATS = {
    "set-id-newline": _disk_format_with("set_id", "f" * 32 + "\n"),
    "version-true": _disk_format_with("version", True),
    "version-float": _disk_format_with("version", 1.0),
}


@pytest.mark.parametrize("name", sorted(FOUND_MANIFESTS))
def test_manifest_found_inputs(name):
    check_manifest(FOUND_MANIFESTS[name])


@pytest.mark.parametrize("name", sorted(FOUND_DISK_FORMATS))
def test_disk_format_found_inputs(name):
    check_disk_format(FOUND_DISK_FORMATS[name])
