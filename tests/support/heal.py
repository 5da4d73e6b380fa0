"""Shared helpers for the heal tests: a small RS(3,2) store on real files, a corpus of objects,
where their shard files are, and bit flips by record region."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from s3free.engine import ObjectStore
from s3free.format import HEADER_SIZE, RECORD_OVERHEAD
from s3free.format.manifest import Manifest
from s3free.heal import HealConfig
from s3free.storage.faulty import flip_bit
from s3free.storage.layout import manifest_path, part_path
from tests.support.engine import SMALL_BLOCK, open_store, stream_of

BUCKET = "heal"
K, M = 3, 2
N = K + M
BS = SMALL_BLOCK
FULL_RECORD = RECORD_OVERHEAD + -(-BS // K)

# A quiet config for tests: no automatic scrub, no rate limit unless a test asks.
QUIET = dict(scrub_rate_mb_s=0.0, scrub_files_per_s=0.0, scrub_interval_s=0.0)


def config(**overrides) -> HealConfig:
    return HealConfig(**{**QUIET, **overrides})


def data_for(key: str, size: int) -> bytes:
    return random.Random(f"{key}/{size}").randbytes(size)


# The `store` fixture's options for the heal store (what new_store opens): a module's pytestmark.
HEAL_STORE = pytest.mark.store(n=N, k=K, m=M, bucket=BUCKET)


async def new_store(root: Path) -> ObjectStore:
    store = await open_store(root, N, k=K, m=M)
    if not await store.list_buckets():
        await store.create_bucket(BUCKET)
    return store


async def put(store: ObjectStore, key: str, size: int, salt: str = "") -> bytes:
    data = data_for(key + salt, size)
    await store.put_object(BUCKET, key, stream_of(data, 40_000))
    return data


async def put_multipart(store: ObjectStore, key: str, sizes: list[int]) -> bytes:
    upload = await store.create_multipart_upload(BUCKET, key)
    listed, whole = [], b""
    for number, size in enumerate(sizes, 1):
        data = data_for(f"{key}#{number}", size)
        info = await store.upload_part(BUCKET, key, upload, number, stream_of(data))
        listed.append((number, info.etag))
        whole += data
    await store.complete_multipart_upload(BUCKET, key, upload, listed)
    return whole


def shard_path(store: ObjectStore, manifest: Manifest, part: int, shard: int) -> Path:
    slot = store.diskset.slot_for(manifest.placement[shard])
    vhex = manifest.version_hex
    return Path(slot.disk.root) / part_path(manifest.object_id, vhex, part)


def manifest_copy(store: ObjectStore, manifest: Manifest, shard: int) -> Path:
    slot = store.diskset.slot_for(manifest.placement[shard])
    vhex = manifest.version_hex
    return Path(slot.disk.root) / manifest_path(manifest.object_id, vhex)


def flip(path: Path, block: int, region: str, block_length: int = BS, salt: int = 7) -> None:
    """Flip one bit in the header, payload or footer of record `block` of a shard file."""
    payload = -(-block_length // K)
    lo, hi = {
        "header": (0, HEADER_SIZE),
        "payload": (HEADER_SIZE, HEADER_SIZE + payload),
        "footer": (HEADER_SIZE + payload, RECORD_OVERHEAD + payload),
    }[region]
    flip_bit(path, block * FULL_RECORD + lo + salt % (hi - lo), salt % 8)


def version_files(root: Path, manifest: Manifest) -> dict[Path, bytes]:
    """Every file of the version on every disk, with its bytes (to prove nothing changed)."""
    vhex = manifest.version_hex
    out = {}
    for disk in sorted(root.glob("disk*")):
        vdir = disk / part_path(manifest.object_id, vhex, 1)
        if vdir.parent.exists():
            for p in sorted(vdir.parent.iterdir()):
                out[p] = p.read_bytes()
    return out


def quarantined(root: Path) -> list[Path]:
    return sorted(root.glob("disk*/.s3free.quarantine/*"))
