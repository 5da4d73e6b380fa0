"""Rebuilding the index from the disks, and a manifest from shard headers alone.

The rules (specs/beexl-v1.md, "Recovery rules"):
1. Buckets: per name, of the bucket record copies found on the online disks the newest wins
   (highest generation, format/records.py); a newest copy that is a tombstone means deleted.
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
6. Uploads in progress are restored from `multipart/<upload>/upload.json` and their staged part
   files: each part's size, blocks and Merkle root from the headers, its MD5 (the part ETag) by
   reading it back. An upload whose bucket no longer exists is reported and left alone. An
   upload whose version is the one restored for its key was completed (a crash came after the
   switch, before the upload was dropped): it is not restored and its directory is removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from s3free.engine.buckets import Buckets, parse_bucket_record
from s3free.engine.fanout import RunIO
from s3free.engine.manifestcache import Manifests
from s3free.engine.reaper import VersionReaper
from s3free.errors import DataUnavailable
from s3free.format import records
from s3free.format.errors import FormatError
from s3free.format.header import HEADER_SIZE, ShardHeader
from s3free.format.ids import bucket_hash, version_hex, version_id_from_hex
from s3free.format.manifest import MAX_TAGS, Manifest, PartEntry, blocks_for, check_tags
from s3free.format.merkle import merkle_root
from s3free.format.record import RECORD_OVERHEAD, decode_record
from s3free.meta.index import Index, ListingEntry, PartRecord, UploadRecord
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import (
    BUCKETS_DIR,
    MANIFEST_NAME,
    MULTIPART_DIR,
    OBJECTS_DIR,
    UPLOAD_RECORD,
    manifest_path,
    parse_inline_name,
    parse_part_name,
    part_path,
    upload_part_path,
    version_dir,
)

log = logging.getLogger(__name__)

LOST_AND_FOUND = "lost+found"


@dataclass
class RebuildReport:
    buckets: int = 0
    objects: int = 0
    from_headers: int = 0
    orphan_versions: int = 0
    uploads: int = 0
    headerless: list[tuple[str, str]] = field(default_factory=list)  # (object id, version hex)
    unreadable: list[str] = field(default_factory=list)


@dataclass
class ScannedVersion:
    """What the online disks hold of one version: its manifest copies and shard files."""

    manifests: list[Manifest] = field(default_factory=list)
    shard_files: dict[str, list[tuple[DiskSlot, int]]] = field(default_factory=dict)
    # disk id -> [(slot, part number)]


class Recovery:
    """Rebuilding the index from the disks (rules 1-4 and 6), and rule 5 on request."""

    def __init__(
        self,
        diskset: DiskSet,
        index: Index,
        run_io: RunIO,
        *,
        buckets: Buckets,
        manifests: Manifests,
        reaper: VersionReaper,
        forget_upload: Callable[[str], Awaitable[None]],
        delete_current: Callable[[Manifest], Awaitable[None]],
    ) -> None:
        self.diskset = diskset
        self.index = index
        self.run_io = run_io
        self.buckets = buckets
        self.manifests = manifests
        self.reaper = reaper
        self.forget_upload = forget_upload
        self.delete_current = delete_current

    async def replay_journal(self) -> None:
        """Finish what a crash interrupted: remove every journalled version the index does not
        point at (a write that never switched, a replaced version not yet removed), complete
        a delete that was in flight, and forget the upload of a CompleteMultipartUpload that
        switched but was killed before it dropped its upload (else the upload stays listed
        beside the object it became)."""
        for version_id, entry in await self.run_io(self.index.journal):
            current = await self.run_io(self.manifests.load, entry.bucket, entry.key)
            if current is not None and current.version_id == version_id:
                if not entry.deleting:
                    if entry.upload_id:
                        await self.forget_upload(entry.upload_id)
                    await self.run_io(self.index.drop_journal, version_id)
                    continue
                await self.delete_current(current)
            elif entry.upload_id and await self.run_io(self.index.get_upload, entry.upload_id):
                # A complete that crashed before its switch: drop only the manifests, so the
                # moved parts stay where a retry of the complete finds them.
                mpath = manifest_path(entry.object_id, version_hex(version_id))
                online = self.diskset.online_slots_of(entry.placement)
                await asyncio.gather(
                    *(self.run_io(s.disk.remove, mpath) for s in online), return_exceptions=True
                )
                await self.run_io(self.index.drop_journal, version_id)
                continue
            await self.reaper.remove_files(entry.object_id, version_id, entry.placement)

    async def rebuild_index(self) -> RebuildReport:
        """Restore buckets, listing and object metadata from the disks (the truth)."""
        report = await self.run_io(self._rebuild_sync)
        await self.buckets.reload()
        log.info(
            "index rebuilt: %d buckets, %d objects, %d orphan versions, %d without any manifest",
            report.buckets,
            report.objects,
            report.orphan_versions,
            len(report.headerless),
        )
        return report

    async def recover_headerless(self) -> RebuildReport:
        """Restore every version that has shards but no manifest anywhere into lost+found
        (rule 5). Explicit: only an operator knows those were not crashed, unacknowledged
        writes."""
        return await self.run_io(self._recover_headerless_sync)

    def _recover_headerless_sync(self) -> RebuildReport:
        report = RebuildReport()
        versions = scan_versions(self.diskset, report)
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
            entry = ListingEntry.from_manifest(manifest)
            self.index.put_object(manifest.bucket, manifest.key, entry, blob)
            report.from_headers += 1
        return report

    def _rebuild_sync(self) -> RebuildReport:
        report = RebuildReport()
        tombstones: dict[str, dict] = {}
        buckets = scan_buckets(self.diskset, report, tombstones)
        versions = scan_versions(self.diskset, report)
        picked = pick_current(versions, buckets, tombstones)
        report.headerless.extend(picked.headerless)
        report.orphan_versions += picked.older + picked.deleted
        chosen = picked.chosen
        self.index.clear()
        self.index.load(
            buckets,
            (
                (bucket, key, ListingEntry.from_manifest(manifest), manifest.encode())
                for (bucket, key), manifest in chosen.items()
            ),
        )
        for record, files in scan_uploads(self.diskset, report):
            current = chosen.get((record.bucket, record.key))
            if current is not None and current.version_id == record.version_id:
                _remove_completed_upload(self.diskset, record.upload_id, report)
                continue
            if record.bucket not in buckets:
                report.unreadable.append(f"upload {record.upload_id}: bucket is gone")
                continue
            try:
                parts = restore_upload_parts(self.diskset, record, files) if files else []
            except (FormatError, OSError, ValueError, DataUnavailable) as exc:
                report.unreadable.append(f"upload {record.upload_id}: {exc}")
                parts = []
            self.index.put_upload(record.upload_id, record)
            for part in parts:
                self.index.put_part(record.upload_id, part)
            report.uploads += 1
        self.index.set_meta({"complete": True, "set_id": self.diskset.set_id})
        report.buckets = len(buckets)
        report.objects = len(chosen)
        return report


def scan_buckets(
    diskset: DiskSet, report: RebuildReport, tombstones: dict[str, dict] | None = None
) -> dict[str, dict]:
    """Per bucket name the newest record copy on the online disks (rule 1): live ones are
    returned, tombstones (deleted buckets) put in `tombstones`."""
    copies: dict[str, list[tuple[dict, bytes]]] = defaultdict(list)
    for slot in diskset.online_slots():
        for name in slot.disk.list_dir(BUCKETS_DIR):
            if not name.endswith(".json"):
                continue
            try:
                blob = slot.disk.read_file(f"{BUCKETS_DIR}/{name}")
                copies[name[:-5]].append((parse_bucket_record(name[:-5], blob), blob))
            except (OSError, ValueError) as exc:
                report.unreadable.append(f"{slot.disk.root}/{BUCKETS_DIR}/{name}: {exc}")
    buckets: dict[str, dict] = {}
    for name, found in sorted(copies.items()):
        record, _ = records.newest(found)
        if records.is_tombstone(record):
            if tombstones is not None:
                tombstones[name] = record
            continue
        buckets[name] = {
            "acl": record.get("acl", "private")
            if record.get("acl") in ("private", "public-read")
            else "private",
            "created_ms": record["created_ms"],
            "name": record["name"],
            "owner": str(record.get("owner", "")),
        }
        if records.generation_of(record):
            buckets[name]["generation"] = records.generation_of(record)
        if record.get("tags"):  # checked by parse_bucket_record
            buckets[name]["tags"] = dict(record["tags"])
    return buckets


def _remove_completed_upload(diskset: DiskSet, upload_id: str, report: RebuildReport) -> None:
    """A completed upload's leftover directory (rule 6): removed, so it is not restored."""
    rel = f"{MULTIPART_DIR}/{upload_id}"
    for slot in diskset.online_slots():
        try:
            slot.disk.remove_tree(rel)
        except OSError as exc:
            report.unreadable.append(f"{slot.disk.root}/{rel}: not removed: {exc}")


def scan_uploads(
    diskset: DiskSet, report: RebuildReport
) -> list[tuple[UploadRecord, list[tuple[DiskSlot, int]]]]:
    """(upload record, staged part files) for every upload directory on the online disks."""
    found: dict[str, UploadRecord] = {}
    files: dict[str, list[tuple[DiskSlot, int]]] = defaultdict(list)
    for slot in diskset.online_slots():
        for upload_id in slot.disk.list_dir(MULTIPART_DIR):
            udir = f"{MULTIPART_DIR}/{upload_id}"
            for entry in slot.disk.list_dir(udir):
                number = parse_part_name(entry)
                if number is not None:
                    files[upload_id].append((slot, number))
                elif entry == UPLOAD_RECORD and upload_id not in found:
                    try:
                        record = json.loads(slot.disk.read_file(f"{udir}/{UPLOAD_RECORD}"))
                        _check_upload_fields(record)
                        if record["upload_id"] != upload_id:
                            raise ValueError("record names another upload")
                        if len(record["placement"]) != diskset.n:
                            raise ValueError("placement does not fit the set")
                    except (OSError, ValueError) as exc:
                        report.unreadable.append(f"{slot.disk.root}/{udir}/{UPLOAD_RECORD}: {exc}")
                        continue
                    found[upload_id] = UploadRecord.from_json(record)
    return [(record, files.get(upload_id, [])) for upload_id, record in sorted(found.items())]


def _check_upload_fields(record: object) -> None:
    """ValueError unless an upload.json holds exactly the record's fields (the optional ones
    may be absent), each of its JSON type (rule 6)."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    optional = set(record) & set(UploadRecord.OPTIONAL)
    if set(record) - optional != set(UploadRecord.FIELDS):
        raise ValueError("unexpected fields")
    for name, kind in {**UploadRecord.FIELDS, **UploadRecord.OPTIONAL}.items():
        if name in record and not isinstance(record[name], kind):
            raise ValueError(f"{name} is not a {kind.__name__}")
    if "tags" in record:
        try:
            check_tags(record["tags"], MAX_TAGS)
        except FormatError as exc:
            raise ValueError(str(exc)) from None


@dataclass
class Picked:
    """What rules 2-4 make of scanned versions."""

    chosen: dict[tuple[str, str], Manifest] = field(default_factory=dict)  # (bucket, key)
    headerless: list[tuple[str, str]] = field(default_factory=list)  # shards, no manifest
    older: int = 0  # versions that lost to a newer one of the same key
    buckets_recreated: int = 0
    deleted: int = 0  # versions in a bucket deleted after them (stale, left for the scrubber)


def pick_current(
    versions: dict[tuple[str, str], ScannedVersion],
    buckets: dict[str, dict],
    tombstones: dict[str, dict] | None = None,
) -> Picked:
    """Per version the highest-generation manifest copy, per key the newest version (rule 3);
    a bucket named only by manifests is added to `buckets`, unless its tombstone is at least
    as new as the manifest (a deleted bucket was empty: such manifests are stale copies)."""
    picked = Picked()
    tombstones = tombstones or {}
    for (oid, vhex), version in sorted(versions.items()):
        if not version.manifests:
            if version.shard_files:
                picked.headerless.append((oid, vhex))
            continue
        manifest = max(version.manifests, key=lambda m: m.generation)
        if manifest.bucket not in buckets:
            tomb = tombstones.get(manifest.bucket)
            if tomb is not None and manifest.last_modified_ms <= tomb["deleted_ms"]:
                picked.deleted += 1
                continue
            buckets[manifest.bucket] = {
                "acl": "private",
                "created_ms": manifest.last_modified_ms,
                "name": manifest.bucket,
                "owner": "",
            }
            if tomb is not None:  # re-created after the delete: above the tombstone
                buckets[manifest.bucket]["generation"] = records.generation_of(tomb) + 1
            picked.buckets_recreated += 1
        ident = (manifest.bucket, manifest.key)
        current = picked.chosen.get(ident)
        if current is not None:
            picked.older += 1
        if current is None or (manifest.last_modified_ms, manifest.version_id) > (
            current.last_modified_ms,
            current.version_id,
        ):
            picked.chosen[ident] = manifest
    return picked


def scan_versions(diskset: DiskSet, report: RebuildReport) -> dict[tuple[str, str], ScannedVersion]:
    versions: dict[tuple[str, str], ScannedVersion] = {}
    for slot in diskset.online_slots():
        disk = slot.disk
        for a in disk.list_dir(OBJECTS_DIR):
            for b in disk.list_dir(f"{OBJECTS_DIR}/{a}"):
                scan_object_dir(slot, f"{OBJECTS_DIR}/{a}/{b}", versions, report)
    return versions


def scan_object_dir(
    slot: DiskSlot,
    rel: str,
    versions: dict[tuple[str, str], ScannedVersion],
    report: RebuildReport,
) -> None:
    """Add what one disk holds under one objects/<aa>/<bb> directory to `versions`: each
    version's decodable manifest copies and its shard files (rules 2 and 4)."""
    disk = slot.disk
    for oid in disk.list_dir(rel):
        odir = f"{rel}/{oid}"
        inline = parse_inline_name(oid)
        if inline is not None:
            version = versions.setdefault(inline, ScannedVersion())
            _scan_inline(disk, odir, inline[0], inline[1], version, report)
            continue
        for vhex in disk.list_dir(odir):
            vdir = f"{odir}/{vhex}"
            entries = disk.list_dir(vdir)
            version = versions.setdefault((oid, vhex), ScannedVersion())
            if MANIFEST_NAME in entries:
                try:
                    manifest, _records = Manifest.decode_file(
                        disk.read_file(f"{vdir}/{MANIFEST_NAME}")
                    )
                    if (manifest.object_id, manifest.version_hex) != (oid, vhex):
                        raise FormatError("manifest sits in another object's directory")
                    version.manifests.append(manifest)
                except (OSError, FormatError) as exc:
                    report.unreadable.append(f"{disk.root}/{vdir}/manifest: {exc}")
            for entry in entries:
                number = parse_part_name(entry)
                if number is not None:
                    version.shard_files.setdefault(slot.disk_id, []).append((slot, number))


def _scan_inline(
    disk: Any, path: str, oid: str, vhex: str, version: ScannedVersion, report: RebuildReport
) -> None:
    """An inline version file: its manifest counts like a version directory's manifest (its
    records are checked by reads and the scrubber, not here)."""
    try:
        manifest, _records = Manifest.decode_file(disk.read_file(path))
        if not manifest.inline or (manifest.object_id, manifest.version_hex) != (oid, vhex):
            raise FormatError("inline manifest does not belong at this path")
        version.manifests.append(manifest)
    except (OSError, FormatError) as exc:
        report.unreadable.append(f"{disk.root}/{path}: {exc}")


@dataclass
class _HeaderScan:
    """What the shard headers of one version (or upload) say."""

    first: ShardHeader | None = None
    generation: int = 1
    shard_disk: dict[int, str] = field(default_factory=dict)
    blocks: dict[int, dict[int, tuple[int, bytes]]] = field(
        default_factory=lambda: defaultdict(dict)
    )  # part -> block index -> (block length, content hash)


def _scan_headers(
    files: list[tuple[DiskSlot, int]], path_for: Callable[[int], str], oid: str, vhex: str
) -> _HeaderScan:
    """Read and check every record of the given shard files; a damaged record ends what that
    file can tell, and the other shards fill in."""
    scan = _HeaderScan()
    for slot, number in files:
        rel = path_for(number)
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
                h = decode_record(handle.read_at(offset, length)).header
                if h.object_id.hex() != oid or h.version_id.hex() != vhex:
                    raise FormatError(f"{rel} on {slot.disk.root} belongs to another object")
                scan.first = scan.first or h
                scan.shard_disk[h.shard_index] = slot.disk_id
                scan.generation = max(scan.generation, h.generation)
                scan.blocks[h.part_number].setdefault(
                    h.block_index, (h.block_length, h.content_hash)
                )
                offset += length
        except (FormatError, OSError) as exc:
            log.warning("%s on %s: %s", rel, slot.disk.root, exc)
        finally:
            handle.close()
    if scan.first is None:
        raise FormatError("no readable shard header")
    return scan


def _part_entries(scan: _HeaderScan, block_size: int) -> list[PartEntry]:
    """Parts (ETag still empty) from the headers' block lengths and content hashes."""
    entries = []
    for number in sorted(scan.blocks):
        blocks = scan.blocks[number]
        if sorted(blocks) != list(range(len(blocks))):
            raise FormatError(f"part {number}: blocks missing from every shard")
        size = sum(length for length, _ in blocks.values())
        if len(blocks) != blocks_for(size, block_size):
            raise FormatError(f"part {number}: block count does not fit the set's block size")
        root = merkle_root([blocks[i][1] for i in range(len(blocks))]).hex()
        entries.append(PartEntry(number, size, "", len(blocks), root))
    return entries


def _draft_manifest(
    diskset: DiskSet, scan: _HeaderScan, oid: str, vhex: str, bucket: str, key: str
) -> Manifest:
    assert scan.first is not None
    entries = _part_entries(scan, diskset.block_size)
    default = [s.disk_id for s in diskset.placement(bytes.fromhex(oid))]
    n = scan.first.k + scan.first.m
    return Manifest(
        bucket=bucket,
        key=key,
        object_id=oid,
        version_id=version_id_from_hex(vhex),
        size=sum(p.size for p in entries),
        etag="",
        last_modified_ms=int.from_bytes(bytes.fromhex(vhex)[:6], "big"),
        content_type="application/octet-stream",
        parts=tuple(entries),
        k=scan.first.k,
        m=scan.first.m,
        block_size=diskset.block_size,
        placement=tuple(scan.shard_disk.get(j, default[j]) for j in range(n)),
        generation=scan.generation,
        merkle_root=merkle_root([bytes.fromhex(p.merkle_root) for p in entries]).hex(),
    )


def _part_md5s(
    diskset: DiskSet, draft: Manifest, path_for: Callable[[int], str] | None = None
) -> list[bytes]:
    """Each part's MD5, by reading the data back (checked block by block like any read)."""
    from s3free.engine.reader import BlockReader
    from s3free.erasure import ReedSolomon

    reader = BlockReader(draft, diskset, ReedSolomon(draft.k, draft.m), lambda f: None, path_for)
    try:
        out = []
        for part in draft.parts:
            digest = hashlib.md5()
            for index in range(part.blocks):
                digest.update(reader.read_block(part, index))
            out.append(digest.digest())
        return out
    finally:
        reader.close()


def manifest_from_headers(
    diskset: DiskSet,
    oid: str,
    vhex: str,
    version: ScannedVersion,
    buckets_by_hash: dict[bytes, str],
) -> Manifest | None:
    """Rebuild a manifest from the shard files of one version (rule 5 above)."""
    files = [f for per_disk in version.shard_files.values() for f in per_disk]
    scan = _scan_headers(files, lambda n: part_path(oid, vhex, n), oid, vhex)
    assert scan.first is not None
    bucket = buckets_by_hash.get(scan.first.bucket_hash)
    if bucket is None:
        return None
    vid = version_id_from_hex(vhex)
    draft = _draft_manifest(diskset, scan, oid, vhex, bucket, f"{LOST_AND_FOUND}/{oid}/{vid}")
    md5s = _part_md5s(diskset, draft)
    if len(md5s) == 1:
        etag = md5s[0].hex()
    else:
        etag = f"{hashlib.md5(b''.join(md5s)).hexdigest()}-{len(md5s)}"
    parts = tuple(replace(p, etag=d.hex()) for p, d in zip(draft.parts, md5s, strict=True))
    manifest = replace(draft, etag=etag, parts=parts)
    manifest.validate()
    return manifest


def restore_upload_parts(
    diskset: DiskSet, record: UploadRecord, files: list[tuple[DiskSlot, int]]
) -> list[PartRecord]:
    """Part records of an upload in progress, from its staged shard files (rule 6)."""
    upload_id = record.upload_id
    oid = record.object_id
    vhex = version_hex(record.version_id)
    scan = _scan_headers(files, lambda n: upload_part_path(upload_id, n), oid, vhex)
    draft = _draft_manifest(diskset, scan, oid, vhex, record.bucket, record.key)
    draft = replace(draft, placement=tuple(record.placement))
    md5s = _part_md5s(diskset, draft, lambda n: upload_part_path(upload_id, n))
    present = {number: {slot.disk_id for slot, n in files if n == number} for number in scan.blocks}
    out = []
    for part, digest in zip(draft.parts, md5s, strict=True):
        failed = [j for j, d in enumerate(record.placement) if d not in present[part.number]]
        out.append(
            PartRecord(
                number=part.number,
                size=part.size,
                etag=digest.hex(),
                md5=digest.hex(),
                blocks=part.blocks,
                merkle_root=part.merkle_root,
                mtime=record.initiated_ms,
                failed=failed,
            )
        )
    return out
