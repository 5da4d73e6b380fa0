"""Orphan collection: files on the disks that nothing refers to, once they are old enough.

Collected (each only when it and everything in it is older than the grace period, by mtime, so
a write in flight is never touched; a renamed-in file keeps its old mtime but makes its
directory young):

- a version directory `objects/…/<o>/<v>/` whose version no manifest in the index points at,
  that has no crash-journal entry (spec 13.1: the store settles those itself), that no upload
  in progress will complete into, and that no reader holds (leases);
- a version directory on a disk that is not in the current version's placement;
- the same for an inline version's one file (`objects/…/<o>.<v>.inline`, spec 8.5);
- a `part.NNNNN` file in a referenced version directory whose part the manifest does not list;
- a `multipart/<upload>/` directory of an upload the index does not know;
- any entry of `.s3free.tmp/`.

"The index points at it" is decided from the manifest copy in the directory (its bucket and
key, then the index's current version for them); a directory without a readable copy is checked
against the version ids of every listing entry (one pass over the index, only for such rare
directories), so a referenced version whose manifest copy was lost is never collected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from s3free.format.errors import FormatError
from s3free.format.manifest import Manifest
from s3free.heal.files import newest_mtime
from s3free.storage.disk import TMP_DIR
from s3free.storage.diskset import DiskSlot
from s3free.storage.layout import (
    MANIFEST_NAME,
    MULTIPART_DIR,
    OBJECTS_DIR,
    parse_inline_name,
    parse_part_name,
)


@dataclass
class VersionDir:
    slot: DiskSlot
    rel: str
    version_id: str
    manifest: Manifest | None
    parts: list[int]  # part numbers of the shard files found


def canonical_version(vhex: str) -> str | None:
    if len(vhex) != 32 or any(c not in "0123456789abcdef" for c in vhex):
        return None
    return f"{vhex[:8]}-{vhex[8:12]}-{vhex[12:16]}-{vhex[16:20]}-{vhex[20:]}"


def scan_prefix(slot: DiskSlot, a: str) -> tuple[list[VersionDir], int]:
    """Every version directory under objects/<a>/ on one disk; and the files it opened."""
    disk = slot.disk
    out: list[VersionDir] = []
    opened = 0
    for b in disk.list_dir(f"{OBJECTS_DIR}/{a}"):
        for oid in disk.list_dir(f"{OBJECTS_DIR}/{a}/{b}"):
            odir = f"{OBJECTS_DIR}/{a}/{b}/{oid}"
            inline = parse_inline_name(oid)
            if inline is not None:
                opened += 1
                out.append(_inline_version(slot, odir, *inline))
                continue
            for vhex in disk.list_dir(odir):
                vid = canonical_version(vhex)
                if vid is None:
                    continue  # not ours: never touched
                vdir = f"{odir}/{vhex}"
                entries = disk.list_dir(vdir)
                manifest = None
                if MANIFEST_NAME in entries:
                    opened += 1
                    try:
                        copy, _records = Manifest.decode_file(
                            disk.read_file(f"{vdir}/{MANIFEST_NAME}")
                        )
                        if copy.object_id == oid and copy.version_id == vid:
                            manifest = copy
                    except (OSError, FormatError):
                        manifest = None
                parts = [n for n in map(parse_part_name, entries) if n is not None]
                out.append(VersionDir(slot, vdir, vid, manifest, parts))
    return out, opened


def _inline_version(slot: DiskSlot, rel: str, oid: str, vhex: str) -> VersionDir:
    vid = canonical_version(vhex)
    assert vid is not None
    manifest = None
    try:
        copy, _records = Manifest.decode_file(slot.disk.read_file(rel))
        if copy.inline and copy.object_id == oid and copy.version_id == vid:
            manifest = copy
    except (OSError, FormatError):
        manifest = None
    return VersionDir(slot, rel, vid, manifest, [1])


def old_enough(slot: DiskSlot, rel: str, grace_s: float) -> bool:
    newest = newest_mtime(slot.disk, rel)
    return newest is not None and time.time() - newest > grace_s


def stale_temp_entries(slot: DiskSlot, grace_s: float) -> list[str]:
    return [
        f"{TMP_DIR}/{name}"
        for name in slot.disk.list_dir(TMP_DIR)
        if old_enough(slot, f"{TMP_DIR}/{name}", grace_s)
    ]


def stale_uploads(slot: DiskSlot, known: set[str], grace_s: float) -> list[str]:
    return [
        f"{MULTIPART_DIR}/{upload}"
        for upload in slot.disk.list_dir(MULTIPART_DIR)
        if upload not in known and old_enough(slot, f"{MULTIPART_DIR}/{upload}", grace_s)
    ]


def remove_path(slot: DiskSlot, rel: str) -> None:
    """A directory with everything in it, or one file."""
    from pathlib import Path

    if (Path(slot.disk.root) / rel).is_dir():
        slot.disk.remove_tree(rel)
    else:
        slot.disk.remove(rel)
