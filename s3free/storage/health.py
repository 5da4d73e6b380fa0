"""Blocking disk health checks: the probe, formatting a replacement, the healing tracker, and a
time-bounded shard count. The async policy around them is s3free/engine/diskmonitor.py.

Probe (cheap; every few seconds per disk), in this order:
  1. the root is a directory                              else "missing"
  2. format.json reads and decodes                        else "unreadable" / "invalid", or,
     when absent: "fresh" (the directory is empty apart from .s3free.tmp and healing.json)
     or "not-empty" (anything else there: never formatted over)
  3. it names this set, this disk id, this position and the set's disk list
                                                          else "foreign" / "mismatch"
  4. a tiny file written to .s3free.tmp, read back, removed   else "io", or "full" when the
     write fails for want of space (ENOSPC, EDQUOT): a full disk still reads and deletes,
     so it stays in service (read-only for new data), it is not a failed disk
An error that says the PROCESS is out of something (EMFILE, ENFILE, ENOMEM: monitored.py's
RESOURCE_ERRNOS) at any step gives "resource": nothing was learnt about the disk, and its state
must stay as it was (a flood of client connections must not take every disk offline).
A fresh directory is only formatted when `may_format` agrees (not an unmounted mount point).

Healing tracker: <disk>/healing.json, on the disk being healed, so it travels with that disk
and survives restarts (MinIO's .healing.bin, in JSON):

    {"bytes_checked": 0, "disk_id": "<32 hex>", "format": "s3free-healing", "job_id": "",
     "job_state": "", "last_key": "", "objects_checked": 0, "objects_repaired": 0,
     "passes": 0, "position": 2, "reason": "...", "set_id": "<32 hex>",
     "started_ms": 0, "unrepairable": 0, "updated_ms": 0, "version": 1}
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from s3free.format.diskformat import DiskFormat
from s3free.format.errors import FormatError
from s3free.states import ProbeStatus
from s3free.storage.disk import TMP_DIR
from s3free.storage.layout import (
    DATA_DIRS,
    FORMAT_FILE,
    HEALING_FILE,
    OBJECTS_DIR,
    parse_inline_name,
    parse_part_name,
)
from s3free.storage.monitored import FULL_ERRNOS, RESOURCE_ERRNOS
from s3free.storage.quarantine import QUARANTINE_DIR

PROBE_BYTES = b"s3free health probe\n"


@dataclass(frozen=True)
class Probe:
    status: ProbeStatus
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == ProbeStatus.OK

    @property
    def in_service(self) -> bool:
        """The disk is the right one and reads: "ok", or "full" (no room for new data)."""
        return self.status.in_service


def probe(disk, expected: DiskFormat) -> Probe:
    """Check one disk against the format it should carry (see the module docstring)."""
    root = Path(disk.root)
    try:
        if not root.is_dir():
            return Probe(ProbeStatus.MISSING, "directory missing")
        try:
            data = disk.read_file(FORMAT_FILE)
        except FileNotFoundError:
            entries = unformatted_entries(disk)
            if entries:
                return Probe(
                    ProbeStatus.NOT_EMPTY,
                    f"format.json missing and not empty ({len(entries)} entries)",
                )
            return Probe(ProbeStatus.FRESH, "format.json missing, directory empty")
        except OSError as exc:
            if exc.errno in RESOURCE_ERRNOS:
                raise
            return Probe(ProbeStatus.UNREADABLE, f"format.json unreadable: {exc}")
        try:
            fmt = DiskFormat.decode(data)
        except FormatError as exc:
            return Probe(ProbeStatus.INVALID, f"format.json invalid: {exc}")
        if fmt.set_id != expected.set_id:
            return Probe(ProbeStatus.FOREIGN, f"belongs to another set ({fmt.set_id})")
        if fmt != expected:
            return Probe(
                ProbeStatus.MISMATCH,
                f"format.json says disk {fmt.disk_id} at position {fmt.position}, "
                f"expected {expected.disk_id} at {expected.position}",
            )
        name = f"{TMP_DIR}/probe-{uuid.uuid4().hex}"
        try:
            try:
                disk.write_file(name, PROBE_BYTES, sync=False)
            except OSError as exc:
                if exc.errno in FULL_ERRNOS:
                    return Probe(ProbeStatus.FULL, f"no space for the probe file: {exc}")
                raise
            back = disk.read_file(name)
        finally:
            with contextlib.suppress(OSError):
                disk.remove(name)
        if back != PROBE_BYTES:
            return Probe(ProbeStatus.IO, "probe file read back different bytes")
        return Probe(ProbeStatus.OK)
    except OSError as exc:
        if exc.errno in RESOURCE_ERRNOS:
            return resource_exhausted(exc)
        return Probe(ProbeStatus.IO, f"probe failed: {exc}")


def resource_exhausted(exc: OSError) -> Probe:
    """The probe could not run for want of descriptors or memory: says so, judges nothing."""
    return Probe(ProbeStatus.RESOURCE, f"resource exhausted ({exc.strerror}): disk state unchanged")


def may_format(root: Path, sibling_roots: list[Path]) -> str:
    """ "" when a fresh directory may be formatted, else why not: when every online sibling
    is a mount point and this one is not, it is most likely a disk that failed to mount,
    and formatting it would fill the root filesystem."""
    siblings_mounted = bool(sibling_roots) and all(os.path.ismount(r) for r in sibling_roots)
    if siblings_mounted and not os.path.ismount(root):
        return "not a mount point while its siblings are (an unmounted disk?)"
    return ""


@dataclass
class HealingTracker:
    set_id: str
    disk_id: str
    position: int
    started_ms: int
    reason: str
    updated_ms: int = 0
    passes: int = 0
    job_id: str = ""
    job_state: str = ""
    objects_checked: int = 0
    objects_repaired: int = 0
    bytes_checked: int = 0
    unrepairable: int = 0
    last_key: str = ""

    def encode(self) -> bytes:
        obj = {"format": "s3free-healing", "version": 1, **asdict(self)}
        return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes) -> HealingTracker:
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FormatError(f"healing.json is not JSON: {exc}") from None
        if not isinstance(obj, dict) or obj.get("format") != "s3free-healing":
            raise FormatError("healing.json is not an s3free healing tracker")
        if obj.get("version") != 1:
            raise FormatError(f"unsupported healing.json version {obj.get('version')!r}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = obj.get(f.name)
            want = str if f.type == "str" else int
            if not isinstance(value, want) or isinstance(value, bool):
                raise FormatError(f"healing.json {f.name} must be a {want.__name__}")
            values[f.name] = value
        return cls(**values)

    def to_json(self) -> dict:
        return asdict(self)


def read_tracker(disk) -> HealingTracker | None:
    """The disk's healing tracker, None when there is none; FormatError/OSError otherwise."""
    try:
        data = disk.read_file(HEALING_FILE)
    except FileNotFoundError:
        return None
    return HealingTracker.decode(data)


def write_tracker(disk, tracker: HealingTracker) -> None:
    tracker.updated_ms = time.time_ns() // 1_000_000
    disk.write_file(HEALING_FILE, tracker.encode())


def format_replacement(disk, fmt: DiskFormat, tracker: HealingTracker) -> None:
    """Make a fresh directory the disk at fmt.position: the tracker first, then format.json,
    both durable, so a crash in between leaves a disk that is still recognised as a
    replacement (healing.json alone does not make a directory "not empty"); then the data
    directories (made by the first write or the next start-up if a crash comes first)."""
    write_tracker(disk, tracker)
    disk.write_file(FORMAT_FILE, fmt.encode())
    make_data_dirs(disk)


def unformatted_entries(disk) -> list[str]:
    """What makes a directory without format.json "not empty" (never formatted over): any
    entry but the temp directory, the healing tracker, and data directories holding nothing
    but empty directories (a write racing an `rm -rf` of the disk can leave those behind)."""
    return [
        name
        for name in disk.list_dir("")
        if name not in (TMP_DIR, HEALING_FILE)
        and not (name in (*DATA_DIRS, QUARANTINE_DIR) and _holds_no_file(Path(disk.root) / name))
    ]


def _holds_no_file(path: Path) -> bool:
    """Whether path is a directory tree with no file in it (stops at the first file)."""
    if path.is_symlink() or not path.is_dir():
        return False
    for _dirpath, dirs, files in os.walk(path):
        if files or any(os.path.islink(os.path.join(_dirpath, d)) for d in dirs):
            return False
    return True


def make_data_dirs(disk) -> None:
    """The top-level directories writes go into (layout.DATA_DIRS), which a write never makes
    itself: only a disk whose format is known right gets them."""
    for name in DATA_DIRS:
        disk.makedirs(name)


def remove_tracker(disk) -> None:
    disk.remove(HEALING_FILE)
    disk.fsync_dir("")


@dataclass(frozen=True)
class ShardCount:
    shard_files: int  # part.NNNNN and inline files under objects/
    manifests: int
    exact: bool  # False: scaled up from the first `prefixes_done` of `prefixes_total` dirs
    prefixes_done: int
    prefixes_total: int

    def to_json(self) -> dict:
        return asdict(self)


def count_shards(root: Path, budget_s: float = 1.0) -> ShardCount:
    """Count shard files and manifests under objects/, stopping after `budget_s`. Object ids
    are uniform hashes, so the first j of the top-level o[0:2] directories are a fair sample:
    an unfinished walk is scaled by total/j and marked as an estimate."""
    top = Path(root) / OBJECTS_DIR
    try:
        prefixes = sorted(e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return ShardCount(0, 0, True, 0, 0)
    deadline = time.monotonic() + budget_s
    parts = manifests = done = 0
    for prefix in prefixes:
        if done and time.monotonic() > deadline:
            break
        for _dirpath, _dirs, files in os.walk(prefix):
            for name in files:
                if name == "manifest":
                    manifests += 1
                elif parse_part_name(name) is not None:
                    parts += 1
                elif parse_inline_name(name) is not None:  # an inline version: both in one
                    manifests += 1
                    parts += 1
        done += 1
    if done == len(prefixes):
        return ShardCount(parts, manifests, True, done, len(prefixes))
    scale = len(prefixes) / done
    return ShardCount(round(parts * scale), round(manifests * scale), False, done, len(prefixes))
