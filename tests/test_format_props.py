"""Properties of the BeeXL v1 codecs: round trips for random valid values, and refusal (always
FormatError, never another exception, never a silently wrong value) of damaged bytes: every
single bit flip and every truncation of a record, every changed byte of a manifest, unknown
versions, flags, codecs and fields."""

from __future__ import annotations

import contextlib
import json
import struct
import uuid

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3free.format import (
    FOOTER_SIZE,
    HEADER_SIZE,
    RECORD_OVERHEAD,
    FormatError,
    Manifest,
    PartEntry,
    ShardFooter,
    ShardHeader,
    decode_record,
    encode_record,
)
from s3free.format.diskformat import DiskFormat
from s3free.format.header import MAX_BLOCK_LENGTH, MAX_PART_NUMBER, identity_prefix
from s3free.format.record import checked_payload, leaf_hash
from tests.support.strategies import manifests

# -- strategies ---------------------------------------------------------------------------------

b16 = st.binary(min_size=16, max_size=16)
b32 = st.binary(min_size=32, max_size=32)
hex32 = b16.map(bytes.hex)
hex64 = b32.map(bytes.hex)


def _as_v7(raw: bytes) -> bytes:
    """Set the UUIDv7 version and variant bits (RFC 9562) on 16 random bytes."""
    b = bytearray(raw)
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return bytes(b)


version_ids = b16.map(_as_v7)


@st.composite
def headers(draw, max_block: int = MAX_BLOCK_LENGTH) -> ShardHeader:
    k = draw(st.integers(1, 255))
    m = draw(st.integers(1, 256 - k))
    block_length = draw(st.integers(0, max_block))
    return ShardHeader(
        codec_id=1,
        k=k,
        m=m,
        shard_index=draw(st.integers(0, k + m - 1)),
        object_id=draw(b16),
        bucket_hash=draw(b16),
        version_id=draw(version_ids),
        part_number=draw(st.integers(1, MAX_PART_NUMBER)),
        block_index=draw(st.integers(0, 2**32 - 1)),
        block_length=block_length,
        payload_length=-(-block_length // k),
        generation=draw(st.integers(1, 2**64 - 1)),
        content_hash=draw(b32),
    )


@st.composite
def records(draw, max_block: int = 2048) -> tuple[ShardHeader, bytes]:
    header = draw(headers(max_block=max_block))
    payload = draw(st.binary(min_size=header.payload_length, max_size=header.payload_length))
    return header, payload


def _sample_header(**overrides) -> ShardHeader:
    fields = dict(
        codec_id=1,
        k=6,
        m=3,
        shard_index=4,
        object_id=bytes(range(16)),
        bucket_hash=bytes(range(16, 32)),
        version_id=_as_v7(bytes(range(32, 48))),
        part_number=1,
        block_index=2,
        block_length=30,
        payload_length=5,
        generation=1,
        content_hash=bytes(range(32)),
    )
    fields.update(overrides)
    return ShardHeader(**fields)


def _sample_manifest() -> Manifest:
    return Manifest(
        bucket="bucket-a",
        key="dir/ключ 🔑",
        object_id="0" * 31 + "1",
        version_id="01890a5d-ac96-774b-bcce-b302099a8057",
        size=70_000,
        etag="e" * 32 + "-2",
        last_modified_ms=1_700_000_000_000,
        content_type="text/plain",
        parts=(
            PartEntry(1, 65_536, "a" * 32, 1, "1" * 64),
            PartEntry(3, 4_464, "b" * 32, 1, "2" * 64),
        ),
        k=6,
        m=3,
        block_size=65_536,
        placement=tuple(f"{i:032x}" for i in range(9)),
        generation=2,
        merkle_root="3" * 64,
        user_metadata={"colour": "blau", "ü": "ß"},
        http_headers={"Cache-Control": "no-cache"},
        checksums={"CRC32C": "AAAAAA=="},
    )


_HEADER_LAYOUT = struct.Struct("<8sHHBBBB16s16s16sIIIIQ32sI")


def _raw_header(h: ShardHeader, **overrides) -> bytes:
    """Pack header fields without validating them, with a correct CRC: bytes that pass every
    integrity check, so only the decoder's range and version checks stand in the way."""
    f = dict(
        magic=b"BeeXLv1\x00",
        version=1,
        header_size=128,
        codec_id=h.codec_id,
        k=h.k,
        m=h.m,
        shard_index=h.shard_index,
        object_id=h.object_id,
        bucket_hash=h.bucket_hash,
        version_id=h.version_id,
        part_number=h.part_number,
        block_index=h.block_index,
        block_length=h.block_length,
        payload_length=h.payload_length,
        generation=h.generation,
        content_hash=h.content_hash,
        flags=0,
    )
    f.update(overrides)
    body = _HEADER_LAYOUT.pack(*f.values())
    return body + crc32c.crc32c(body).to_bytes(4, "little")


def _envelope(body: bytes, version: int = 1, reserved: int = 0) -> bytes:
    blob = struct.pack("<8sHHI", b"BeeXLmf\x00", version, reserved, len(body)) + body
    return blob + crc32c.crc32c(blob).to_bytes(4, "little")


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- header ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(headers())
def test_header_round_trip(header):
    raw = header.encode()
    assert len(raw) == HEADER_SIZE
    assert raw[:8] == b"BeeXLv1\x00"
    assert ShardHeader.decode(raw) == header
    # decode reads only the first 128 bytes of a longer buffer (a record)
    assert ShardHeader.decode(raw + b"tail") == header


@settings(max_examples=30, deadline=None)
@given(headers())
def test_header_every_bit_flip_is_refused(header):
    raw = header.encode()
    for bit in range(HEADER_SIZE * 8):
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            ShardHeader.decode(bytes(damaged))


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"version": 2}, "newer format version"),
        ({"version": 0}, "version 0"),
        ({"header_size": 256}, "other header size"),
        ({"flags": 1}, "unknown flag"),
        ({"flags": 0x80000000}, "unknown high flag"),
        ({"codec_id": 2}, "unknown codec"),
        ({"k": 0}, "k = 0"),
        ({"m": 0}, "m = 0"),
        ({"k": 200, "m": 57}, "k + m > 256"),
        ({"shard_index": 9}, "shard index >= k + m"),
        ({"part_number": 0}, "part 0"),
        ({"part_number": MAX_PART_NUMBER + 1}, "part > 10000"),
        (
            {
                "block_length": MAX_BLOCK_LENGTH + 1,
                "payload_length": -(-(MAX_BLOCK_LENGTH + 1) // 6),
            },
            "block too long",
        ),
        ({"payload_length": 6}, "payload length not ceil(block/k)"),
        ({"generation": 0}, "generation 0"),
        ({"version_id": bytes(16)}, "version id not a UUIDv7"),
        ({"magic": b"BeeXLv2\x00"}, "other magic"),
    ],
)
def test_header_with_valid_crc_but_bad_field_is_refused(override, why):
    raw = _raw_header(_sample_header(), **override)
    with pytest.raises(FormatError):
        ShardHeader.decode(raw)


def test_raw_header_helper_matches_the_encoder():
    """The helper above packs exactly what encode does, so the refusals are about the field."""
    header = _sample_header()
    assert _raw_header(header) == header.encode()


@settings(max_examples=100, deadline=None)
@given(headers(), st.integers(0, HEADER_SIZE - 1))
def test_header_truncation_is_refused(header, length):
    with pytest.raises(FormatError):
        ShardHeader.decode(header.encode()[:length])


def test_header_encode_refuses_invalid_values():
    for bad in (
        {"k": 0},
        {"shard_index": 9},
        {"payload_length": 4},
        {"object_id": bytes(15)},
        {"content_hash": bytes(31)},
        {"generation": 2**64},
        {"block_index": 2**32},
    ):
        with pytest.raises(FormatError):
            _sample_header(**bad).encode()


# -- footer ---------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    b32,
    st.binary(max_size=64),
    st.binary(max_size=64),
)
def test_footer_round_trip(payload_length, block_index, generation, leaf, head, payload):
    footer = ShardFooter(payload_length, block_index, generation, leaf)
    fields = footer.encode_fields()
    assert len(fields) == FOOTER_SIZE - 4
    sealed = ShardFooter.seal(fields, head, payload)
    assert len(sealed) == FOOTER_SIZE
    assert ShardFooter.decode_fields(sealed) == footer
    # the seal is CRC32C over header, payload and the footer's own fields
    assert int.from_bytes(sealed[60:], "little") == crc32c.crc32c(head + payload + fields)


def test_footer_refuses_bad_magic_reserved_and_length():
    fields = ShardFooter(5, 2, 1, bytes(32)).encode_fields()
    sealed = ShardFooter.seal(fields, b"", b"")
    assert ShardFooter.decode_fields(sealed).payload_length == 5
    with pytest.raises(FormatError):
        ShardFooter.decode_fields(b"BeeXLEND" + sealed[8:])
    with pytest.raises(FormatError):
        ShardFooter.decode_fields(sealed[:56] + b"\x01\x00\x00\x00" + sealed[60:])
    for length in (0, 63, 65):
        with pytest.raises(FormatError):
            ShardFooter.decode_fields((sealed + b"x")[:length])
    with pytest.raises(FormatError):
        ShardFooter(5, 2, 1, bytes(31)).encode_fields()


# -- record ---------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(records())
def test_record_round_trip(case):
    header, payload = case
    raw = encode_record(header, payload)
    assert len(raw) == RECORD_OVERHEAD + len(payload)
    for verify_leaf in (False, True):
        record = decode_record(raw, verify_leaf=verify_leaf)
        assert record.header == header
        assert bytes(record.payload) == payload
        assert record.footer == ShardFooter(
            header.payload_length, header.block_index, header.generation, leaf_hash(payload)
        )
        assert record.leaf_ok()
    assert decode_record(memoryview(raw)).header == header


def test_record_every_bit_flip_is_refused_exhaustively():
    header = _sample_header()
    payload = b"\x00\xff\x10\x20\x30"
    raw = encode_record(header, payload)
    assert len(raw) * 8 == (128 + 5 + 64) * 8
    for bit in range(len(raw) * 8):
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            decode_record(bytes(damaged))


def test_record_with_empty_payload_every_bit_flip_is_refused():
    header = _sample_header(block_length=0, payload_length=0)
    raw = encode_record(header, b"")
    assert len(raw) == RECORD_OVERHEAD
    for bit in range(len(raw) * 8):
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(FormatError):
            decode_record(bytes(damaged))


@settings(max_examples=40, deadline=None)
@given(records(max_block=300), st.data())
def test_record_random_bit_flips_are_refused(case, data):
    header, payload = case
    raw = encode_record(header, payload)
    bits = data.draw(
        st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=3, unique=True),
        label="bits",
    )
    damaged = bytearray(raw)
    for bit in bits:
        damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):
        decode_record(bytes(damaged))


@settings(max_examples=30, deadline=None)
@given(records(max_block=200))
def test_record_every_truncation_and_extension_is_refused(case):
    header, payload = case
    raw = encode_record(header, payload)
    for length in range(len(raw)):
        with pytest.raises(FormatError):
            decode_record(raw[:length])
    for extra in (b"\x00", b"\x00" * 64, raw):
        with pytest.raises(FormatError):
            decode_record(raw + extra)


def test_record_spliced_footer_is_refused():
    """A footer taken from another record of the same length (another block) is refused."""
    a = encode_record(_sample_header(block_index=2), b"12345")
    b = encode_record(_sample_header(block_index=3), b"12345")
    spliced = a[: HEADER_SIZE + 5] + b[HEADER_SIZE + 5 :]
    with pytest.raises(FormatError):
        decode_record(spliced)


def test_record_payload_changed_with_a_new_crc_fails_the_leaf():
    """Rot that also recomputed the CRC (not an accident, but a bug or a forgery) passes the
    cheap check; verify_leaf catches it."""
    header = _sample_header()
    raw = bytearray(encode_record(header, b"12345"))
    raw[HEADER_SIZE] ^= 1
    crc = crc32c.crc32c(bytes(raw[:-4]))
    raw[-4:] = crc.to_bytes(4, "little")
    record = decode_record(bytes(raw))
    assert not record.leaf_ok()
    with pytest.raises(FormatError):
        decode_record(bytes(raw), verify_leaf=True)


def test_encode_record_refuses_a_payload_of_the_wrong_length():
    with pytest.raises(FormatError):
        encode_record(_sample_header(), b"1234")
    with pytest.raises(FormatError):
        encode_record(_sample_header(), b"123456")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decoders_raise_only_format_error_on_random_bytes(data):
    for decode in (ShardHeader.decode, decode_record, Manifest.decode, DiskFormat.decode):
        with contextlib.suppress(FormatError):  # anything else fails the test
            decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_decoders_raise_only_format_error_behind_a_valid_magic(tail):
    for magic, decode in (
        (b"BeeXLv1\x00", ShardHeader.decode),
        (b"BeeXLv1\x00", decode_record),
        (b"BeeXLmf\x00", Manifest.decode),
    ):
        with contextlib.suppress(FormatError):  # anything else fails the test
            decode(magic + tail)


# -- manifest -------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(manifests())
def test_manifest_round_trip(manifest):
    raw = manifest.encode()
    decoded = Manifest.decode(raw)
    assert decoded == manifest
    assert decoded.encode() == raw  # canonical: one encoding per value


@settings(max_examples=15, deadline=None)
@given(manifests())
def test_manifest_every_byte_change_is_refused(manifest):
    raw = manifest.encode()
    for pos in range(len(raw)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(raw)
            damaged[pos] ^= mask
            with pytest.raises(FormatError):
                Manifest.decode(bytes(damaged))


@settings(max_examples=100, deadline=None)
@given(manifests(), st.data())
def test_manifest_random_byte_change_is_refused(manifest, data):
    raw = manifest.encode()
    pos = data.draw(st.integers(0, len(raw) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    damaged = bytearray(raw)
    damaged[pos] ^= mask
    with pytest.raises(FormatError):
        Manifest.decode(bytes(damaged))


@settings(max_examples=30, deadline=None)
@given(manifests())
def test_manifest_truncation_and_extension_are_refused(manifest):
    raw = manifest.encode()
    for length in range(len(raw)):
        with pytest.raises(FormatError):
            Manifest.decode(raw[:length])
    with pytest.raises(FormatError):
        Manifest.decode(raw + b"\x00")


def test_manifest_envelope_checks():
    manifest = _sample_manifest()
    body = _canonical(manifest.to_json())
    assert Manifest.decode(_envelope(body)) == manifest  # the helper builds valid envelopes
    with pytest.raises(FormatError):
        Manifest.decode(_envelope(body, version=2))
    with pytest.raises(FormatError):
        Manifest.decode(_envelope(body, version=0))
    with pytest.raises(FormatError):
        Manifest.decode(_envelope(body, reserved=1))
    spaced = json.dumps(manifest.to_json(), sort_keys=True).encode()
    assert json.loads(spaced) == json.loads(body)
    with pytest.raises(FormatError):
        Manifest.decode(_envelope(spaced))  # same JSON value, not canonical


def _mutated(change) -> bytes:
    obj = _sample_manifest().to_json()
    change(obj)
    return _envelope(_canonical(obj))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda o: o.update(extra=1), id="unknown top-level field"),
        pytest.param(lambda o: o["ec"].update(stripe=4), id="unknown ec field"),
        pytest.param(lambda o: o["parts"][0].update(crc=1), id="unknown part field"),
        pytest.param(lambda o: o.pop("etag"), id="missing etag"),
        pytest.param(lambda o: o["ec"].pop("codec"), id="missing codec"),
        pytest.param(lambda o: o["parts"][1].pop("blocks"), id="missing part blocks"),
        pytest.param(lambda o: o["ec"].update(codec=2), id="unknown codec"),
        pytest.param(lambda o: o.update(hash_algo="sha256"), id="unknown hash algo"),
        pytest.param(lambda o: o.update(checksum_algo="crc32"), id="unknown checksum algo"),
        pytest.param(lambda o: o["ec"].update(k=True), id="bool as integer"),
        pytest.param(lambda o: o.update(size="70000"), id="size as string"),
        pytest.param(lambda o: o.update(size=70_001), id="size not the sum of parts"),
        pytest.param(lambda o: o["parts"][0].update(blocks=2), id="block count off"),
        pytest.param(lambda o: o["parts"][1].update(number=1), id="part numbers not increasing"),
        pytest.param(lambda o: o.update(parts=[]), id="no parts"),
        pytest.param(lambda o: o.update(placement=o["placement"][:8]), id="placement short"),
        pytest.param(
            lambda o: o.update(placement=[o["placement"][0]] * 9), id="placement not distinct"
        ),
        pytest.param(lambda o: o.update(generation=0), id="generation 0"),
        pytest.param(lambda o: o.update(object_id="Z" * 32), id="object id not hex"),
        pytest.param(lambda o: o.update(merkle_root="0" * 63), id="merkle root short"),
        pytest.param(
            lambda o: o.update(version_id=str(uuid.UUID(int=1 << 70))), id="version not v7"
        ),
        pytest.param(lambda o: o.update(user_metadata={"a": 1}), id="metadata value not str"),
        pytest.param(lambda o: o.update(key=""), id="empty key"),
        pytest.param(lambda o: o["ec"].update(k=250, m=7), id="k + m > 256"),
        pytest.param(lambda o: o["ec"].update(block_size=0), id="block size 0"),
        pytest.param(lambda o: o.update(tags={}), id="tags present but empty"),
        pytest.param(lambda o: o.update(tags=[["a", "b"]]), id="tags as a list"),
        pytest.param(lambda o: o.update(tags={"a": 1}), id="tag value not str"),
        pytest.param(lambda o: o.update(tags={"": "v"}), id="empty tag key"),
        pytest.param(lambda o: o.update(tags={"k" * 129: ""}), id="tag key of 129"),
        pytest.param(lambda o: o.update(tags={"k": "v" * 257}), id="tag value of 257"),
        pytest.param(lambda o: o.update(tags={str(i): "" for i in range(11)}), id="eleven tags"),
    ],
)
def test_manifest_with_valid_crc_but_bad_content_is_refused(change):
    with pytest.raises(FormatError):
        Manifest.decode(_mutated(change))


def test_manifest_encode_refuses_invalid_values():
    from dataclasses import replace

    good = _sample_manifest()
    for bad in (
        {"k": 0},
        {"size": 1},
        {"placement": good.placement[:-1]},
        {"key": "x" * 1025},
        {"bucket": "ab"},
        {"generation": 0},
        {"tags": {"k" * 129: "v"}},
        {"tags": {str(i): "" for i in range(11)}},
    ):
        with pytest.raises(FormatError):
            replace(good, **bad).encode()


def test_manifest_tags_at_their_limits_round_trip_and_leave_others_unchanged():
    from dataclasses import replace

    good = _sample_manifest()
    assert b'"tags"' not in good.encode()  # absent when empty: old manifests are unchanged
    # 10 tags, keys of 128 and values of 256 code points (4-byte UTF-8 ones: not bytes)
    tags = {f"{i}" + "\U0001f600" * 127: "\u00fc" * 256 for i in range(10)}
    tagged = replace(good, tags=tags)
    back = Manifest.decode(tagged.encode())
    assert back.tags == tags and back == tagged
    assert list(json.loads(tagged.encode()[16:-4])["tags"]) == sorted(tags)


# -- format.json ----------------------------------------------------------------------------------


@st.composite
def disk_formats(draw) -> DiskFormat:
    ids = draw(st.lists(hex32, min_size=3, max_size=16, unique=True))
    k = draw(st.integers(1, len(ids) - 1))
    m = draw(st.integers(1, len(ids) - k))
    position = draw(st.integers(0, len(ids) - 1))
    return DiskFormat(
        set_id=draw(hex32),
        disk_id=ids[position],
        position=position,
        disks=tuple(ids),
        k=k,
        m=m,
        block_size=draw(st.integers(1, MAX_BLOCK_LENGTH)),
    )


@settings(max_examples=100, deadline=None)
@given(disk_formats())
def test_disk_format_round_trip(fmt):
    assert DiskFormat.decode(fmt.encode()) == fmt


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda o: o.update(version=2), id="newer version"),
        pytest.param(lambda o: o.update(format="other"), id="other format"),
        pytest.param(lambda o: o.update(extra=1), id="unknown field"),
        pytest.param(lambda o: o.pop("k"), id="missing k"),
        pytest.param(lambda o: o.update(position=9), id="position past the end"),
        pytest.param(lambda o: o.update(position=1), id="position names another id"),
        pytest.param(lambda o: o.update(k=9), id="k + m > disks"),
        pytest.param(lambda o: o.update(m=True), id="bool as integer"),
        pytest.param(lambda o: o.update(disks=[o["disk_id"]] * 9), id="duplicate disk ids"),
        pytest.param(lambda o: o.update(set_id="X" * 32), id="set id not hex"),
    ],
)
def test_disk_format_bad_content_is_refused(change):
    ids = [f"{i:032x}" for i in range(9)]
    fmt = DiskFormat("f" * 32, ids[0], 0, tuple(ids), 6, 3, 65536)
    obj = json.loads(fmt.encode())
    change(obj)
    with pytest.raises(FormatError):
        DiskFormat.decode(json.dumps(obj).encode())


# -- the small GET's lean record check agrees with the full decode -----------------------------


def _identity_of(header: ShardHeader) -> bytes:
    return identity_prefix(
        k=header.k,
        m=header.m,
        shard_index=header.shard_index,
        object_id=header.object_id,
        bucket_hash=header.bucket_hash,
        version_id=header.version_id,
        part_number=header.part_number,
        block_index=header.block_index,
        block_length=header.block_length,
    )


def _full_check(raw: bytes, header: ShardHeader, max_generation: int) -> tuple[bytes, bytes] | None:
    """What the reader's _fetch accepts: decode_record, identity equal, generation not newer."""
    try:
        record = decode_record(raw)
    except FormatError:
        return None
    if _identity_of(record.header) != _identity_of(header):
        return None
    if record.header.generation > max_generation:
        return None
    return bytes(record.payload), record.header.content_hash


def _lean_check(raw: bytes, header: ShardHeader, max_generation: int) -> tuple[bytes, bytes] | None:
    checked = checked_payload(memoryview(raw), _identity_of(header), max_generation)
    return None if checked is None else (bytes(checked[0]), checked[1])


@settings(max_examples=150, deadline=None)
@given(records(max_block=300), st.data())
def test_lean_record_check_agrees_with_the_full_decode(case, data):
    header, payload = case
    raw = encode_record(header, payload)
    max_generation = data.draw(st.sampled_from([header.generation, 2**64 - 1, 1]))
    assert _lean_check(raw, header, max_generation) == _full_check(raw, header, max_generation)
    if max_generation >= header.generation:
        assert _lean_check(raw, header, max_generation) == (payload, header.content_hash)
    bits = data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), max_size=3, unique=True))
    damaged = bytearray(raw)
    for bit in bits:
        damaged[bit // 8] ^= 1 << (bit % 8)
    cut = data.draw(st.integers(0, len(raw) + 2))
    for variant in (bytes(damaged), raw[:cut], raw + b"\x00"):
        assert _lean_check(variant, header, 2**64 - 1) == _full_check(variant, header, 2**64 - 1)


def test_lean_record_check_refuses_every_bit_flip_and_another_shards_record():
    header = _sample_header()
    raw = encode_record(header, b"\x00\xff\x10\x20\x30")
    identity = _identity_of(header)
    assert checked_payload(memoryview(raw), identity, header.generation) is not None
    for bit in range(len(raw) * 8):
        damaged = bytearray(raw)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert checked_payload(memoryview(bytes(damaged)), identity, 2**64 - 1) is None
    other = _identity_of(_sample_header(block_index=header.block_index + 1))
    assert checked_payload(memoryview(raw), other, 2**64 - 1) is None
