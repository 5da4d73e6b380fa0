"""A set of disks that hold one erasure set: format.json checks, state, and placement.

Start-up rules (specs/beexl-v1.md, "Disks and format.json"):
- No disk formatted: a new set. Every disk gets format.json with a fresh set id, its disk id
  and position, the list of all disk ids, and the set's k, m and block size.
- Some formatted: they define the set. A disk whose format.json names another set is refused
  (DiskSetError naming the path); nothing is written to it. A disk with no format.json while its
  siblings list a disk for its position is reported offline as "unformatted" and left alone
  (healing formats it, issue 4). A format.json that does not decode is reported offline.
- Disks are matched to positions by the id in their format.json, so reordering --disk flags
  does not confuse the set.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import blake3

from s3free.errors import DiskSetError
from s3free.format.diskformat import DiskFormat
from s3free.format.errors import FormatError
from s3free.storage.disk import Disk, LocalDisk
from s3free.storage.health import make_data_dirs, unformatted_entries
from s3free.storage.layout import FORMAT_FILE

log = logging.getLogger(__name__)

DEFAULT_BLOCK_SIZE = 1024 * 1024


def default_ec(disk_count: int) -> tuple[int, int]:
    """A sane RS(k, m) for a disk count: every choice survives the loss of at least one disk,
    and the parity share shrinks as the set grows (6+3 from nine disks up)."""
    table = {3: (2, 1), 4: (2, 2), 5: (3, 2), 6: (4, 2), 7: (4, 3), 8: (5, 3)}
    if disk_count < 3:
        raise DiskSetError(
            f"{disk_count} disk(s) cannot survive the loss of one: give at least 3 --disk paths"
        )
    return table.get(disk_count, (6, 3))


def parse_ec(text: str) -> tuple[int, int]:
    """Parse "K+M" (e.g. "6+3")."""
    try:
        k_text, m_text = text.split("+")
        k, m = int(k_text), int(m_text)
    except ValueError:
        raise DiskSetError(f"--ec must look like K+M (e.g. 6+3), got {text!r}") from None
    return k, m


@dataclass
class DiskSlot:
    """One position of the set and what is known about the disk there."""

    position: int
    disk: Disk
    disk_id: str
    online: bool
    problem: str = ""
    # Why the disk takes no new data (free space below its reserve, or ENOSPC), "" when it
    # does. A full disk stays in service: reads, deletes and repairs go on (DiskMonitor).
    full: str = ""

    @property
    def writable(self) -> bool:
        """In service and not full: placement puts new shards here first."""
        return self.online and not self.full

    def mark_offline(self, problem: str) -> None:
        if self.online:
            log.warning("disk %s (%s) offline: %s", self.position, self.disk.root, problem)
        self.online = False
        self.problem = problem

    def mark_online(self) -> None:
        """Back in service (the health probe passed); see s3free/engine/diskmonitor.py."""
        if not self.online:
            log.warning("disk %s (%s) online again", self.position, self.disk.root)
        self.online = True
        self.problem = ""


class DiskSet:
    def __init__(self, slots: list[DiskSlot], set_id: str, k: int, m: int, block_size: int):
        self.slots = slots
        self.set_id = set_id
        self.k = k
        self.m = m
        self.block_size = block_size
        self._by_id = {slot.disk_id: slot for slot in slots}

    @property
    def n(self) -> int:
        return self.k + self.m

    @property
    def write_quorum(self) -> int:
        """Shards per block that must be written for a PUT to succeed: k+1 (or k+m when m=1)."""
        return min(self.k + 1, self.n)

    @property
    def disk_ids(self) -> tuple[str, ...]:
        """Every disk id by position: format.json's `disks` list."""
        return tuple(s.disk_id for s in self.slots)

    def slot_for(self, disk_id: str) -> DiskSlot | None:
        return self._by_id.get(disk_id)

    def online_slots(self) -> list[DiskSlot]:
        return [s for s in self.slots if s.online]

    def online_slots_of(self, disk_ids: Sequence[str]) -> list[DiskSlot]:
        """The online disks among `disk_ids` (a version's placement), in that order; ids of
        disks not in this set are skipped."""
        slots = (self._by_id.get(d) for d in disk_ids)
        return [s for s in slots if s is not None and s.online]

    def placement(self, object_id: bytes) -> list[DiskSlot]:
        """k+m distinct disks for an object, by rendezvous hashing on its id: deterministic,
        even across disks, and moving little when the set changes. Writable disks rank first,
        then full ones, then offline ones, so a write avoids a disk already known to be down
        or full when the set has spares."""
        ranked = sorted(
            self.slots,
            key=lambda s: blake3.blake3(object_id + bytes.fromhex(s.disk_id)).digest(8),
            reverse=True,
        )
        ranked.sort(key=lambda s: (not s.online, bool(s.full)))
        chosen = ranked[: self.n]
        # Keep the rendezvous order among the chosen so data/parity roles rotate over disks.
        return chosen

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        disks: Sequence[str | os.PathLike[str] | Disk],
        *,
        k: int | None = None,
        m: int | None = None,
        block_size: int | None = None,
    ) -> DiskSet:
        objs: list[Disk] = [LocalDisk(d) if isinstance(d, (str, os.PathLike)) else d for d in disks]
        _refuse_duplicates(objs)
        formats: list[DiskFormat | None] = []
        problems: list[str] = []
        for disk in objs:
            fmt, problem = _read_format(disk)
            formats.append(fmt)
            problems.append(problem)
        if all(f is None for f in formats) and all(p == "" for p in problems):
            return cls._create(objs, k, m, block_size)
        return cls._load(objs, formats, problems, k, m, block_size)

    @classmethod
    def _create(
        cls, objs: list[Disk], k: int | None, m: int | None, block_size: int | None
    ) -> DiskSet:
        n_disks = len(objs)
        if k is None or m is None:
            k, m = default_ec(n_disks)
        if k < 1 or m < 1:
            raise DiskSetError(f"RS({k},{m}) cannot survive a disk loss: need k >= 1 and m >= 1")
        if k + m > n_disks:
            raise DiskSetError(f"RS({k},{m}) needs {k + m} disks, only {n_disks} given")
        if k + m > 256:
            raise DiskSetError("k+m must be at most 256")
        block_size = block_size or DEFAULT_BLOCK_SIZE
        set_id = uuid.uuid4().hex
        ids = [uuid.uuid4().hex for _ in objs]
        slots = []
        for position, disk in enumerate(objs):
            fmt = DiskFormat(set_id, ids[position], position, tuple(ids), k, m, block_size)
            Path(disk.root).mkdir(parents=True, exist_ok=True)
            disk.write_file(FORMAT_FILE, fmt.encode())
            make_data_dirs(disk)
            slots.append(DiskSlot(position, disk, ids[position], True))
        log.info("formatted a new set %s: %d disks, RS(%d,%d)", set_id, n_disks, k, m)
        return cls(slots, set_id, k, m, block_size)

    @classmethod
    def _load(
        cls,
        objs: list[Disk],
        formats: list[DiskFormat | None],
        problems: list[str],
        k: int | None,
        m: int | None,
        block_size: int | None,
    ) -> DiskSet:
        # The set is the one most formatted disks name (ties: the first listed), so a single
        # foreign disk is the one refused and named, wherever it is listed.
        votes = Counter(f.set_id for f in formats if f is not None)
        winner = votes.most_common(1)[0][0] if votes else None
        reference = next((f for f in formats if f is not None and f.set_id == winner), None)
        if reference is None:
            detail = "; ".join(f"{d.root}: {p}" for d, p in zip(objs, problems, strict=True) if p)
            raise DiskSetError(f"no disk has a readable format.json ({detail})")
        for disk, fmt in zip(objs, formats, strict=True):
            if fmt is not None and fmt.set_id != reference.set_id:
                raise DiskSetError(
                    f"{disk.root} belongs to another set ({fmt.set_id}, not {reference.set_id}); "
                    "refusing to touch it"
                )
            if fmt is not None and fmt.disks != reference.disks:
                raise DiskSetError(f"{disk.root} disagrees with its siblings about the set's disks")
        if len(objs) != len(reference.disks):
            raise DiskSetError(f"this set has {len(reference.disks)} disks, {len(objs)} were given")
        if (k is not None and k != reference.k) or (m is not None and m != reference.m):
            raise DiskSetError(
                f"the set was formatted as RS({reference.k},{reference.m}); "
                f"it cannot be opened as RS({k},{m})"
            )
        if block_size is not None and block_size != reference.block_size:
            raise DiskSetError(
                f"the set was formatted with block size {reference.block_size}, not {block_size}"
            )
        by_position: dict[int, DiskSlot] = {}
        leftovers: list[tuple[Disk, str]] = []
        for disk, fmt, problem in zip(objs, formats, problems, strict=True):
            if fmt is None:
                if not problem:
                    problem = (
                        "unformatted: format.json missing"
                        if Path(disk.root).exists()
                        else "directory missing"
                    )
                leftovers.append((disk, problem))
                continue
            if fmt.position in by_position:
                raise DiskSetError(
                    f"{disk.root} and {by_position[fmt.position].disk.root} both claim "
                    f"position {fmt.position}"
                )
            try:  # stores formatted before the data directories were made at format time
                make_data_dirs(disk)
            except OSError as exc:  # a read-only disk still serves reads; writes will say
                log.warning("disk %s: cannot make its data directories: %s", disk.root, exc)
            by_position[fmt.position] = DiskSlot(fmt.position, disk, fmt.disk_id, True)
        free = [p for p in range(len(reference.disks)) if p not in by_position]
        for position, (disk, problem) in zip(free, leftovers, strict=True):
            slot = DiskSlot(position, disk, reference.disks[position], False, problem)
            log.warning("disk %s at position %d is offline: %s", disk.root, position, problem)
            by_position[position] = slot
        slots = [by_position[p] for p in range(len(reference.disks))]
        return cls(slots, reference.set_id, reference.k, reference.m, reference.block_size)


def _read_format(disk: Disk) -> tuple[DiskFormat | None, str]:
    """(format, "") when readable; (None, "") for a fresh empty disk; (None, problem) else."""
    root = Path(disk.root)
    if not root.exists():
        return None, ""
    try:
        data = disk.read_file(FORMAT_FILE)
    except FileNotFoundError:
        # A healing tracker without format.json is a replacement cut short by a crash.
        entries = unformatted_entries(disk)
        if entries:
            return None, f"unformatted but not empty ({len(entries)} entries)"
        return None, ""
    except OSError as exc:
        return None, f"format.json unreadable: {exc}"
    try:
        return DiskFormat.decode(data), ""
    except FormatError as exc:
        return None, f"format.json invalid: {exc}"


def _refuse_duplicates(objs: list[Disk]) -> None:
    seen: dict[str, Path] = {}
    for disk in objs:
        real = os.path.realpath(disk.root)
        if real in seen:
            raise DiskSetError(f"{disk.root} and {seen[real]} are the same directory")
        seen[real] = Path(disk.root)
