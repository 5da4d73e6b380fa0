"""Golden bytes: the BeeXL v1 fixture in tests/golden/ against the spec and the code.

Three independent sources must agree byte for byte:
- the spec (specs/beexl-v1.md), implemented here from scratch with only struct, blake3, crc32c,
  hashlib and a tiny GF(2^8): `spec_*` below never calls s3free;
- the fixture files, pinned by sha256;
- the current s3free encoders and decoders, fed the known input values as literals.

An accidental format change fails here loudly. Regenerating the fixture (tools/make_golden.py
--force) is a deliberate format change, never a way to make this file pass.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import json
import re
import shutil
import struct
import sys
from pathlib import Path

import blake3
import crc32c
import pytest

from s3free.engine import ObjectStore
from s3free.erasure import ReedSolomon
from s3free.format import FormatError, Manifest, PartEntry, ShardHeader, decode_record
from s3free.format.diskformat import DiskFormat
from s3free.format.footer import ShardFooter
from s3free.format.record import encode_record
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SPEC = ROOT / "specs" / "beexl-v1.md"
TOOL = ROOT / "tools" / "make_golden.py"

# -- the known inputs (spec section 17; tools/make_golden.py) ------------------------------------

SET_ID = "5e7000000000000000000000000000a1"
DISK_IDS = (
    "d15c0000000000000000000000000000",
    "d15c0000000000000000000000000001",
    "d15c0000000000000000000000000002",
)
K, M, BLOCK_SIZE = 2, 1, 64
BUCKET = "golden-bucket"
BUCKET_CREATED_MS = 1_699_999_999_000

KEY = "golden/object.txt"
VERSION_ID = "018bcfe5-6800-7000-8123-456789abcdef"
VERSION_MS = 1_700_000_000_000
CONTENT = (
    b"BeeXL v1 golden object: 150 bytes of known text, cut into block "
    b"0, block 1 and a short block 2, coded RS(2,1) onto three disks. "
    b"The end of the text!!\n"
)
BLOCKS = (CONTENT[0:64], CONTENT[64:128], CONTENT[128:150])
LAST_MODIFIED_MS = 1_700_000_000_123
CONTENT_TYPE = "text/plain"
USER_METADATA = {"fixture": "golden", "note": "grüße"}
HTTP_HEADERS = {"cache-control": "no-store"}
PLACEMENT = (1, 0, 2)  # disk position holding shard 0, 1, 2

EMPTY_KEY = "golden/empty"
EMPTY_VERSION_ID = "018bcfe5-6801-7000-8000-000000000002"
EMPTY_LAST_MODIFIED_MS = 1_700_000_000_456
EMPTY_PLACEMENT = (0, 2, 1)

# Added with object tagging: a manifest with the optional `tags` (spec 8.3).
TAGGED_KEY = "golden/tagged"
TAGGED_VERSION_ID = "018bcfe5-6802-7000-8000-000000000003"
TAGGED_LAST_MODIFIED_MS = 1_700_000_000_789
TAGGED_CONTENT = b"tagged object\n"
TAGS = {"owner": "gr\u00fc\u00dfe", "Project": "backup", "empty": ""}
TAGGED_PLACEMENT = (0, 2, 1)

# Values the spec states for these inputs (sections 5, 7.4); each is also recomputed below from
# the spec's definitions.
OBJECT_ID = "61c287a6abfa23d959c0c1f188c32c40"
BUCKET_HASH = "36b259c2e0a6ec223a2f46c7835056d7"
BLAKE3_EMPTY = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def version_hex(version_id: str) -> str:
    return version_id.replace("-", "")


def obj_dir(key: str, version_id: str) -> str:
    oid = spec_object_id(BUCKET, key).hex()
    return f"objects/{oid[:2]}/{oid[2:4]}/{oid}/{version_hex(version_id)}"


OBJ_DIR = f"objects/61/c2/{OBJECT_ID}/018bcfe5680070008123456789abcdef"
EMPTY_OBJECT_ID = "90d58e11387d0369eb7cd80a13bb58b1"
EMPTY_OBJ_DIR = f"objects/90/d5/{EMPTY_OBJECT_ID}/018bcfe5680170008000000000000002"
TAGGED_OBJECT_ID = "a4ddf980fff2d4435033d26ee6f76476"
TAGGED_OBJ_DIR = f"objects/a4/dd/{TAGGED_OBJECT_ID}/018bcfe5680270008000000000000003"

# sha256 of every fixture file under tests/golden/disks (any byte change fails loudly);
# {O} = OBJ_DIR, {E} = EMPTY_OBJ_DIR, {T} = TAGGED_OBJ_DIR (added later; the others unchanged).
PINNED = """
e669807240e71e9a7fab51614a24f96a82fe8ef17630e29b17249780c8cfc915 disk0/buckets/golden-bucket.json
3af9b663a81ff0899a60c7e17774acb6095d2d2ae98c95fa6b3bd5369d5b3d0a disk0/format.json
da4cdbb963a1e509f7eb6cfeef7945508bd63a1a803f916d37f45c3767785de2 disk0/{O}/manifest
9433474bb65b8238f6b1089889d42dcdfaf7b6ad6ff3170869a2816c82420249 disk0/{O}/part.00001
fd37284c92b03daabca46339d7dee824db89dfa2f78d59c5d2c4631f0df9b2cf disk0/{E}/manifest
8ef0c71c5795acffd05e963f2de4bac4aea8534b41b734e5b9b61e368ad94a6f disk0/{E}/part.00001
e669807240e71e9a7fab51614a24f96a82fe8ef17630e29b17249780c8cfc915 disk1/buckets/golden-bucket.json
a1ac02913709a25c55e0a496ab61f205d078ce322997c2d765c9aa7b70849192 disk1/format.json
da4cdbb963a1e509f7eb6cfeef7945508bd63a1a803f916d37f45c3767785de2 disk1/{O}/manifest
14e1610ab7924ebb0f4cd76641cca45368bf092c6b0e31a4a2cb3bdf233e6a11 disk1/{O}/part.00001
fd37284c92b03daabca46339d7dee824db89dfa2f78d59c5d2c4631f0df9b2cf disk1/{E}/manifest
8ffcc7e6006d0bf0fd24b3b5afe86db4f8142d6e0a64a57edc1804b3f1039bdd disk1/{E}/part.00001
e669807240e71e9a7fab51614a24f96a82fe8ef17630e29b17249780c8cfc915 disk2/buckets/golden-bucket.json
11363923e1f693a5040b200c7ab3840b66fbf55aa921ac3ab2c6685bf930a96d disk2/format.json
da4cdbb963a1e509f7eb6cfeef7945508bd63a1a803f916d37f45c3767785de2 disk2/{O}/manifest
1c214ce9c115f05ed5259e6808ecfcf0b250d45ea3eab494021ca3e93828e41c disk2/{O}/part.00001
fd37284c92b03daabca46339d7dee824db89dfa2f78d59c5d2c4631f0df9b2cf disk2/{E}/manifest
da11c3e49d2433063c53c1e61397588fe940bb6aa71ed70638a3fd06340e88f3 disk2/{E}/part.00001
1b4e8cdf67bace1435bed1450d3a25a25af45432ea41c719d50b03fde9804148 disk0/{T}/manifest
b38dc85e15e006185df18e02658d6f118d3c1a8dc1f570f71721a1dd130d4e02 disk0/{T}/part.00001
1b4e8cdf67bace1435bed1450d3a25a25af45432ea41c719d50b03fde9804148 disk1/{T}/manifest
74b3af6f67d5b314c9fb726c491e920d42732a89867a0944fc1d471b91cb59fa disk1/{T}/part.00001
1b4e8cdf67bace1435bed1450d3a25a25af45432ea41c719d50b03fde9804148 disk2/{T}/manifest
62dfda375f6e7095950c03575c12dfdab6bb75f877220778e4345966cd7913c0 disk2/{T}/part.00001
"""
PINNED_SHA256 = {
    path.format(O=OBJ_DIR, E=EMPTY_OBJ_DIR, T=TAGGED_OBJ_DIR): digest
    for digest, path in (line.split() for line in PINNED.strip().splitlines())
}


def fixture(rel: str) -> bytes:
    return (GOLDEN / "disks" / rel).read_bytes()


def shard_file(key: str, version_id: str, shard: int, placement: tuple[int, ...]) -> bytes:
    return fixture(f"disk{placement[shard]}/{obj_dir(key, version_id)}/part.00001")


# -- the spec, implemented from scratch (no s3free) ----------------------------------------------


def spec_object_id(bucket: str, key: str) -> bytes:
    ctx = b"s3free object id v1\x00"
    return blake3.blake3(ctx + bucket.encode() + b"\x00" + key.encode()).digest(length=16)


def spec_bucket_hash(bucket: str) -> bytes:
    return blake3.blake3(b"s3free bucket hash v1\x00" + bucket.encode()).digest(length=16)


def spec_mth(leaves: list[bytes]) -> bytes:
    h = lambda data: blake3.blake3(data).digest()  # noqa: E731
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return h(b"\x00" + leaves[0])
    j = 1
    while j * 2 < len(leaves):
        j *= 2
    return h(b"\x01" + spec_mth(leaves[:j]) + spec_mth(leaves[j:]))


def gf_mul(a: int, b: int) -> int:
    """GF(2^8) product with the primitive polynomial 0x11D (spec section 6)."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11D
        b >>= 1
    return out


def gf_inverse_matrix(a: list[list[int]]) -> list[list[int]]:
    """Gauss-Jordan inverse over GF(2^8) (addition is XOR)."""
    n = len(a)
    rows = [row[:] + [int(i == j) for j in range(n)] for i, row in enumerate(a)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col])
        rows[col], rows[pivot] = rows[pivot], rows[col]
        inv = next(x for x in range(1, 256) if gf_mul(rows[col][col], x) == 1)
        rows[col] = [gf_mul(inv, v) for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col]:
                factor = rows[r][col]
                rows[r] = [v ^ gf_mul(factor, w) for v, w in zip(rows[r], rows[col], strict=True)]
    return [row[n:] for row in rows]


def spec_parity_matrix(k: int, m: int) -> list[list[int]]:
    """E, the bottom m rows of G = V * inverse(V_top) (spec section 6): V's row 0 is
    (1, 0, ..., 0), row i >= 1 is powers of x_i = alpha^(i-1), alpha = 2."""
    alpha_pow = [1]
    for _ in range(254):
        alpha_pow.append(gf_mul(alpha_pow[-1], 2))
    v = [[1] + [0] * (k - 1)]
    v += [[alpha_pow[((i - 1) * c) % 255] for c in range(k)] for i in range(1, k + m)]
    top_inv = gf_inverse_matrix(v[:k])
    e = []
    for row in v[k:]:
        out = []
        for c in range(k):
            acc = 0
            for t in range(k):
                acc ^= gf_mul(row[t], top_inv[t][c])
            out.append(acc)
        e.append(out)
    return e


def spec_shards_rs21(block: bytes) -> list[bytes]:
    """RS(2,1) per spec section 6: pad, split, parity = 3*d0 ^ 2*d1."""
    s = -(-len(block) // 2)
    padded = block + bytes(2 * s - len(block))
    d0, d1 = padded[:s], padded[s:]
    parity = bytes(gf_mul(3, a) ^ gf_mul(2, b) for a, b in zip(d0, d1, strict=True))
    return [d0, d1, parity]


def spec_header(
    *,
    shard_index: int,
    object_id: bytes,
    version_id: bytes,
    block_index: int,
    block: bytes,
    part_number: int = 1,
    generation: int = 1,
) -> bytes:
    """The 128-byte header built field by field at the offsets of spec table 7.1."""
    h = bytearray(128)
    h[0:8] = b"BeeXLv1\x00"
    struct.pack_into("<HH", h, 8, 1, 128)
    h[12:16] = bytes((1, K, M, shard_index))
    h[16:32] = object_id
    h[32:48] = spec_bucket_hash(BUCKET)
    h[48:64] = version_id
    struct.pack_into("<IIII", h, 64, part_number, block_index, len(block), -(-len(block) // K))
    struct.pack_into("<Q", h, 80, generation)
    h[88:120] = blake3.blake3(block).digest()
    struct.pack_into("<I", h, 120, 0)
    struct.pack_into("<I", h, 124, crc32c.crc32c(bytes(h[:124])))
    return bytes(h)


def spec_record(header: bytes, payload: bytes, block_index: int, generation: int = 1) -> bytes:
    """Header + payload + the 64-byte footer of spec table 7.2."""
    f = bytearray(64)
    f[0:8] = b"BeeXLend"
    struct.pack_into("<IIQ", f, 8, len(payload), block_index, generation)
    f[24:56] = blake3.blake3(payload).digest()
    struct.pack_into("<I", f, 56, 0)
    struct.pack_into("<I", f, 60, crc32c.crc32c(header + payload + bytes(f[:60])))
    return header + payload + bytes(f)


def spec_shard_file(key: str, version_id: str, content: bytes, shard: int) -> bytes:
    oid = spec_object_id(BUCKET, key)
    vid = bytes.fromhex(version_hex(version_id))
    count = max(1, -(-len(content) // BLOCK_SIZE))
    out = b""
    for i in range(count):
        block = content[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE]
        header = spec_header(
            shard_index=shard, object_id=oid, version_id=vid, block_index=i, block=block
        )
        out += spec_record(header, spec_shards_rs21(block)[shard], i)
    return out


def spec_manifest_body(
    *,
    key,
    version_id,
    content,
    last_modified_ms,
    content_type,
    user_metadata,
    http_headers,
    placement,
    tags=None,
) -> dict:
    count = max(1, -(-len(content) // BLOCK_SIZE))
    hashes = [
        blake3.blake3(content[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE]).digest() for i in range(count)
    ]
    part_root = spec_mth(hashes)
    etag = hashlib.md5(content).hexdigest()
    body = {
        "bucket": BUCKET,
        "checksum_algo": "crc32c",
        "checksums": {},
        "content_type": content_type,
        "ec": {"block_size": BLOCK_SIZE, "codec": 1, "k": K, "m": M},
        "etag": etag,
        "generation": 1,
        "hash_algo": "blake3",
        "http_headers": http_headers,
        "key": key,
        "last_modified_ms": last_modified_ms,
        "merkle_root": spec_mth([part_root]).hex(),
        "object_id": spec_object_id(BUCKET, key).hex(),
        "parts": [
            {
                "blocks": count,
                "etag": etag,
                "merkle_root": part_root.hex(),
                "number": 1,
                "size": len(content),
            }
        ],
        "placement": [DISK_IDS[p] for p in placement],
        "size": len(content),
        "user_metadata": user_metadata,
        "version_id": version_id,
    }
    if tags:  # optional, absent when empty (spec 8.3)
        body["tags"] = tags
    return body


def spec_manifest(body: dict) -> bytes:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    blob = b"BeeXLmf\x00" + struct.pack("<HHI", 1, 0, len(raw)) + raw
    return blob + struct.pack("<I", crc32c.crc32c(blob))


OBJECT_BODY = dict(
    key=KEY,
    version_id=VERSION_ID,
    content=CONTENT,
    last_modified_ms=LAST_MODIFIED_MS,
    content_type=CONTENT_TYPE,
    user_metadata=USER_METADATA,
    http_headers=HTTP_HEADERS,
    placement=PLACEMENT,
)
EMPTY_BODY = dict(
    key=EMPTY_KEY,
    version_id=EMPTY_VERSION_ID,
    content=b"",
    last_modified_ms=EMPTY_LAST_MODIFIED_MS,
    content_type="",
    user_metadata={},
    http_headers={},
    placement=EMPTY_PLACEMENT,
)
TAGGED_BODY = dict(
    key=TAGGED_KEY,
    version_id=TAGGED_VERSION_ID,
    content=TAGGED_CONTENT,
    last_modified_ms=TAGGED_LAST_MODIFIED_MS,
    content_type="text/plain",
    user_metadata={},
    http_headers={},
    placement=TAGGED_PLACEMENT,
    tags=TAGS,
)


# -- the fixture is exactly what it was ----------------------------------------------------------


def test_fixture_files_are_pinned():
    disks = GOLDEN / "disks"
    present = {p.relative_to(disks).as_posix() for p in disks.rglob("*") if p.is_file()}
    assert present == set(PINNED_SHA256), "files were added to or removed from the fixture"
    for rel, digest in PINNED_SHA256.items():
        assert hashlib.sha256(fixture(rel)).hexdigest() == digest, f"{rel} changed"
    total = sum((disks / rel).stat().st_size for rel in present)
    assert total < 16 * 1024  # stays a small fixture


def test_spec_constants_follow_from_the_inputs():
    assert spec_object_id(BUCKET, KEY).hex() == OBJECT_ID
    assert spec_bucket_hash(BUCKET).hex() == BUCKET_HASH
    assert blake3.blake3(b"").hexdigest() == BLAKE3_EMPTY
    assert obj_dir(KEY, VERSION_ID) == OBJ_DIR
    assert spec_object_id(BUCKET, EMPTY_KEY).hex() == EMPTY_OBJECT_ID
    assert obj_dir(EMPTY_KEY, EMPTY_VERSION_ID) == EMPTY_OBJ_DIR
    assert obj_dir(TAGGED_KEY, TAGGED_VERSION_ID) == TAGGED_OBJ_DIR
    assert int(version_hex(VERSION_ID)[:12], 16) == VERSION_MS
    assert b"".join(BLOCKS) == CONTENT and [len(b) for b in BLOCKS] == [64, 64, 22]
    # Placement by the spec's rendezvous rule (section 10): descending BLAKE3(oid || disk id).
    for key, placement in (
        (KEY, PLACEMENT),
        (EMPTY_KEY, EMPTY_PLACEMENT),
        (TAGGED_KEY, TAGGED_PLACEMENT),
    ):
        oid = spec_object_id(BUCKET, key)
        score = {p: blake3.blake3(oid + bytes.fromhex(d)).digest(8) for p, d in enumerate(DISK_IDS)}
        assert tuple(sorted(score, key=score.get, reverse=True)) == placement


# -- fixture bytes == the spec built from scratch ------------------------------------------------


@pytest.mark.parametrize("shard", [0, 1, 2])
def test_shard_files_are_the_spec_construction(shard):
    for body, placement in (
        (OBJECT_BODY, PLACEMENT),
        (EMPTY_BODY, EMPTY_PLACEMENT),
        (TAGGED_BODY, TAGGED_PLACEMENT),
    ):
        expected = spec_shard_file(body["key"], body["version_id"], body["content"], shard)
        assert shard_file(body["key"], body["version_id"], shard, placement) == expected


def test_shard_file_sizes_and_record_offsets():
    # Spec 7.4: record i at i * (192 + ceil(64/2)) = i * 224; sizes 224, 224, 192 + 11.
    data = shard_file(KEY, VERSION_ID, 0, PLACEMENT)
    assert len(data) == 651
    for i, offset in enumerate((0, 224, 448)):
        assert data[offset : offset + 8] == b"BeeXLv1\x00"
        assert struct.unpack_from("<I", data, offset + 68)[0] == i
    empty = shard_file(EMPTY_KEY, EMPTY_VERSION_ID, 1, EMPTY_PLACEMENT)
    assert len(empty) == 192
    assert empty[88:120].hex() == BLAKE3_EMPTY  # content hash of the empty block
    assert empty[128 + 24 : 128 + 56].hex() == BLAKE3_EMPTY  # leaf of the empty payload


@pytest.mark.parametrize(
    "body", [OBJECT_BODY, EMPTY_BODY, TAGGED_BODY], ids=["object", "empty", "tagged"]
)
def test_manifests_are_the_spec_construction(body):
    expected = spec_manifest(spec_manifest_body(**body))
    for position in range(3):
        assert fixture(f"disk{position}/{obj_dir(body['key'], body['version_id'])}/manifest") == (
            expected
        )


def test_format_json_and_bucket_records_are_the_spec_text():
    disk0 = (
        b"{\n"
        b'  "block_size": 64,\n'
        b'  "disk_id": "d15c0000000000000000000000000000",\n'
        b'  "disks": [\n'
        b'    "d15c0000000000000000000000000000",\n'
        b'    "d15c0000000000000000000000000001",\n'
        b'    "d15c0000000000000000000000000002"\n'
        b"  ],\n"
        b'  "format": "s3free-disk",\n'
        b'  "k": 2,\n'
        b'  "m": 1,\n'
        b'  "position": 0,\n'
        b'  "set_id": "5e7000000000000000000000000000a1",\n'
        b'  "version": 1\n'
        b"}\n"
    )
    assert fixture("disk0/format.json") == disk0
    for position in range(3):
        expected = disk0.replace(
            b'"disk_id": "d15c0000000000000000000000000000"',
            f'"disk_id": "{DISK_IDS[position]}"'.encode(),
        ).replace(b'"position": 0', f'"position": {position}'.encode())
        assert fixture(f"disk{position}/format.json") == expected
        assert fixture(f"disk{position}/buckets/golden-bucket.json") == (
            b'{"created_ms": 1699999999000, "name": "golden-bucket", "owner": ""}\n'
        )


# -- the spec document agrees with the bytes -----------------------------------------------------


def spec_table(heading: str) -> list[tuple[int, int, str, str]]:
    """(offset, size, type, field) rows of the first table after the heading in the spec."""
    lines = SPEC.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#") and heading in line)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].isdigit() and cells[1].isdigit():
            rows.append((int(cells[0]), int(cells[1]), cells[2], cells[3].strip("`")))
    assert rows, f"no table under {heading!r}"
    return rows


def field_value(data: bytes, offset: int, size: int, kind: str):
    raw = data[offset : offset + size]
    ints = {"u8": 1, "u16le": 2, "u32le": 4, "u64le": 8}
    if kind in ints:
        assert ints[kind] == size, f"spec type {kind} does not fit size {size}"
        return int.from_bytes(raw, "little")
    assert kind == f"bytes[{size}]", f"unexpected spec type {kind}"
    return raw


def check_table(rows, data: bytes, expected: dict, total: int | None) -> None:
    names = [name for _, _, _, name in rows]
    assert names == list(expected), "the spec's table and the known fields differ"
    position = 0
    for offset, size, kind, name in rows:
        assert offset == position, f"{name}: gap or overlap in the spec table"
        assert field_value(data, offset, size, kind) == expected[name], name
        position = offset + size
    if total is not None:
        assert position == total


def test_spec_header_table_matches_the_bytes():
    data = shard_file(KEY, VERSION_ID, 2, PLACEMENT)
    record = data[448:]  # block 2 of the parity shard: the short record
    check_table(
        spec_table("Shard header"),
        record,
        {
            "magic": b"BeeXLv1\x00",
            "format_version": 1,
            "header_size": 128,
            "codec_id": 1,
            "k": 2,
            "m": 1,
            "shard_index": 2,
            "object_id": bytes.fromhex(OBJECT_ID),
            "bucket_hash": bytes.fromhex(BUCKET_HASH),
            "version_id": bytes.fromhex(version_hex(VERSION_ID)),
            "part_number": 1,
            "block_index": 2,
            "block_length": 22,
            "payload_length": 11,
            "generation": 1,
            "content_hash": blake3.blake3(BLOCKS[2]).digest(),
            "flags": 0,
            "header_crc": crc32c.crc32c(record[:124]),
        },
        128,
    )
    assert record[48:64] == bytes.fromhex("018bcfe5680070008123456789abcdef")


def test_spec_footer_table_matches_the_bytes():
    data = shard_file(KEY, VERSION_ID, 2, PLACEMENT)
    record = data[448:]
    payload = spec_shards_rs21(BLOCKS[2])[2]
    assert len(record) == 128 + 11 + 64 and record[128:139] == payload
    check_table(
        spec_table("Shard footer"),
        record[139:],
        {
            "magic": b"BeeXLend",
            "payload_length": 11,
            "block_index": 2,
            "generation": 1,
            "merkle_leaf": blake3.blake3(payload).digest(),
            "reserved": 0,
            "record_crc": crc32c.crc32c(record[:-4]),
        },
        64,
    )


def test_spec_manifest_envelope_table_matches_the_bytes():
    data = fixture(f"disk0/{OBJ_DIR}/manifest")
    body = json.dumps(
        spec_manifest_body(**OBJECT_BODY), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    rows = spec_table("8.1 Envelope")
    check_table(
        rows,
        data,
        {"magic": b"BeeXLmf\x00", "version": 1, "reserved": 0, "body_length": len(body)},
        16,
    )
    assert data[16:-4] == body
    assert struct.unpack("<I", data[-4:])[0] == crc32c.crc32c(data[:-4])


def test_spec_examples_are_the_fixture_bytes():
    text = SPEC.read_text()
    # the hex dump of the first record of shard 0 (section 17)
    dump = text.split("golden-record-hexdump")[1].split("```")[1]
    rows = [line for line in dump.splitlines() if re.match(r"^[0-9a-f]{4}  ", line)]
    dumped = bytes.fromhex("".join(line[6:53] for line in rows))
    assert dumped == shard_file(KEY, VERSION_ID, 0, PLACEMENT)[:224]
    # the manifest body (section 8.3) and the format.json example (section 4)
    manifest = fixture(f"disk1/{OBJ_DIR}/manifest")
    assert "\n" + manifest[16:-4].decode() + "\n" in text
    assert fixture("disk0/format.json").decode() in text
    for value in (OBJECT_ID, BUCKET_HASH, BLAKE3_EMPTY, VERSION_ID):
        assert value in text


# -- the current code: decode to the known values, re-encode to the same bytes -------------------


def test_headers_decode_to_known_values():
    oid = bytes.fromhex(OBJECT_ID)
    cases = [
        # (file, offset, shard, block index, block)
        (shard_file(KEY, VERSION_ID, 0, PLACEMENT), 0, 0, 0, BLOCKS[0]),
        (shard_file(KEY, VERSION_ID, 1, PLACEMENT), 224, 1, 1, BLOCKS[1]),
        (shard_file(KEY, VERSION_ID, 2, PLACEMENT), 448, 2, 2, BLOCKS[2]),
    ]
    for data, offset, shard, index, block in cases:
        h = ShardHeader.decode(data[offset:])
        assert (h.codec_id, h.k, h.m, h.shard_index) == (1, 2, 1, shard)
        assert h.object_id == oid
        assert h.bucket_hash == bytes.fromhex(BUCKET_HASH)
        assert h.version_id.hex() == version_hex(VERSION_ID)
        assert (h.part_number, h.block_index, h.block_length) == (1, index, len(block))
        assert h.payload_length == -(-len(block) // 2)
        assert h.generation == 1
        assert h.content_hash == blake3.blake3(block).digest()
    empty = ShardHeader.decode(shard_file(EMPTY_KEY, EMPTY_VERSION_ID, 1, EMPTY_PLACEMENT))
    assert empty.object_id == spec_object_id(BUCKET, EMPTY_KEY)
    assert (empty.shard_index, empty.block_index, empty.block_length, empty.payload_length) == (
        1,
        0,
        0,
        0,
    )
    assert empty.content_hash.hex() == BLAKE3_EMPTY


def test_every_record_decodes_with_its_footer():
    for shard in range(3):
        data = shard_file(KEY, VERSION_ID, shard, PLACEMENT)
        for index, block in enumerate(BLOCKS):
            length = 192 + -(-len(block) // 2)
            record = decode_record(data[index * 224 : index * 224 + length], verify_leaf=True)
            payload = spec_shards_rs21(block)[shard]
            assert bytes(record.payload) == payload
            f = record.footer
            assert (f.payload_length, f.block_index, f.generation) == (len(payload), index, 1)
            assert f.merkle_leaf == blake3.blake3(payload).digest()


def test_reencoding_known_values_gives_the_fixture_bytes():
    codec = ReedSolomon(K, M)
    oid = bytes.fromhex(OBJECT_ID)
    vid = bytes.fromhex(version_hex(VERSION_ID))
    for shard in range(3):
        out = b""
        for index, block in enumerate(BLOCKS):
            payload = bytes(codec.encode(block)[shard])
            header = ShardHeader(
                codec_id=1,
                k=K,
                m=M,
                shard_index=shard,
                object_id=oid,
                bucket_hash=bytes.fromhex(BUCKET_HASH),
                version_id=vid,
                part_number=1,
                block_index=index,
                block_length=len(block),
                payload_length=len(payload),
                generation=1,
                content_hash=blake3.blake3(block).digest(),
            )
            record = encode_record(header, payload)
            # the writer's own path (header.encode + ShardFooter.seal) must agree too
            fields = ShardFooter(len(payload), index, 1, blake3.blake3(payload).digest())
            head = header.encode()
            assert record == head + payload + ShardFooter.seal(
                fields.encode_fields(), head, payload
            )
            out += record
        assert out == shard_file(KEY, VERSION_ID, shard, PLACEMENT)

    etag = hashlib.md5(CONTENT).hexdigest()
    part_root = spec_mth([blake3.blake3(b).digest() for b in BLOCKS]).hex()
    manifest = Manifest(
        bucket=BUCKET,
        key=KEY,
        object_id=OBJECT_ID,
        version_id=VERSION_ID,
        size=150,
        etag=etag,
        last_modified_ms=LAST_MODIFIED_MS,
        content_type=CONTENT_TYPE,
        parts=(PartEntry(1, 150, etag, 3, part_root),),
        k=K,
        m=M,
        block_size=BLOCK_SIZE,
        placement=tuple(DISK_IDS[p] for p in PLACEMENT),
        generation=1,
        merkle_root=spec_mth([bytes.fromhex(part_root)]).hex(),
        user_metadata=dict(USER_METADATA),
        http_headers=dict(HTTP_HEADERS),
        checksums={},
    )
    assert manifest.encode() == fixture(f"disk2/{OBJ_DIR}/manifest")
    for position in range(3):
        fmt = DiskFormat(SET_ID, DISK_IDS[position], position, DISK_IDS, K, M, BLOCK_SIZE)
        assert fmt.encode() == fixture(f"disk{position}/format.json")


def test_manifest_decodes_to_known_values():
    m = Manifest.decode(fixture(f"disk0/{OBJ_DIR}/manifest"))
    assert (m.bucket, m.key, m.object_id, m.version_id) == (BUCKET, KEY, OBJECT_ID, VERSION_ID)
    assert (m.size, m.etag) == (150, hashlib.md5(CONTENT).hexdigest())
    assert (m.last_modified_ms, m.content_type) == (LAST_MODIFIED_MS, CONTENT_TYPE)
    assert (m.k, m.m, m.block_size, m.codec_id, m.generation) == (2, 1, 64, 1, 1)
    assert m.placement == (DISK_IDS[1], DISK_IDS[0], DISK_IDS[2])
    assert (m.user_metadata, m.http_headers, m.checksums) == (USER_METADATA, HTTP_HEADERS, {})
    hashes = [blake3.blake3(b).digest() for b in BLOCKS]
    # RFC 6962 shape: root(3 leaves) = H(1 || H(1 || H(0||h0) || H(0||h1)) || H(0||h2))
    h = lambda data: blake3.blake3(data).digest()  # noqa: E731
    part_root = h(
        b"\x01"
        + h(b"\x01" + h(b"\x00" + hashes[0]) + h(b"\x00" + hashes[1]))
        + h(b"\x00" + hashes[2])
    )
    assert len(m.parts) == 1
    p = m.parts[0]
    assert (p.number, p.size, p.blocks, p.etag) == (1, 150, 3, m.etag)
    assert p.merkle_root == part_root.hex()
    assert m.merkle_root == h(b"\x00" + part_root).hex()

    e = Manifest.decode(fixture(f"disk1/{obj_dir(EMPTY_KEY, EMPTY_VERSION_ID)}/manifest"))
    assert (e.key, e.size, e.etag, e.version_id) == (
        EMPTY_KEY,
        0,
        "d41d8cd98f00b204e9800998ecf8427e",
        EMPTY_VERSION_ID,
    )
    assert (e.parts[0].blocks, e.parts[0].size) == (1, 0)
    assert e.parts[0].merkle_root == h(b"\x00" + bytes.fromhex(BLAKE3_EMPTY)).hex()
    assert m.tags == e.tags == {}  # absent from their bodies

    t = Manifest.decode(fixture(f"disk2/{TAGGED_OBJ_DIR}/manifest"))
    assert (t.key, t.size, t.tags) == (TAGGED_KEY, len(TAGGED_CONTENT), TAGS)
    body = fixture(f"disk2/{TAGGED_OBJ_DIR}/manifest")[16:-4]
    # sorted by code point: "Project" before "empty" before "owner"
    assert b'"tags":{"Project":"backup","empty":"","owner":"gr\xc3\xbc\xc3\x9fe"}' in body


def test_format_json_decodes_to_known_values():
    for position in range(3):
        fmt = DiskFormat.decode(fixture(f"disk{position}/format.json"))
        assert (fmt.set_id, fmt.disk_id, fmt.position) == (SET_ID, DISK_IDS[position], position)
        assert (fmt.disks, fmt.k, fmt.m, fmt.block_size) == (DISK_IDS, 2, 1, 64)


def test_format_json_version_must_be_the_integer_1():
    """Spec section 4: integer fields are JSON integers, `version` exactly 1 (see 16.1)."""
    base = json.loads(fixture("disk0/format.json"))
    for bad in (2, 0, "1"):
        with pytest.raises(FormatError):
            DiskFormat.decode(json.dumps({**base, "version": bad}).encode())
    for bad in (True, 1.0):
        with pytest.raises(FormatError):
            DiskFormat.decode(json.dumps({**base, "version": bad}).encode())


def test_decoders_refuse_what_the_spec_refuses():
    record = shard_file(KEY, VERSION_ID, 0, PLACEMENT)[:224]

    def patched(data: bytes, offset: int, value: bytes, fix_header_crc: bool = True) -> bytes:
        out = bytearray(data)
        out[offset : offset + len(value)] = value
        if fix_header_crc:
            struct.pack_into("<I", out, 124, crc32c.crc32c(bytes(out[:124])))
        return bytes(out)

    # unknown version, header size, flags, codec: refused even with a correct header CRC
    for offset, value in (
        (8, b"\x02\x00"),
        (10, b"\x81\x00"),
        (120, b"\x01\x00\x00\x00"),
        (12, b"\x02"),
    ):
        with pytest.raises(FormatError):
            ShardHeader.decode(patched(record, offset, value))
    # any flipped bit in header, payload or footer fails the record
    for offset in (0, 50, 127, 128, 159, 160, 200, 223):
        damaged = bytearray(record)
        damaged[offset] ^= 0x10
        with pytest.raises(FormatError):
            decode_record(bytes(damaged))
    # footer reserved must be zero (even with a matching record CRC)
    footer = bytearray(record[160:])
    footer[56] = 1
    struct.pack_into("<I", footer, 60, crc32c.crc32c(record[:160] + bytes(footer[:60])))
    with pytest.raises(FormatError):
        decode_record(record[:160] + bytes(footer))
    # manifest: a body that is valid JSON but not canonical is refused
    m = fixture(f"disk0/{OBJ_DIR}/manifest")
    body = m[16:-4].decode()
    for other in (body.replace(",", ", ", 1), body.replace("grüße", "gr\\u00fc\\u00dfe")):
        raw = other.encode()
        blob = b"BeeXLmf\x00" + struct.pack("<HHI", 1, 0, len(raw)) + raw
        with pytest.raises(FormatError):
            Manifest.decode(blob + struct.pack("<I", crc32c.crc32c(blob)))


# -- erasure coding ------------------------------------------------------------------------------


def test_data_shards_concatenated_are_the_content():
    out = b""
    for index, block in enumerate(BLOCKS):
        payloads = []
        for shard in range(2):
            data = shard_file(KEY, VERSION_ID, shard, PLACEMENT)
            length = -(-len(block) // 2)
            payloads.append(data[index * 224 + 128 : index * 224 + 128 + length])
        out += (payloads[0] + payloads[1])[: len(block)]
    assert out == CONTENT


def test_any_two_of_three_shards_decode_each_block():
    codec = ReedSolomon(2, 1)
    for index, block in enumerate(BLOCKS):
        length = -(-len(block) // 2)
        payloads = {
            shard: shard_file(KEY, VERSION_ID, shard, PLACEMENT)[
                index * 224 + 128 : index * 224 + 128 + length
            ]
            for shard in range(3)
        }
        # the parity is the spec's GF(2^8) combination, computed here without zfec
        assert payloads[2] == spec_shards_rs21(block)[2]
        for pair in ((0, 1), (0, 2), (1, 2)):
            assert codec.decode({s: payloads[s] for s in pair}, len(block)) == block


@pytest.mark.parametrize("k,m", [(2, 1), (2, 2), (3, 2), (4, 2), (6, 3), (10, 4)])
def test_spec_generator_matrix_is_what_the_codec_computes(k, m):
    """Section 6's construction, done from scratch, gives the codec's parity for any k, m."""
    e = spec_parity_matrix(k, m)
    if (k, m) == (2, 1):
        assert e == [[3, 2]]
    if (k, m) == (2, 2):
        assert e == [[3, 2], [5, 4]]
    block = bytes((i * 37 + 11) % 256 for i in range(k * 5 - 1))  # needs one byte of padding
    shards = [bytes(s) for s in ReedSolomon(k, m).encode(block)]
    assert b"".join(shards[:k])[: len(block)] == block
    assert b"".join(shards[:k])[len(block) :] == b"\x00"
    for r in range(m):
        expected = bytearray(5)
        for t in range(5):
            for c in range(k):
                expected[t] ^= gf_mul(e[r][c], shards[c][t])
        assert shards[k + r] == bytes(expected)


# -- make_golden.py ------------------------------------------------------------------------------


def load_tool():
    spec = importlib.util.spec_from_file_location("make_golden", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_make_golden_is_deterministic_and_reproduces_the_fixture(tmp_path):
    tool = load_tool()
    tool.main(["--out", str(tmp_path / "a")])
    tool.main(["--out", str(tmp_path / "b")])
    assert tree(tmp_path / "a") == tree(tmp_path / "b") == tree(GOLDEN)


def test_make_golden_refuses_to_overwrite_without_force(tmp_path):
    tool = load_tool()
    target = tmp_path / "golden"
    shutil.copytree(GOLDEN, target)
    victim = target / "disks" / "disk0" / "format.json"
    victim.write_bytes(b"tampered")
    with pytest.raises(SystemExit) as refused:
        tool.main(["--out", str(target)])
    assert refused.value.code not in (0, None)
    assert victim.read_bytes() == b"tampered"  # nothing was written
    tool.main(["--out", str(target), "--force"])
    assert tree(target) == tree(GOLDEN)


# -- the engine opens the fixture as a store -----------------------------------------------------


def copy_disks(tmp_path: Path) -> list[Path]:
    shutil.copytree(GOLDEN / "disks", tmp_path / "disks")
    return [tmp_path / "disks" / f"disk{i}" for i in range(3)]


async def open_golden(tmp_path: Path, disks=None) -> ObjectStore:
    return await ObjectStore.open(
        disks if disks is not None else copy_disks(tmp_path),
        meta_dir=tmp_path / "meta",
        block_size=None,
    )


async def test_engine_rebuilds_lists_and_reads_the_golden_store(tmp_path):
    store = await open_golden(tmp_path)
    try:
        assert store.diskset.set_id == SET_ID
        assert (store.diskset.k, store.diskset.m, store.diskset.block_size) == (2, 1, 64)
        assert [(b.name, b.created_ms) for b in await store.list_buckets()] == [
            (BUCKET, BUCKET_CREATED_MS)
        ]
        listing = await store.list_objects(BUCKET)
        assert [(o.key, o.size, o.etag, o.last_modified_ms) for o in listing.objects] == [
            (EMPTY_KEY, 0, "d41d8cd98f00b204e9800998ecf8427e", EMPTY_LAST_MODIFIED_MS),
            (KEY, 150, hashlib.md5(CONTENT).hexdigest(), LAST_MODIFIED_MS),
            (
                TAGGED_KEY,
                len(TAGGED_CONTENT),
                hashlib.md5(TAGGED_CONTENT).hexdigest(),
                TAGGED_LAST_MODIFIED_MS,
            ),
        ]
        info = await store.head_object(BUCKET, KEY)
        assert (info.content_type, info.version_id) == (CONTENT_TYPE, VERSION_ID)
        assert (info.user_metadata, info.http_headers) == (USER_METADATA, HTTP_HEADERS)
        reader = await store.open_object(BUCKET, KEY)
        assert await reader.read_all() == CONTENT
        assert reader.faults == []
        # a range across the block 0/1 boundary, and one inside the short last block
        assert await store.get_object_bytes(BUCKET, KEY, start=60, end=70) == CONTENT[60:71]
        assert await store.get_object_bytes(BUCKET, KEY, start=140, end=149) == CONTENT[140:]
        assert await store.get_object_bytes(BUCKET, EMPTY_KEY) == b""
        assert (await store.head_object(BUCKET, KEY)).tags == {}
        assert (await store.head_object(BUCKET, TAGGED_KEY)).tags == TAGS
        assert await store.get_object_bytes(BUCKET, TAGGED_KEY) == TAGGED_CONTENT
    finally:
        await store.close()
    # reading never changes the disks' format files
    for rel, digest in PINNED_SHA256.items():
        data = (tmp_path / "disks" / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, rel


@pytest.mark.parametrize("lost", [0, 1, 2])
async def test_engine_reads_the_golden_object_with_any_one_shard_lost(tmp_path, lost):
    disks = copy_disks(tmp_path)
    (disks[PLACEMENT[lost]] / OBJ_DIR / "part.00001").unlink()
    store = await open_golden(tmp_path, disks)
    try:
        reader = await store.open_object(BUCKET, KEY)
        assert await reader.read_all() == CONTENT
        # data shards are read first: a lost parity shard is not even touched
        expected = {(lost, DISK_IDS[PLACEMENT[lost]])} if lost < K else set()
        assert {(f.shard_index, f.disk_id) for f in reader.faults} == expected
    finally:
        await store.close()


async def test_engine_bypasses_a_flipped_bit_in_a_data_shard(tmp_path):
    disks = copy_disks(tmp_path)
    victim = disks[PLACEMENT[0]] / OBJ_DIR / "part.00001"
    data = bytearray(victim.read_bytes())
    data[224 + 128 + 5] ^= 0x01  # block 1, payload byte 5 of shard 0
    victim.write_bytes(bytes(data))
    store = await open_golden(tmp_path, disks)
    try:
        reader = await store.open_object(BUCKET, KEY)
        assert await reader.read_all() == CONTENT
        assert [(f.shard_index, f.block_index) for f in reader.faults] == [(0, 1)]
    finally:
        await store.close()


async def test_engine_refuses_wrong_bytes_when_two_shards_are_bad(tmp_path):
    from s3free.errors import DataUnavailable

    disks = copy_disks(tmp_path)
    (disks[PLACEMENT[2]] / OBJ_DIR / "part.00001").unlink()
    victim = disks[PLACEMENT[1]] / OBJ_DIR / "part.00001"
    data = bytearray(victim.read_bytes())
    data[448 + 128] ^= 0x01  # block 2 payload of shard 1
    victim.write_bytes(bytes(data))
    store = await open_golden(tmp_path, disks)
    try:
        assert await store.get_object_bytes(BUCKET, KEY, start=0, end=127) == CONTENT[:128]
        with pytest.raises(DataUnavailable):
            await store.get_object_bytes(BUCKET, KEY)
    finally:
        await store.close()


def remove_manifests(disks: list[Path]) -> None:
    for disk in disks:
        for path in disk.glob("objects/*/*/*/*/manifest"):
            path.unlink()


async def test_rebuild_ignores_versions_without_a_manifest_and_recovery_restores_them(tmp_path):
    """Spec section 13, rules 4 and 5."""

    disks = copy_disks(tmp_path)
    remove_manifests(disks)
    store = await open_golden(tmp_path, disks)
    try:
        assert (await store.list_objects(BUCKET)).objects == []
        report = await store.rebuild_index()
        assert sorted(report.headerless) == sorted(
            [
                (OBJECT_ID, version_hex(VERSION_ID)),
                (EMPTY_OBJECT_ID, version_hex(EMPTY_VERSION_ID)),
                (TAGGED_OBJECT_ID, version_hex(TAGGED_VERSION_ID)),
            ]
        )
        report = await store.recover_headerless()
        assert report.from_headers == 3 and report.unreadable == []
        lost_key = f"lost+found/{OBJECT_ID}/{VERSION_ID}"
        listing = await store.list_objects(BUCKET, prefix="lost+found/")
        assert {o.key for o in listing.objects} == {
            lost_key,
            f"lost+found/{EMPTY_OBJECT_ID}/{EMPTY_VERSION_ID}",
            f"lost+found/{TAGGED_OBJECT_ID}/{TAGGED_VERSION_ID}",
        }
        # the headers carry no tags: rule 5 restores the data, not them
        tagged = await store.head_object(
            BUCKET, f"lost+found/{TAGGED_OBJECT_ID}/{TAGGED_VERSION_ID}"
        )
        assert tagged.tags == {}
        info = await store.head_object(BUCKET, lost_key)
        assert (info.size, info.etag) == (150, hashlib.md5(CONTENT).hexdigest())
        assert info.last_modified_ms == VERSION_MS  # the version id's timestamp
        assert info.content_type == "application/octet-stream"
        assert await store.get_object_bytes(BUCKET, lost_key) == CONTENT
        m = await store.get_manifest(BUCKET, lost_key)
        golden = Manifest.decode(fixture(f"disk0/{OBJ_DIR}/manifest"))
        # everything the headers carry is restored exactly
        assert (m.object_id, m.version_id, m.placement) == (
            golden.object_id,
            golden.version_id,
            golden.placement,
        )
        assert (m.parts, m.merkle_root, m.generation) == (
            golden.parts,
            golden.merkle_root,
            golden.generation,
        )
    finally:
        await store.close()
    # and the recovered manifest is now on every disk that holds a shard
    for disk in disks:
        assert (disk / OBJ_DIR / "manifest").exists()


async def test_header_recovery_skips_a_shard_file_it_cannot_open(tmp_path):
    """Spec 13 rule 5: a shard that fails any check (here: EIO on open) is left out and the
    other shards fill in; k = 2 good shards of 3 are enough to restore the object."""

    paths = copy_disks(tmp_path)
    remove_manifests(paths)
    faulty = FaultyDisk(LocalDisk(paths[PLACEMENT[2]]))
    disks = [faulty if i == PLACEMENT[2] else LocalDisk(p) for i, p in enumerate(paths)]
    store = await open_golden(tmp_path, disks)
    try:
        faulty.fail("open_read", errno.EIO)
        report = await store.recover_headerless()
        assert report.unreadable == []
        lost_key = f"lost+found/{OBJECT_ID}/{VERSION_ID}"
        assert await store.get_object_bytes(BUCKET, lost_key) == CONTENT
    finally:
        await store.close()


async def test_rebuild_survives_a_stray_file_in_the_objects_tree(tmp_path):
    """A stray regular file (an editor's backup, a copied README) where the layout has
    directories must not stop the store from opening (spec 16.7)."""

    disks = copy_disks(tmp_path)
    (disks[0] / "objects" / "README").write_text("not an object directory\n")
    (disks[1] / "objects" / "61" / "stray").write_text("nor this\n")
    store = await open_golden(tmp_path, disks)
    try:
        keys = [o.key for o in (await store.list_objects(BUCKET)).objects]
        assert keys == [EMPTY_KEY, KEY, TAGGED_KEY]
        assert await store.get_object_bytes(BUCKET, KEY) == CONTENT
    finally:
        await store.close()
