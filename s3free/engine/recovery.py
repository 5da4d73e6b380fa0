"""Rebuilding the index from the disks, and a manifest from shard headers alone.

The rules (specs/beexl-v1.md, "Recovery rules"):
1. Buckets are the union of the bucket records found on the online disks.
2. Every object version directory is read on every online disk. Of the manifest copies of one
   version that decode, the highest generation wins.
3. Of the versions of one (bucket, key), the newest wins: greatest (last_modified_ms,
   version_id). Older ones are orphans left for the scrubber (reported, not deleted here).
4. A version directory with shard files but no manifest copy on any disk is not restored by a
   rebuild: the manifest is the commit record, and a write that crashed after its shards were
   in place but before any manifest was written must not become visible. Such versions are
   reported (`RebuildReport.headerless`) and left alone.
5. `recover_headerless` is the explicit, operator-driven recovery for them:
   `manifest_from_headers` rebuilds each one's manifest from its shard headers (layout, sizes,
   k/m, placement, generation, Merkle roots; the ETag recomputed by reading the data back).
   Headers carry no key, so the object is restored as "lost+found/<object id>/<version id>" in
   the bucket its bucket hash names, or reported when no known bucket matches.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from s3free.errors import DataUnavailable
from s3free.format.errors import FormatError
from s3free.format.header import HEADER_SIZE, ShardHeader
from s3free.format.ids import bucket_hash
from s3free.format.manifest import Manifest, PartEntry, blocks_for
from s3free.format.merkle import merkle_root
from s3free.format.record import RECORD_OVERHEAD, decode_record
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import (
    BUCKETS_DIR,
    MANIFEST_NAME,
    OBJECTS_DIR,
    parse_part_name,
    version_dir,
)

if TYPE_CHECKING:
    from s3free.engine.store import ObjectStore

log = logging.getLogger(__name__)

LOST_AND_FOUND = "lost+found"


@dataclass
class RebuildReport:
    buckets: int = 0
    objects: int = 0
    from_headers: int = 0
    orphan_versions: int = 0
    headerless: list[tuple[str, str]] = field(default_factory=list)  # (object id, version hex)
    unreadable: list[str] = field(default_factory=list)


@dataclass
class _Version:
    manifests: list[Manifest] = field(default_factory=list)
    shard_files: dict[str, list[tuple[DiskSlot, int]]] = field(default_factory=dict)
    # disk id -> [(slot, part number)]


class RecoveryMixin:
    async def rebuild_index(self: ObjectStore) -> RebuildReport:
        """Restore buckets, listing and object metadata from the disks (the truth)."""
        report = await self._run(self._rebuild_sync)
        log.info(
            "index rebuilt: %d buckets, %d objects, %d orphan versions, %d without any manifest",
            report.buckets,
            report.objects,
            report.orphan_versions,
            len(report.headerless),
        )
        return report

    async def recover_headerless(self: ObjectStore) -> RebuildReport:
        """Restore every version that has shards but no manifest anywhere into lost+found
        (rule 5). Explicit: only an operator knows those were not crashed, unacknowledged
        writes."""
        return await self._run(self._recover_headerless_sync)

    def _recover_headerless_sync(self: ObjectStore) -> RebuildReport:
        report = RebuildReport()
        versions = _scan_versions(self.diskset, report)
        by_hash = {bucket_hash(b["name"]): b["name"] for b in self.index.list_buckets()}
        for (oid, vhex), version in sorted(versions.items()):
            if version.manifests or not version.shard_files:
                continue
            try:
                manifest = manifest_from_headers(self.diskset, oid, vhex, version, by_hash)
            except (FormatError, OSError, ValueError, DataUnavailable) as exc:
                report.unreadable.append(f"{oid}/{vhex}: {exc}")
                continue
            if manifest is None:
                report.unreadable.append(f"{oid}/{vhex}: no known bucket matches its shards")
                continue
            blob = manifest.encode()
            mpath = f"{version_dir(oid, vhex)}/{MANIFEST_NAME}"
            for disk_id in version.shard_files:
                slot = self.diskset.slot_for(disk_id)
                if slot is None or not slot.online:
                    continue
                try:
                    slot.disk.write_file(mpath, blob)
                except OSError as exc:
                    report.unreadable.append(f"{slot.disk.root}/{mpath}: not written: {exc}")
            self.index.put_object(manifest.bucket, manifest.key, _listing_entry(manifest), blob)
            report.from_headers += 1
        return report

    def _rebuild_sync(self: ObjectStore) -> RebuildReport:
        report = RebuildReport()
        buckets = _scan_buckets(self.diskset, report)
        versions = _scan_versions(self.diskset, report)
        chosen: dict[tuple[str, str], Manifest] = {}
        for (oid, vhex), version in sorted(versions.items()):
            if not version.manifests:
                if version.shard_files:
                    report.headerless.append((oid, vhex))
                continue
            manifest = max(version.manifests, key=lambda m: m.generation)
            if manifest.bucket not in buckets:
                buckets[manifest.bucket] = {
                    "created_ms": manifest.last_modified_ms,
                    "name": manifest.bucket,
                    "owner": "",
                }
            ident = (manifest.bucket, manifest.key)
            current = chosen.get(ident)
            if current is None or (manifest.last_modified_ms, manifest.version_id) > (
                current.last_modified_ms,
                current.version_id,
            ):
                if current is not None:
                    report.orphan_versions += 1
                chosen[ident] = manifest
            else:
                report.orphan_versions += 1
        self.index.clear()
        self.index.load(
            buckets,
            (
                (bucket, key, _listing_entry(manifest), manifest.encode())
                for (bucket, key), manifest in chosen.items()
            ),
        )
        self.index.set_meta({"complete": True, "set_id": self.diskset.set_id})
        report.buckets = len(buckets)
        report.objects = len(chosen)
        return report


def _listing_entry(manifest: Manifest) -> dict:
    """What a listing shows of an object, kept beside its manifest in the index."""
    return {
        "etag": manifest.etag,
        "mtime": manifest.last_modified_ms,
        "size": manifest.size,
        "version": manifest.version_id,
    }


def _scan_buckets(diskset: DiskSet, report: RebuildReport) -> dict[str, dict]:
    buckets: dict[str, dict] = {}
    for slot in diskset.online_slots():
        for name in slot.disk.list_dir(BUCKETS_DIR):
            if not name.endswith(".json"):
                continue
            try:
                record = json.loads(slot.disk.read_file(f"{BUCKETS_DIR}/{name}"))
                if not isinstance(record, dict) or record.get("name") != name[:-5]:
                    raise ValueError("record does not name its bucket")
                if not isinstance(record.get("created_ms"), int):
                    raise ValueError("record has no creation time")
            except (OSError, ValueError) as exc:
                report.unreadable.append(f"{slot.disk.root}/{BUCKETS_DIR}/{name}: {exc}")
                continue
            buckets.setdefault(
                record["name"],
                {
                    "created_ms": record["created_ms"],
                    "name": record["name"],
                    "owner": str(record.get("owner", "")),
                },
            )
    return buckets


def _scan_versions(diskset: DiskSet, report: RebuildReport) -> dict[tuple[str, str], _Version]:
    versions: dict[tuple[str, str], _Version] = defaultdict(_Version)
    for slot in diskset.online_slots():
        disk = slot.disk
        for a in disk.list_dir(OBJECTS_DIR):
            for b in disk.list_dir(f"{OBJECTS_DIR}/{a}"):
                for oid in disk.list_dir(f"{OBJECTS_DIR}/{a}/{b}"):
                    odir = f"{OBJECTS_DIR}/{a}/{b}/{oid}"
                    for vhex in disk.list_dir(odir):
                        vdir = f"{odir}/{vhex}"
                        entries = disk.list_dir(vdir)
                        version = versions[(oid, vhex)]
                        if MANIFEST_NAME in entries:
                            try:
                                manifest = Manifest.decode(
                                    disk.read_file(f"{vdir}/{MANIFEST_NAME}")
                                )
                                if (manifest.object_id, manifest.version_id.replace("-", "")) != (
                                    oid,
                                    vhex,
                                ):
                                    raise FormatError("manifest sits in another object's directory")
                                version.manifests.append(manifest)
                            except (OSError, FormatError) as exc:
                                report.unreadable.append(f"{disk.root}/{vdir}/manifest: {exc}")
                        for entry in entries:
                            number = parse_part_name(entry)
                            if number is not None:
                                version.shard_files.setdefault(slot.disk_id, []).append(
                                    (slot, number)
                                )
    return versions


def manifest_from_headers(
    diskset: DiskSet,
    oid: str,
    vhex: str,
    version: _Version,
    buckets_by_hash: dict[bytes, str],
) -> Manifest | None:
    """Rebuild a manifest from the shard files of one version (rule 4 above)."""
    from s3free.engine.reader import BlockReader
    from s3free.erasure import ReedSolomon
    from s3free.storage.layout import part_path

    shard_disk: dict[int, str] = {}
    parts: dict[int, dict[int, tuple[int, bytes]]] = defaultdict(
        dict
    )  # part -> block -> (len, hash)
    first: ShardHeader | None = None
    generation = 1
    for disk_id, files in version.shard_files.items():
        for slot, number in files:
            rel = part_path(oid, vhex, number)
            try:
                handle = slot.disk.open_read(rel)
            except OSError as exc:
                log.warning("%s on %s: cannot open (%s)", rel, slot.disk.root, exc)
                continue
            try:
                size = handle.size()
                offset = 0
                while offset + RECORD_OVERHEAD <= size:
                    header = ShardHeader.decode(handle.read_at(offset, HEADER_SIZE))
                    length = RECORD_OVERHEAD + header.payload_length
                    record = decode_record(handle.read_at(offset, length))
                    h = record.header
                    if h.object_id.hex() != oid or h.version_id.hex() != vhex:
                        raise FormatError(f"{rel} on {slot.disk.root} belongs to another object")
                    first = first or h
                    shard_disk[h.shard_index] = disk_id
                    generation = max(generation, h.generation)
                    parts[h.part_number].setdefault(h.block_index, (h.block_length, h.content_hash))
                    offset += length
            except (FormatError, OSError) as exc:
                # A damaged record ends what this file can tell; other shards fill in.
                log.warning("%s on %s: %s", rel, slot.disk.root, exc)
            finally:
                handle.close()
    if first is None:
        raise FormatError("no readable shard header")
    bucket = buckets_by_hash.get(first.bucket_hash)
    if bucket is None:
        return None
    block_size = diskset.block_size
    entries = []
    for number in sorted(parts):
        blocks = parts[number]
        if sorted(blocks) != list(range(len(blocks))):
            raise FormatError(f"part {number}: blocks missing from every shard")
        size = sum(length for length, _ in blocks.values())
        if len(blocks) != blocks_for(size, block_size):
            raise FormatError(f"part {number}: block count does not fit the set's block size")
        roots = merkle_root([blocks[i][1] for i in range(len(blocks))]).hex()
        entries.append(PartEntry(number, size, "", len(blocks), roots))
    default = [s.disk_id for s in diskset.placement(bytes.fromhex(oid))]
    placement = tuple(shard_disk.get(j, default[j]) for j in range(first.k + first.m))
    vid = f"{vhex[:8]}-{vhex[8:12]}-{vhex[12:16]}-{vhex[16:20]}-{vhex[20:]}"
    draft = Manifest(
        bucket=bucket,
        key=f"{LOST_AND_FOUND}/{oid}/{vid}",
        object_id=oid,
        version_id=vid,
        size=sum(p.size for p in entries),
        etag="",
        last_modified_ms=int.from_bytes(bytes.fromhex(vhex)[:6], "big"),
        content_type="application/octet-stream",
        parts=tuple(entries),
        k=first.k,
        m=first.m,
        block_size=block_size,
        placement=placement,
        generation=generation,
        merkle_root=merkle_root([bytes.fromhex(p.merkle_root) for p in entries]).hex(),
    )
    # Headers carry no key and no ETag: recompute the MD5s by reading the data back (checked
    # block by block like any read).
    blocks = BlockReader(draft, diskset, ReedSolomon(first.k, first.m), lambda f: None)
    try:
        part_md5s = []
        for part in entries:
            digest = hashlib.md5()
            for index in range(part.blocks):
                digest.update(blocks.read_block(part, index))
            part_md5s.append(digest.digest())
    finally:
        blocks.close()
    if len(entries) == 1:
        etag = part_md5s[0].hex()
    else:
        etag = f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(entries)}"
    fixed = tuple(
        PartEntry(p.number, p.size, d.hex(), p.blocks, p.merkle_root)
        for p, d in zip(entries, part_md5s, strict=True)
    )
    from dataclasses import replace

    manifest = replace(draft, etag=etag, parts=fixed)
    manifest.validate()
    return manifest
