"""The engine's read path under damaged shard files, with the real store on real files.

A set of objects of mixed sizes (empty, one byte, around one 64 KiB block, ~700 KB, multipart)
is written to 9 disks as RS(6,3); then shard files are damaged as disks and bitrot damage them:
bit flips in headers, payloads and footers, truncation, zero-fill, deletion, shard files swapped
between objects and versions, whole disks wiped, the index deleted. Up to m bad shards in any
block: every object and every range reads back byte-identical, and the bad shards are reported
(reader.faults, store.recent_faults, store.fault_listeners) naming the right part, block, shard
and disk. More than m: DataUnavailable, and never a wrong byte.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3free.engine import ObjectStore, ShardFault
from s3free.errors import DataUnavailable
from s3free.format import HEADER_SIZE, RECORD_OVERHEAD, ShardHeader, decode_record
from s3free.format.manifest import Manifest
from s3free.format.record import leaf_hash
from s3free.storage.faulty import flip_bit
from s3free.storage.layout import part_path
from tests.support.engine import SMALL_BLOCK, open_store, run, shard_files, stream_of

BUCKET = "faults"
K, M = 6, 3
N = K + M
BS = SMALL_BLOCK
FULL_PAYLOAD = -(-BS // K)
FULL_RECORD = RECORD_OVERHEAD + FULL_PAYLOAD

SINGLE = {
    "empty": 0,
    "one": 1,
    "below": BS - 1,
    "exact": BS,
    "above": BS + 1,
    "big": 700_000,
    "big-twin": 700_000,
}
MULTIPART = {"multi": [100_000, BS, 1]}  # three parts: a partial block, a full one, a byte
ALL_KEYS = [*SINGLE, *MULTIPART]


def _data(key: str, size: int) -> bytes:
    return random.Random(f"{key}/{size}").randbytes(size)


# -- writing the corpus ---------------------------------------------------------------------------


async def write_corpus(store: ObjectStore) -> dict[str, bytes]:
    await store.create_bucket(BUCKET)
    expected: dict[str, bytes] = {}
    for key, size in SINGLE.items():
        data = _data(key, size)
        await store.put_object(BUCKET, key, stream_of(data, 30_000))
        expected[key] = data
    for key, sizes in MULTIPART.items():
        upload = await store.create_multipart_upload(BUCKET, key)
        listed = []
        whole = b""
        for number, size in enumerate(sizes, 1):
            data = _data(f"{key}#{number}", size)
            info = await store.upload_part(BUCKET, key, upload, number, stream_of(data))
            listed.append((number, info.etag))
            whole += data
        await store.complete_multipart_upload(BUCKET, key, upload, listed)
        expected[key] = whole
    return expected


async def new_store(root: Path) -> tuple[ObjectStore, dict[str, bytes]]:
    store = await open_store(root)
    assert (store.diskset.k, store.diskset.m, store.diskset.block_size) == (K, M, BS)
    return store, await write_corpus(store)


# -- where the shards are -------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    part: int
    index: int
    length: int  # plaintext bytes

    @property
    def offset(self) -> int:
        """Where this block's record starts in each shard file of the part."""
        return self.index * FULL_RECORD

    @property
    def record_length(self) -> int:
        return RECORD_OVERHEAD + -(-self.length // K)


def blocks_of(manifest: Manifest) -> list[Block]:
    out = []
    for part in manifest.parts:
        count = max(1, -(-part.size // BS))
        for b in range(count):
            out.append(Block(part.number, b, min(BS, part.size - b * BS)))
    return out


def shard_path(store: ObjectStore, manifest: Manifest, part: int, shard: int) -> Path:
    slot = store.diskset.slot_for(manifest.placement[shard])
    vhex = manifest.version_hex
    return Path(slot.disk.root) / part_path(manifest.object_id, vhex, part)


def object_files(store: ObjectStore, manifest: Manifest) -> list[Path]:
    vhex = manifest.version_hex
    out = []
    for slot in store.diskset.slots:
        vdir = Path(slot.disk.root) / part_path(manifest.object_id, vhex, 1)
        if vdir.parent.exists():
            out.extend(sorted(vdir.parent.iterdir()))
    return out


def snapshot(paths: list[Path]) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


def restore(snap: dict[Path, bytes]) -> None:
    for path, data in snap.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def ranges_for(size: int) -> list[tuple[int, int]]:
    """Inclusive (start, end) ranges that hit edges: first/last byte, block boundaries."""
    if size == 0:
        return []
    picks = {(0, 0), (size - 1, size - 1), (0, size - 1), (size // 3, (2 * size) // 3)}
    edges = list(range(BS, size, BS))
    for edge in edges[:3] + edges[-1:]:
        picks.add((edge - 1, edge))
        picks.add((edge, min(size - 1, edge + BS - 1)))
    return sorted(picks)


# -- reading and fault bookkeeping ----------------------------------------------------------------


async def read(store: ObjectStore, key: str, **kw) -> tuple[bytes, list[ShardFault]]:
    reader = await store.open_object(BUCKET, key, **kw)
    data = await reader.read_all()
    return data, list(reader.faults)


async def read_until_error(store: ObjectStore, key: str, **kw) -> tuple[bytes, Exception | None]:
    """Bytes yielded before a read failed, and the error (None if it did not fail)."""
    reader = await store.open_object(BUCKET, key, **kw)
    got = []
    try:
        async for chunk in reader:
            got.append(chunk)
    except DataUnavailable as exc:
        return b"".join(got), exc
    return b"".join(got), None


@dataclass
class Damage:
    """What a test broke in one object: records of single blocks, and whole shard files."""

    records: dict[tuple[int, int], set[int]] = field(default_factory=dict)  # (part, block)
    suspect_records: dict[tuple[int, int], set[int]] = field(default_factory=dict)  # may pass
    dead_files: dict[int, set[int]] = field(default_factory=dict)  # part -> unusable throughout
    suspect_files: dict[int, set[int]] = field(default_factory=dict)  # part -> maybe partly bad

    def allowed(self, part: int, block: int | None, shard: int) -> bool:
        if shard in self.dead_files.get(part, ()) or shard in self.suspect_files.get(part, ()):
            return True
        return block is not None and (
            shard in self.records.get((part, block), ())
            or shard in self.suspect_records.get((part, block), ())
        )


def check_faults(
    faults: list[ShardFault], manifest: Manifest, damage: Damage, blocks_read: list[Block]
) -> None:
    """No shard is accused that was not damaged; every damaged data shard (the reader always
    fetches data shards first) of a block it read is reported, with the right part, block,
    shard index and disk."""
    for f in faults:
        assert (f.bucket, f.key, f.version_id) == (BUCKET, manifest.key, manifest.version_id), f
        assert f.disk_id == manifest.placement[f.shard_index], f
        assert damage.allowed(f.part_number, f.block_index, f.shard_index), f
    seen_records = {(f.part_number, f.block_index, f.shard_index) for f in faults}
    seen_files = {(f.part_number, f.shard_index) for f in faults}
    for blk in blocks_read:
        for shard in damage.records.get((blk.part, blk.index), ()):
            if shard < K:
                assert (blk.part, blk.index, shard) in seen_records, (blk, shard, faults)
    parts_read = {blk.part for blk in blocks_read}
    for part, shards in damage.dead_files.items():
        if part in parts_read:
            for shard in shards:
                if shard < K:
                    assert (part, shard) in seen_files, (part, shard, faults)


async def read_everything(
    store: ObjectStore,
    expected: dict[str, bytes],
    damage: dict[str, Damage] | None = None,
    keys: list[str] | None = None,
) -> list[ShardFault]:
    """Every object whole and in ranges, compared byte for byte; faults checked per object."""
    damage = damage or {}
    all_faults: list[ShardFault] = []
    for key in keys or list(expected):
        data = expected[key]
        manifest = await store.get_manifest(BUCKET, key)
        got, faults = await read(store, key)
        assert got == data, key
        readable = [b for b in blocks_of(manifest) if b.length > 0]
        check_faults(faults, manifest, damage.get(key, Damage()), readable)
        all_faults += faults
        for start, end in ranges_for(len(data)):
            got, faults = await read(store, key, start=start, end=end)
            assert got == data[start : end + 1], (key, start, end)
            check_faults(faults, manifest, damage.get(key, Damage()), [])
            all_faults += faults
    return all_faults


async def damage_on_disks(
    store: ObjectStore, expected: dict[str, bytes], disk_ids: set[str]
) -> dict[str, Damage]:
    """Every shard file the given disks hold, for every object, counted as unusable."""
    out = {}
    for key in expected:
        manifest = await store.get_manifest(BUCKET, key)
        lost = {j for j, d in enumerate(manifest.placement) if d in disk_ids}
        out[key] = Damage(dead_files={p.number: set(lost) for p in manifest.parts})
    return out


def flip_in(path: Path, blk: Block, region: str, salt: int) -> None:
    """Flip one bit of the given record's header, payload or footer."""
    payload = blk.record_length - RECORD_OVERHEAD
    if region == "header":
        lo, hi = 0, HEADER_SIZE
    elif region == "payload":
        lo, hi = HEADER_SIZE, HEADER_SIZE + payload
    else:
        lo, hi = HEADER_SIZE + payload, blk.record_length
    offset = blk.offset + lo + salt % (hi - lo)
    flip_bit(path, offset, salt % 8)


def victims(blk: Block, count: int = M) -> list[int]:
    """count distinct shard indices that rotate with the block, mixing data and parity."""
    start = (blk.part * 5 + blk.index * 2) % N
    return [(start + 4 * i) % N for i in range(count)]


# -- tests ----------------------------------------------------------------------------------------


async def test_shard_files_have_the_documented_layout(tmp_path):
    """Pins the geometry the other tests rely on: record b of a part's shard file j starts at
    b * (overhead + ceil(block_size/k)), carries (part, b, j), and data shards hold the bytes."""

    store, expected = await new_store(tmp_path)
    try:
        for key, data in expected.items():
            manifest = await store.get_manifest(BUCKET, key)
            assert len(set(manifest.placement)) == N
            blocks = blocks_of(manifest)
            rebuilt = bytearray()
            for blk in blocks:
                pieces = []
                for j in range(N):
                    raw = shard_path(store, manifest, blk.part, j).read_bytes()
                    rec = decode_record(
                        raw[blk.offset : blk.offset + blk.record_length], verify_leaf=True
                    )
                    h = rec.header
                    assert (h.part_number, h.block_index, h.shard_index) == (
                        blk.part,
                        blk.index,
                        j,
                    )
                    assert (h.k, h.m, h.block_length) == (K, M, blk.length)
                    assert h.object_id.hex() == manifest.object_id
                    pieces.append(bytes(rec.payload))
                block_bytes = b"".join(pieces[:K])[: blk.length]
                assert blake3.blake3(block_bytes).digest() == h.content_hash
                rebuilt += block_bytes
            for part in manifest.parts:
                count = len([b for b in blocks if b.part == part.number])
                last = [b for b in blocks if b.part == part.number][-1]
                for j in range(N):
                    size = shard_path(store, manifest, part.number, j).stat().st_size
                    assert size == (count - 1) * FULL_RECORD + last.record_length
            assert bytes(rebuilt) == data, key
        parts = len(SINGLE) + sum(len(v) for v in MULTIPART.values())
        assert len(shard_files(tmp_path)) == N * parts
    finally:
        await store.close()


async def test_clean_store_reads_exactly_and_reports_nothing(tmp_path):
    store, expected = await new_store(tmp_path)
    try:
        heard: list[ShardFault] = []
        store.fault_listeners.append(heard.append)
        assert await read_everything(store, expected) == []
        multi = expected["multi"]
        sizes = MULTIPART["multi"]
        offset = 0
        for number, size in enumerate(sizes, 1):
            got, faults = await read(store, "multi", part_number=number)
            assert got == multi[offset : offset + size]
            assert faults == []
            offset += size
        await asyncio.sleep(0)
        assert heard == [] and list(store.recent_faults) == []
    finally:
        await store.close()


@pytest.mark.parametrize("region", ["header", "payload", "footer"])
async def test_bit_flips_in_up_to_m_shards_of_every_block(tmp_path, region):
    store, expected = await new_store(tmp_path)
    try:
        heard: list[ShardFault] = []
        store.fault_listeners.append(heard.append)
        damage: dict[str, Damage] = {}
        for key in expected:
            manifest = await store.get_manifest(BUCKET, key)
            d = damage[key] = Damage()
            for blk in blocks_of(manifest):
                if region == "payload" and blk.length == 0:
                    continue
                shards = victims(blk)
                d.records[(blk.part, blk.index)] = set(shards)
                for salt, j in enumerate(shards):
                    path = shard_path(store, manifest, blk.part, j)
                    flip_in(path, blk, region, salt * 977 + blk.index * 31)
        faults = await read_everything(store, expected, damage)
        # every object with data had a damaged data shard somewhere: all were reported
        assert {f.key for f in faults} == {k for k, v in expected.items() if v}
        await asyncio.sleep(0)
        assert Counter(store.recent_faults) == Counter(faults)
        assert Counter(heard) == Counter(faults)
        assert all(f.block_index is not None for f in faults)
    finally:
        await store.close()


@pytest.mark.parametrize("how", ["truncate", "zero", "delete"])
async def test_damaged_shard_files(tmp_path, how):
    store, expected = await new_store(tmp_path)
    try:
        damage: dict[str, Damage] = {}
        for n_key, key in enumerate(expected):
            manifest = await store.get_manifest(BUCKET, key)
            d = damage[key] = Damage()
            for part in manifest.parts:
                shards = [(n_key + part.number + 3 * i) % N for i in range(M)]
                for i, j in enumerate(shards):
                    path = shard_path(store, manifest, part.number, j)
                    size = path.stat().st_size
                    if how == "delete":
                        path.unlink()
                        d.dead_files.setdefault(part.number, set()).add(j)
                    elif how == "zero":
                        path.write_bytes(bytes(size))
                        d.dead_files.setdefault(part.number, set()).add(j)
                    else:
                        cut = [0, HEADER_SIZE // 2, size - 1, FULL_RECORD + 200][i % 4]
                        os.truncate(path, min(cut, size - 1))
                        if min(cut, size - 1) < FULL_RECORD or size <= FULL_RECORD:
                            d.dead_files.setdefault(part.number, set()).add(j)
                        else:
                            d.suspect_files.setdefault(part.number, set()).add(j)
        faults = await read_everything(store, expected, damage)
        assert faults
        if how == "delete":
            assert all(f.block_index is None for f in faults)
            assert all("missing" in f.reason or "unusable" in f.reason for f in faults)
    finally:
        await store.close()


async def test_shard_files_swapped_between_objects_are_caught_by_their_ids(tmp_path):
    """Two objects of the same size have records of the same lengths and valid CRCs; only the
    identity in the headers tells a swapped shard file from the right one."""

    store, expected = await new_store(tmp_path)
    try:
        a = await store.get_manifest(BUCKET, "big")
        b = await store.get_manifest(BUCKET, "big-twin")
        swapped = [0, 4, 8]
        for j in swapped:
            pa, pb = shard_path(store, a, 1, j), shard_path(store, b, 1, j)
            tmp = pa.with_name("swap")
            os.replace(pa, tmp)
            os.replace(pb, pa)
            os.replace(tmp, pb)
        # and two shard files of one object swapped with each other
        c = await store.get_manifest(BUCKET, "above")
        p1, p2 = shard_path(store, c, 1, 1), shard_path(store, c, 1, 2)
        d1, d2 = p1.read_bytes(), p2.read_bytes()
        assert len(d1) == len(d2)
        p1.write_bytes(d2)
        p2.write_bytes(d1)
        damage = {
            "big": Damage(dead_files={1: set(swapped)}),
            "big-twin": Damage(dead_files={1: set(swapped)}),
            "above": Damage(dead_files={1: {1, 2}}),
        }
        faults = await read_everything(store, expected, damage)
        assert faults
        for f in faults:
            assert f.block_index is not None  # each record decoded; its identity failed
            assert "identity" in f.reason, f
    finally:
        await store.close()


async def test_stale_shard_from_the_previous_version_is_refused(tmp_path):
    """An overwrite with a body of the same size: same object id, same placement, same record
    lengths; a shard file of the old version put in place of the new one differs only in the
    version id of its headers."""

    store, expected = await new_store(tmp_path)
    try:
        old = await store.get_manifest(BUCKET, "big")
        stale = {j: shard_path(store, old, 1, j).read_bytes() for j in range(N)}
        new_data = _data("big-v2", len(expected["big"]))
        await store.put_object(BUCKET, "big", stream_of(new_data))
        await store.wait_idle()
        new = await store.get_manifest(BUCKET, "big")
        assert new.placement == old.placement and new.version_id != old.version_id
        for j in (1, 5, 7):
            shard_path(store, new, 1, j).write_bytes(stale[j])
        expected["big"] = new_data
        faults = await read_everything(
            store, expected, {"big": Damage(dead_files={1: {1, 5, 7}})}, keys=["big"]
        )
        assert {f.shard_index for f in faults} >= {1, 5}
        assert all("identity" in f.reason for f in faults)
        # four stale shards are one too many: refused, not mixed with old bytes
        shard_path(store, new, 1, 0).write_bytes(stale[0])
        got, err = await read_until_error(store, "big")
        assert isinstance(err, DataUnavailable)
        assert got == new_data[: len(got)]
    finally:
        await store.close()


async def test_a_wiped_disk_while_open_and_after_reopening(tmp_path):
    store, expected = await new_store(tmp_path)
    victim = Path(store.diskset.slots[3].disk.root)
    victim_id = store.diskset.slots[3].disk_id
    try:
        for entry in victim.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        damage = await damage_on_disks(store, expected, {victim_id})
        faults = await read_everything(store, expected, damage)
        assert faults and all(f.disk_id == victim_id for f in faults)
    finally:
        await store.close()
    store = await open_store(tmp_path)
    try:
        slot = store.diskset.slots[3]
        assert Path(slot.disk.root) == victim and not slot.online
        damage = await damage_on_disks(store, expected, {victim_id})
        faults = await read_everything(store, expected, damage)
        assert faults and all(f.disk_id == victim_id for f in faults)
        assert all(f.block_index is None for f in faults)
        holds_data = set()
        for key, data in expected.items():
            placement = (await store.get_manifest(BUCKET, key)).placement
            if data and placement.index(victim_id) < K:
                holds_data.add(key)
        assert holds_data  # nine disks, nine shards: the disk holds data of some objects
        assert {f.key for f in faults if "offline" in f.reason} == holds_data
        assert list(victim.iterdir()) == []  # an unformatted disk is left alone
    finally:
        await store.close()


async def test_m_disks_lose_their_objects_then_one_more(tmp_path):
    store, expected = await new_store(tmp_path)
    try:
        gone = [store.diskset.slots[p] for p in (0, 4, 8)]
        for slot in gone:
            shutil.rmtree(Path(slot.disk.root) / "objects")
        gone_ids = {s.disk_id for s in gone}
        damage = await damage_on_disks(store, expected, gone_ids)
        faults = await read_everything(store, expected, damage)
        assert {f.disk_id for f in faults} <= gone_ids
        shutil.rmtree(Path(store.diskset.slots[2].disk.root) / "objects")
        for key, data in expected.items():
            if not data:
                assert await store.get_object_bytes(BUCKET, key) == b""
                continue
            got, err = await read_until_error(store, key)
            assert isinstance(err, DataUnavailable), key
            assert got == b""  # the very first block is already beyond repair
            with pytest.raises(DataUnavailable):
                await store.get_object_bytes(BUCKET, key, start=len(data) - 1)
    finally:
        await store.close()


async def test_index_deleted_is_rebuilt_from_the_disks(tmp_path):
    store, expected = await new_store(tmp_path)
    before = {k: await store.head_object(BUCKET, k) for k in expected}
    await store.close()
    shutil.rmtree(tmp_path / "meta")
    store = await open_store(tmp_path)
    try:
        assert {k: await store.head_object(BUCKET, k) for k in expected} == before
        listing = await store.list_objects(BUCKET)
        assert [o.key for o in listing.objects] == sorted(expected)
        await read_everything(store, expected)
    finally:
        await store.close()


async def test_index_deleted_with_damaged_manifests_and_shards(tmp_path):
    """The index is gone, three disks' manifest copies are rotten and three shard files of
    every part are missing: the copies that decode rebuild the index, the shards the data."""

    store, expected = await new_store(tmp_path)
    before = {k: await store.head_object(BUCKET, k) for k in expected}
    damage = {}
    for n_key, key in enumerate(expected):
        manifest = await store.get_manifest(BUCKET, key)
        vhex = manifest.version_hex
        for j in range(M):
            slot = store.diskset.slot_for(manifest.placement[(n_key + j) % N])
            mpath = Path(slot.disk.root) / part_path(manifest.object_id, vhex, 1)
            flip_bit(mpath.with_name("manifest"), 20 + j, j)
        lost = {(n_key + 4 + j) % N for j in range(M)}
        for part in manifest.parts:
            for j in lost:
                shard_path(store, manifest, part.number, j).unlink()
        damage[key] = Damage(dead_files={p.number: lost for p in manifest.parts})
    await store.close()
    shutil.rmtree(tmp_path / "meta")
    store = await open_store(tmp_path)
    try:
        assert {k: await store.head_object(BUCKET, k) for k in expected} == before
        await read_everything(store, expected, damage)
    finally:
        await store.close()


async def test_more_than_m_bad_shards_in_one_block(tmp_path):
    store, expected = await new_store(tmp_path)
    try:
        big = await store.get_manifest(BUCKET, "big")
        blk = next(b for b in blocks_of(big) if b.index == 5)
        for salt, j in enumerate((0, 2, 6, 7)):
            flip_in(shard_path(store, big, 1, j), blk, "payload", salt * 101)
        data = expected["big"]
        got, err = await read_until_error(store, "big")
        assert isinstance(err, DataUnavailable)
        assert "block 5" in str(err)
        assert got == data[: len(got)] and len(got) <= 5 * BS
        # ranges clear of block 5 still read; any range touching it is refused
        assert await store.get_object_bytes(BUCKET, "big", end=5 * BS - 1) == data[: 5 * BS]
        assert await store.get_object_bytes(BUCKET, "big", start=6 * BS) == data[6 * BS :]
        for start, end in ((5 * BS, 5 * BS), (5 * BS - 1, 5 * BS), (6 * BS - 1, 6 * BS)):
            with pytest.raises(DataUnavailable):
                await store.get_object_bytes(BUCKET, "big", start=start, end=end)

        # multipart: part 2 beyond repair, parts 1 and 3 still read
        multi = await store.get_manifest(BUCKET, "multi")
        p2 = next(b for b in blocks_of(multi) if b.part == 2)
        for salt, j in enumerate((1, 3, 5, 8)):
            flip_in(shard_path(store, multi, 2, j), p2, "header", salt * 13)
        sizes = MULTIPART["multi"]
        whole = expected["multi"]
        assert await store.get_object_bytes(BUCKET, "multi", part_number=1) == whole[: sizes[0]]
        assert await store.get_object_bytes(BUCKET, "multi", part_number=3) == whole[-1:]
        with pytest.raises(DataUnavailable):
            await store.get_object_bytes(BUCKET, "multi", part_number=2)
        with pytest.raises(DataUnavailable):
            await store.get_object_bytes(BUCKET, "multi")

        # small objects: four of nine shard files gone
        for key in ("one", "below", "exact", "above"):
            manifest = await store.get_manifest(BUCKET, key)
            for j in (1, 2, 3, 4):
                shard_path(store, manifest, 1, j).unlink()
            with pytest.raises(DataUnavailable):
                await store.get_object_bytes(BUCKET, key)
        # the untouched objects are unaffected
        await read_everything(store, expected, keys=["empty", "big-twin"])
    finally:
        await store.close()


def _reseal(path: Path, blk: Block, shard: int, payload_bit: int, *, new_leaf: bool) -> bool:
    """Change one payload bit and recompute the record CRC (and optionally the footer's leaf)
    so the record passes the cheap checks: rot that happened before the checksums were made
    (a RAM error in the writer, say). True if the bit carries block bytes; False if it is in
    a data shard's zero padding, which the fast path (all data shards good) never looks at."""
    raw = bytearray(path.read_bytes())
    rec = raw[blk.offset : blk.offset + blk.record_length]
    payload_len = blk.record_length - RECORD_OVERHEAD
    bit = payload_bit % (payload_len * 8)
    meaningful = shard >= K or shard * payload_len + bit // 8 < blk.length
    rec[HEADER_SIZE + bit // 8] ^= 1 << (bit % 8)
    foot = HEADER_SIZE + payload_len
    if new_leaf:
        rec[foot + 24 : foot + 56] = leaf_hash(bytes(rec[HEADER_SIZE:foot]))
    rec[-4:] = crc32c.crc32c(bytes(rec[:-4])).to_bytes(4, "little")
    raw[blk.offset : blk.offset + blk.record_length] = rec
    path.write_bytes(bytes(raw))
    assert decode_record(bytes(rec)).header.block_index == blk.index
    return meaningful


@pytest.mark.parametrize("new_leaf", [False, True], ids=["crc-resealed", "leaf-and-crc-resealed"])
async def test_corruption_that_passes_the_crc_is_caught_by_the_hashes(tmp_path, new_leaf):
    """Up to m records per block with a changed payload under a valid CRC (and, the hardest
    case, a valid leaf too): only the block's BLAKE3 content hash can tell. Exact bytes back,
    the changed shards reported (those whose change reaches block bytes; a flipped padding
    bit is left to the scrubber's leaf check); one more and the read is refused."""

    store, expected = await new_store(tmp_path)
    try:
        damage: dict[str, Damage] = {}
        for key in ("one", "above", "big", "multi"):
            manifest = await store.get_manifest(BUCKET, key)
            d = damage[key] = Damage()
            for blk in blocks_of(manifest):
                for salt, j in enumerate(victims(blk)):
                    path = shard_path(store, manifest, blk.part, j)
                    bit = salt * 7919 + blk.index
                    if _reseal(path, blk, j, bit, new_leaf=new_leaf):
                        d.records.setdefault((blk.part, blk.index), set()).add(j)
                    else:
                        d.suspect_records.setdefault((blk.part, blk.index), set()).add(j)
        await read_everything(store, expected, damage, keys=list(damage))
        # one more forged data shard in block 0 of "above": four bad shards, refused
        above = await store.get_manifest(BUCKET, "above")
        blk = blocks_of(above)[0]
        extra = next(j for j in range(K) if j not in victims(blk))
        assert _reseal(shard_path(store, above, 1, extra), blk, extra, 3, new_leaf=new_leaf)
        got, err = await read_until_error(store, "above")
        assert isinstance(err, DataUnavailable)
        assert got == b""
    finally:
        await store.close()


# -- random damage (hypothesis) -------------------------------------------------------------------

NONEMPTY = [k for k in ALL_KEYS if k != "empty"]


@st.composite
def damage_plans(draw):
    """A key, per part a set of whole shard files to break (and how), per block a set of
    records to flip one bit in; never more than m bad shards in any block."""
    key = draw(st.sampled_from(NONEMPTY), label="key")
    sizes = MULTIPART.get(key, [SINGLE.get(key, 0)])
    files: dict[int, tuple[list[int], str, int]] = {}
    flips: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for number, size in enumerate(sizes, 1):
        dead = draw(st.lists(st.integers(0, N - 1), max_size=M, unique=True), label="files")
        how = draw(st.sampled_from(["delete", "zero", "truncate"]), label="how")
        cut = draw(st.integers(0, 10**6), label="cut")
        files[number] = (dead, how, cut)
        others = [j for j in range(N) if j not in dead]
        for b in range(max(1, -(-size // BS))):
            chosen = draw(
                st.lists(st.sampled_from(others), max_size=M - len(dead), unique=True),
                label="records",
            )
            flips[(number, b)] = [(j, draw(st.integers(0, 10**7), label="bit")) for j in chosen]
    start = draw(st.integers(0, 10**7), label="range start")
    length = draw(st.integers(1, 3 * BS), label="range length")
    return key, files, flips, start, length


def test_random_damage_within_m_per_block_reads_exactly(tmp_path):
    run(_setup_only(tmp_path))
    expected = _expected_corpus()

    @settings(max_examples=25, deadline=None)
    @given(damage_plans())
    def check(plan):
        run(_apply_and_read(tmp_path, expected, plan))

    check()


async def _setup_only(root: Path) -> None:
    store, _ = await new_store(root)
    await store.close()


def _expected_corpus() -> dict[str, bytes]:
    out = {k: _data(k, s) for k, s in SINGLE.items()}
    for key, sizes in MULTIPART.items():
        out[key] = b"".join(_data(f"{key}#{n}", s) for n, s in enumerate(sizes, 1))
    return out


async def _apply_and_read(root: Path, expected: dict[str, bytes], plan) -> None:
    key, files, flips, start, length = plan
    store = await open_store(root)
    try:
        manifest = await store.get_manifest(BUCKET, key)
        snap = snapshot(object_files(store, manifest))
        damage = Damage()
        blocks = {(b.part, b.index): b for b in blocks_of(manifest)}
        try:
            for part, (dead, how, cut) in files.items():
                for j in dead:
                    path = shard_path(store, manifest, part, j)
                    if how == "delete":
                        path.unlink()
                        damage.dead_files.setdefault(part, set()).add(j)
                    elif how == "zero":
                        path.write_bytes(bytes(path.stat().st_size))
                        damage.dead_files.setdefault(part, set()).add(j)
                    else:
                        os.truncate(path, cut % path.stat().st_size)
                        damage.suspect_files.setdefault(part, set()).add(j)
            for (part, b), chosen in flips.items():
                blk = blocks[(part, b)]
                for j, bit in chosen:
                    flip_bit(
                        shard_path(store, manifest, part, j),
                        blk.offset + (bit // 8) % blk.record_length,
                        bit % 8,
                    )
                    damage.records.setdefault((part, b), set()).add(j)
            data = expected[key]
            got, faults = await read(store, key)
            assert got == data
            check_faults(faults, manifest, damage, list(blocks.values()))
            lo = start % len(data)
            hi = min(len(data) - 1, lo + length - 1)
            got, faults = await read(store, key, start=lo, end=hi)
            assert got == data[lo : hi + 1]
            check_faults(faults, manifest, damage, [])
        finally:
            restore(snap)
    finally:
        await store.close()


@st.composite
def overload_plans(draw):
    """m+1 (or more) bad shards in one block of one object, and a range to read."""
    key = draw(st.sampled_from(NONEMPTY), label="key")
    sizes = MULTIPART.get(key, [SINGLE.get(key, 0)])
    part = draw(st.integers(1, len(sizes)), label="part")
    block = draw(st.integers(0, max(1, -(-sizes[part - 1] // BS)) - 1), label="block")
    shards = draw(st.lists(st.integers(0, N - 1), min_size=M + 1, max_size=N, unique=True))
    bits = draw(st.lists(st.integers(0, 10**7), min_size=len(shards), max_size=len(shards)))
    start = draw(st.integers(0, 10**7), label="range start")
    length = draw(st.integers(1, 3 * BS), label="range length")
    return key, part, block, list(zip(shards, bits, strict=True)), start, length


def test_random_overload_is_refused_and_never_wrong(tmp_path):
    run(_setup_only(tmp_path))
    expected = _expected_corpus()

    @settings(max_examples=20, deadline=None)
    @given(overload_plans())
    def check(plan):
        run(_overload_and_read(tmp_path, expected, plan))

    check()


async def _overload_and_read(root: Path, expected: dict[str, bytes], plan) -> None:
    key, part, block, bad, start, length = plan
    store = await open_store(root)
    try:
        manifest = await store.get_manifest(BUCKET, key)
        snap = snapshot(object_files(store, manifest))
        blk = next(b for b in blocks_of(manifest) if (b.part, b.index) == (part, block))
        try:
            for j, bit in bad:
                path = shard_path(store, manifest, part, j)
                flip_bit(path, blk.offset + (bit // 8) % blk.record_length, bit % 8)
            data = expected[key]
            part_start = sum(p.size for p in manifest.parts if p.number < part)
            bad_lo = part_start + block * BS
            bad_hi = bad_lo + blk.length - 1
            lo = start % len(data)
            hi = min(len(data) - 1, lo + length - 1)
            got, err = await read_until_error(store, key, start=lo, end=hi)
            assert got == data[lo : lo + len(got)]  # whatever came out was right
            if hi < bad_lo or lo > bad_hi:
                assert err is None and got == data[lo : hi + 1]
            else:
                assert isinstance(err, DataUnavailable)
                assert lo + len(got) <= max(lo, bad_lo)
        finally:
            restore(snap)
    finally:
        await store.close()


async def test_records_swapped_within_a_shard_file_are_refused(tmp_path):
    """Records of blocks 1 and 2 swapped inside three shard files (all CRCs valid, same
    lengths): the block index in the header refuses them; they are not decoded as the wrong
    block."""

    store, expected = await new_store(tmp_path)
    try:
        big = await store.get_manifest(BUCKET, "big")
        blocks = blocks_of(big)
        for j in (0, 3, 6):
            path = shard_path(store, big, 1, j)
            raw = bytearray(path.read_bytes())
            b1, b2 = blocks[1], blocks[2]
            rec1 = bytes(raw[b1.offset : b1.offset + b1.record_length])
            rec2 = bytes(raw[b2.offset : b2.offset + b2.record_length])
            assert ShardHeader.decode(rec1).block_index == 1
            raw[b1.offset : b1.offset + b1.record_length] = rec2
            raw[b2.offset : b2.offset + b2.record_length] = rec1
            path.write_bytes(bytes(raw))
        damage = {"big": Damage(records={(1, 1): {0, 3, 6}, (1, 2): {0, 3, 6}})}
        faults = await read_everything(store, expected, damage, keys=["big"])
        assert {(f.block_index, f.shard_index) for f in faults} >= {(1, 0), (2, 0), (1, 3)}
    finally:
        await store.close()
