"""The quarantine of every disk of a set, for `s3free disk quarantine` (admin API and direct
mode): what is there, and removing it on an operator's word.

Purging has an age guard: quarantined files are the evidence of what went wrong (a failing
disk, a bug), so files younger than MIN_PURGE_AGE_S are removed only when the caller says so
explicitly (`force`, the CLI's --yes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from s3free.storage import quarantine as q

MIN_PURGE_AGE_S = 3600.0


class PurgeRefused(ValueError):
    """A purge would remove files younger than the minimum age without being told to."""


def report(diskset: Any) -> dict:
    """Every online disk's quarantined files (offline disks: not looked at, `files` None)."""
    now = time.time()
    disks, files, total = [], 0, 0
    for slot in sorted(diskset.slots, key=lambda s: s.position):
        row: dict[str, Any] = {"position": slot.position, "path": str(slot.disk.root)}
        if not slot.online:
            row.update(files=None, bytes=None, entries=[])
        else:
            found = q.list_files(Path(slot.disk.root))
            size = sum(f.size for f in found)
            row.update(files=len(found), bytes=size, entries=[f.to_json(now) for f in found])
            files += len(found)
            total += size
        disks.append(row)
    return {"disks": disks, "total": {"files": files, "bytes": total}}


def check_age(older_than_s: float, force: bool) -> None:
    if older_than_s < 0:
        raise PurgeRefused(f"the age must be >= 0 seconds, got {older_than_s}")
    if older_than_s < MIN_PURGE_AGE_S and not force:
        raise PurgeRefused(
            f"refusing to purge quarantined files younger than {MIN_PURGE_AGE_S:.0f} s "
            f"(asked for older than {older_than_s:g} s): they may be the evidence of a fault "
            'still going on; confirm with --yes (API: "force": true)'
        )


def purge(diskset: Any, older_than_s: float, force: bool = False) -> dict:
    """Remove quarantined files older than `older_than_s` on every online disk; what went."""
    check_age(older_than_s, force)
    now = time.time()
    removed, kept = [], 0
    for slot in sorted(diskset.slots, key=lambda s: s.position):
        if not slot.online:
            continue
        root = Path(slot.disk.root)
        for f in q.purge(root, older_than_s, now):
            removed.append({"position": slot.position, "path": str(root), **f.to_json(now)})
        kept += len(q.list_files(root))
    return {
        "older_than_s": older_than_s,
        "removed": removed,
        "removed_files": len(removed),
        "removed_bytes": sum(r["size"] for r in removed),
        "kept_files": kept,
    }
