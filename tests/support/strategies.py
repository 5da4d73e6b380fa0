"""Hypothesis strategies for the on-disk format, shared by the property tests
(tests/test_format_props.py) and the fuzzers (fuzz/test_fuzz_decoders.py).

The limits are restated from specs/beexl-v1.md rather than imported from s3free.format, so a
wrong constant in the code cannot also narrow what the tests generate.
"""

from __future__ import annotations

import uuid

from hypothesis import strategies as st

from s3free.format.manifest import Manifest, PartEntry

MAX_BLOCK = 64 * 1024 * 1024  # specs: block_length <= 64 MiB
MAX_PARTS = 10000  # specs: part numbers 1..10000


@st.composite
def uuid7_bytes(draw) -> bytes:
    """16 random bytes with the UUIDv7 version and variant bits set (RFC 9562)."""
    raw = bytearray(draw(st.binary(min_size=16, max_size=16)))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return bytes(raw)


@st.composite
def small_km(draw) -> tuple[int, int]:
    """(k, m): mostly small geometries, one draw in ten anywhere up to k + m = 256."""
    if draw(st.integers(0, 9)) == 0:
        k = draw(st.integers(1, 255))
        return k, draw(st.integers(1, 256 - k))
    return draw(st.integers(1, 16)), draw(st.integers(1, 8))


def hex_text(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)


# Text as S3 allows it (any Unicode but lone surrogates, which UTF-8 cannot carry).
utf8_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
text_map = st.dictionaries(utf8_text, utf8_text, max_size=3)
bucket_names = st.from_regex(r"\A[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]\Z")
keys = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
# Object tags within S3's limits (10 tags, keys of 1..128 and values of 0..256 characters).
tag_maps = st.one_of(
    st.just({}),
    st.dictionaries(
        st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=128),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=256),
        max_size=10,
    ),
)


@st.composite
def manifests(draw) -> Manifest:
    """A valid manifest: any geometry, block size (typical ones and any in range), 1-5 parts
    of any size up to 1 TiB, names valid as S3 bucket names or any text, and metadata maps."""
    k, m = draw(small_km())
    block_size = draw(
        st.one_of(st.sampled_from([1, 1000, 65536, 1 << 20, MAX_BLOCK]), st.integers(1, MAX_BLOCK))
    )
    numbers = sorted(draw(st.sets(st.integers(1, MAX_PARTS), min_size=1, max_size=5)))
    parts = []
    for number in numbers:
        size = draw(st.one_of(st.integers(0, 5 * block_size), st.integers(0, 2**40)))
        parts.append(
            PartEntry(
                number=number,
                size=size,
                etag=draw(utf8_text),
                blocks=max(1, -(-size // block_size)),  # an empty part still has one block
                merkle_root=draw(hex_text(64)),
            )
        )
    return Manifest(
        bucket=draw(st.one_of(bucket_names, st.text(min_size=3, max_size=63))),
        key=draw(keys),
        object_id=draw(hex_text(32)),
        version_id=str(uuid.UUID(bytes=draw(uuid7_bytes()))),
        size=sum(p.size for p in parts),
        etag=draw(utf8_text),
        last_modified_ms=draw(st.integers(0, 2**63 - 1)),
        content_type=draw(utf8_text),
        parts=tuple(parts),
        k=k,
        m=m,
        block_size=block_size,
        placement=tuple(draw(st.lists(hex_text(32), min_size=k + m, max_size=k + m, unique=True))),
        generation=draw(st.integers(1, 2**63 - 1)),
        merkle_root=draw(hex_text(64)),
        user_metadata=draw(text_map),
        http_headers=draw(text_map),
        checksums=draw(st.dictionaries(utf8_text, utf8_text, max_size=2)),
        tags=draw(tag_maps),
    )
