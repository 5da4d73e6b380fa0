"""Where a version's files are, and the quarantine: the only place the healer names paths.

Every shard file the healer opens or writes goes through `shard_file_path` / `open_shard`,
which know inline versions (spec 8.5: the records follow the manifest envelope in the version's
one file, so rebuilding such a shard rewrites that whole file, envelope first).

Quarantine (STYLE.md practice 3: move bad shards aside, never delete them in a repair):

    <disk>/.s3free.quarantine/<unix ms>-<object id>-<version hex>-part.NNNNN

Files there are never read as data. They are removed by `clean_quarantine` once older than the
configured age, or (oldest first) when a disk holds more than the configured count.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from s3free.engine.shardfile import InlineShardHandle
from s3free.format.manifest import Manifest
from s3free.storage.disk import Disk, ReadHandle
from s3free.storage.layout import manifest_file, part_name, shard_file, version_dir
from s3free.storage.quarantine import QUARANTINE_DIR


def vhex_of(manifest: Manifest) -> str:
    return manifest.version_hex


def shard_file_path(manifest: Manifest, part_number: int) -> str:
    """The file holding one part's shard records on a placement disk."""
    return shard_file(manifest.object_id, vhex_of(manifest), part_number, manifest.inline)


def manifest_file_path(manifest: Manifest) -> str:
    return manifest_file(manifest.object_id, vhex_of(manifest), manifest.inline)


def open_shard(disk: Disk, manifest: Manifest, part_number: int) -> ReadHandle:
    """A part's shard records on one disk, addressed from the first record (for an inline
    version: past the envelope of the copy on that disk). FormatError if an inline file's
    envelope does not fit it."""
    handle = disk.open_read(shard_file_path(manifest, part_number))
    if not manifest.inline:
        return handle
    try:
        return InlineShardHandle(handle)
    except BaseException:
        handle.close()
        raise


def version_dir_of(manifest: Manifest) -> str:
    return version_dir(manifest.object_id, vhex_of(manifest))


def quarantine(disk: Disk, rel: str, manifest: Manifest, part_number: int) -> str | None:
    """Move a bad shard file into the disk's quarantine (durably); None if it was gone."""
    name = f"{time.time_ns() // 1_000_000}-{manifest.object_id}-{vhex_of(manifest)}-"
    dest = f"{QUARANTINE_DIR}/{name}{part_name(part_number)}"
    try:
        disk.rename(rel, dest)
    except FileNotFoundError:
        return None
    return dest


def clean_quarantine(disk: Disk, max_age_s: float, max_files: int) -> int:
    """Remove quarantined files older than max_age_s, and the oldest beyond max_files."""
    names = disk.list_dir(QUARANTINE_DIR)
    now_ms = time.time_ns() // 1_000_000
    removed = 0
    stamped: list[tuple[int, str]] = []
    for name in names:
        prefix = name.split("-", 1)[0]
        stamped.append((int(prefix) if prefix.isdigit() else 0, name))
    stamped.sort()
    excess = max(0, len(stamped) - max_files)
    for i, (stamp, name) in enumerate(stamped):
        if i < excess or now_ms - stamp > max_age_s * 1000:
            disk.remove(f"{QUARANTINE_DIR}/{name}")
            removed += 1
    return removed


def newest_mtime(disk: Disk, rel: str) -> float | None:
    """The newest mtime of a path and (for a directory) its direct entries; None if gone.

    A renamed file keeps its old mtime, but the directory it was renamed into gets a new one,
    so a version directory a multipart completion just filled looks young as it should."""
    path = Path(disk.root) / rel
    try:
        newest = path.stat().st_mtime
    except FileNotFoundError:
        return None
    if path.is_dir():
        try:
            with os.scandir(path) as it:
                for entry in it:
                    try:
                        newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
                    except FileNotFoundError:
                        continue
        except FileNotFoundError:
            return None
    return newest
