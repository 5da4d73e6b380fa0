"""A disk's quarantine (spec 13.2): bad shard files a repair moved aside instead of deleting.

    <disk>/.s3free.quarantine/<unix ms>-<object id>-<version hex>-part.NNNNN

Files there are never read as data. This module only looks at them and removes them on an
operator's word (`s3free disk quarantine`); the healer puts them there (heal/files.py) and
ages them out. The name says when the file was quarantined and which object version and part
it belonged to; a name that does not parse is still listed (with its mtime as the time).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

QUARANTINE_DIR = ".s3free.quarantine"


@dataclass(frozen=True)
class QuarantinedFile:
    name: str
    size: int
    quarantined_s: float  # unix time it was quarantined (from the name, else the mtime)
    object_id: str | None
    version_hex: str | None
    part_number: int | None

    def age_s(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.quarantined_s)

    def to_json(self, now: float | None = None) -> dict:
        return {
            "name": self.name,
            "size": self.size,
            "quarantined_ms": int(self.quarantined_s * 1000),
            "age_s": round(self.age_s(now), 3),
            "object_id": self.object_id,
            "version_id": _version_id(self.version_hex),
            "part_number": self.part_number,
        }


def _version_id(vhex: str | None) -> str | None:
    """The version id as the index shows it (a UUID) from the name's hex form."""
    if vhex is None or len(vhex) != 32:
        return vhex
    return f"{vhex[:8]}-{vhex[8:12]}-{vhex[12:16]}-{vhex[16:20]}-{vhex[20:]}"


def parse_name(name: str, mtime: float, size: int) -> QuarantinedFile:
    parts = name.split("-", 3)
    if len(parts) == 4 and parts[0].isdigit() and parts[3].startswith("part."):
        number = parts[3][len("part.") :]
        return QuarantinedFile(
            name,
            size,
            int(parts[0]) / 1000,
            parts[1],
            parts[2],
            int(number) if number.isdigit() else None,
        )
    return QuarantinedFile(name, size, mtime, None, None, None)


def list_files(root: Path) -> list[QuarantinedFile]:
    """Every file in the disk's quarantine, oldest first; none when it has no quarantine."""
    out = []
    try:
        with os.scandir(Path(root) / QUARANTINE_DIR) as it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed meanwhile (aged out by the healer)
                if entry.is_file(follow_symlinks=False):
                    out.append(parse_name(entry.name, st.st_mtime, st.st_size))
    except FileNotFoundError:
        return []
    return sorted(out, key=lambda f: (f.quarantined_s, f.name))


def summary(root: Path) -> dict:
    """{"files", "bytes"} in the disk's quarantine."""
    files = list_files(root)
    return {"files": len(files), "bytes": sum(f.size for f in files)}


def purge(root: Path, older_than_s: float, now: float | None = None) -> list[QuarantinedFile]:
    """Remove the quarantined files older than `older_than_s`; the ones removed."""
    now = time.time() if now is None else now
    removed = []
    for f in list_files(root):
        if f.age_s(now) < older_than_s:
            continue
        try:
            os.remove(Path(root) / QUARANTINE_DIR / f.name)
        except FileNotFoundError:
            continue
        removed.append(f)
    return removed
