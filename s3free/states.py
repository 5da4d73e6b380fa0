"""The states and outcomes several layers compare (issue 13): a disk's state, a probe's
verdict, an I/O error's kind, a heal job's state.

They live here, below everything but the package root, because the words cross layers that
may not import each other upwards: storage/ decides a probe's status and an error's kind,
engine/ turns them into a disk state and reads a heal job's state (heal/ sits above it),
obs/ counts all of them as metric labels, admin/ and cli/ show them. Each value is exactly
the string stored and shown before these were enums (StrEnum: it equals that string, and
JSON, metric labels and logs carry it unchanged); a member added here must be handled where
tests/test_states.py says.
"""

from __future__ import annotations

from enum import StrEnum


class DiskState(StrEnum):
    """A disk's state in the set (specs/beexl-v1.md, "Disk states"; engine/diskmonitor.py)."""

    ONLINE = "online"  # in service
    OFFLINE = "offline"  # out of service
    HEALING = "healing"  # in service while a repair pass rebuilds what it lacks
    FULL = "full"  # in service for reads and deletes, given no new data

    @property
    def in_service(self) -> bool:
        """Serves reads and deletes (every state but offline)."""
        return self != DiskState.OFFLINE

    @property
    def takes_new_data(self) -> bool:
        """New writes land on it (online or healing; a full disk does not)."""
        return self in (DiskState.ONLINE, DiskState.HEALING)

    @classmethod
    def plain(cls, online: bool) -> DiskState:
        """The state of a disk when no monitor knows more than whether it is online."""
        return cls.ONLINE if online else cls.OFFLINE


class ProbeStatus(StrEnum):
    """What a probe of one disk found (storage/health.py; shown as a disk's "format")."""

    OK = "ok"
    FULL = "full"  # right disk, reads, but no room for the probe file
    FRESH = "fresh"  # format.json missing, directory empty: a replacement
    MISSING = "missing"  # the root is not a directory
    UNREADABLE = "unreadable"
    INVALID = "invalid"
    NOT_EMPTY = "not-empty"  # format.json missing, something else there: never formatted
    FOREIGN = "foreign"  # another set's disk
    MISMATCH = "mismatch"  # this set, but another disk id or position
    IO = "io"
    RESOURCE = "resource"  # the process was out of descriptors or memory: nothing learnt

    @property
    def in_service(self) -> bool:
        """The disk is the right one and reads: ok, or full (no room for new data)."""
        return self in (ProbeStatus.OK, ProbeStatus.FULL)


class DiskErrorKind(StrEnum):
    """What an OSError from a disk call means (storage/monitored.py's classify)."""

    HARD = "hard"  # counts toward offline
    SUSPECT = "suspect"  # probe soon (a missing file may be a wiped disk)
    FULL = "full"  # ENOSPC, EDQUOT: no new writes until space is freed
    SOFT = "soft"  # counted only
    RESOURCE = "resource"  # the process's shortage, not the disk's error


class JobState(StrEnum):
    """A heal job's state (heal/model.py's Job), also read by the engine's disk healing and
    the CLI; the index rebuild's job (admin/rebuild.py) uses the first three."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
