"""What the disk monitor (s3free/engine/diskmonitor.py) knows and is configured with: its
settings, what it keeps per disk, what it does with each probe result, and the two-way
protocol to the heal service above it."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from s3free.engine.storelock import DiskLocks
from s3free.obs.ratelimit import LogLimiter
from s3free.states import ProbeStatus
from s3free.storage.diskset import DiskSet
from s3free.storage.health import HealingTracker, Probe, ShardCount

if TYPE_CHECKING:
    import asyncio

    from s3free.engine.diskmonitor import DiskMonitor

# The monitor's logger, whichever of its modules logs (log configuration names it).
log = logging.getLogger("s3free.engine.diskmonitor")
# Out of descriptors or memory: can come from every call at once; one line a minute says so.
_RESOURCE_LOG = LogLimiter(60.0)


class ProbeDecision(StrEnum):
    """What the monitor does with a disk after a probe (DiskMonitor._apply)."""

    UNCHANGED = "unchanged"  # nothing was learnt about the disk: its state stays as it was
    SERVE = "serve"  # in service (back online if it was not); full or not by its free space
    FORMAT = "format"  # an empty directory: formatted into the set when allowed, else offline
    OFFLINE = "offline"  # not this set's disk as it should be: out of service, never written


# Every probe status has one decision; tests/test_states.py fails on a status without one.
PROBE_DECISIONS: dict[ProbeStatus, ProbeDecision] = {
    ProbeStatus.OK: ProbeDecision.SERVE,
    ProbeStatus.FULL: ProbeDecision.SERVE,
    ProbeStatus.FRESH: ProbeDecision.FORMAT,
    ProbeStatus.RESOURCE: ProbeDecision.UNCHANGED,
    ProbeStatus.MISSING: ProbeDecision.OFFLINE,
    ProbeStatus.UNREADABLE: ProbeDecision.OFFLINE,
    ProbeStatus.INVALID: ProbeDecision.OFFLINE,
    ProbeStatus.NOT_EMPTY: ProbeDecision.OFFLINE,
    ProbeStatus.FOREIGN: ProbeDecision.OFFLINE,
    ProbeStatus.MISMATCH: ProbeDecision.OFFLINE,
    ProbeStatus.IO: ProbeDecision.OFFLINE,
}


class Healer(Protocol):
    """What the monitor needs of the heal service (s3free.heal.HealService)."""

    def start_repair(self, bucket: str | None = None, key: str | None = None) -> Any: ...
    def job(self, job_id: str) -> Any | None: ...
    async def wait(self, job_id: str, timeout: float | None = None) -> Any: ...
    def disk_online(self, disk_id: str) -> None: ...
    def use_monitor(self, monitor: DiskMonitor) -> None: ...


class MonitoredStore(Protocol):
    """What the monitor needs of the store (s3free.engine.ObjectStore)."""

    diskset: DiskSet
    disk_locks: DiskLocks

    def run_io(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]: ...
    async def settle_removals(self) -> int: ...


@dataclass
class MonitorConfig:
    probe_s: float = 5.0  # one probe of every disk this often
    error_limit: int = 5  # hard I/O errors within error_window_s that take a disk offline
    error_window_s: float = 30.0
    cooldown_s: float = 30.0  # first stay offline after the error limit; doubles each time
    cooldown_max_s: float = 600.0
    count_budget_s: float = 1.0  # time allowed to count one disk's shard files
    count_cache_s: float = 30.0
    format_fresh: bool = True  # False: report an empty replacement, do not format it
    # Free space kept back from new data: below it a disk is "full"; back at 2x, writable.
    full_reserve_pct: float = 1.0
    full_reserve_max_bytes: int = 1 << 30


@dataclass
class DiskHealth:
    """What the monitor knows about one slot beyond DiskSlot.online/problem."""

    errors: int = 0  # every OSError seen on this disk
    hard_errors: int = 0
    last_error: str = ""
    last_error_ms: int = 0
    recent: deque[float] = field(default_factory=deque)  # monotonic times of recent hard errors
    held_until: float = 0.0  # offline by the error limit: not back before this
    cooldown: float = 0.0
    probe_soon: bool = False
    fresh_seen: int = 0  # probes in a row that found an empty directory
    last_probe: Probe | None = None
    last_probe_ms: int = 0
    tracker: HealingTracker | None = None
    last_heal: dict[str, Any] | None = None  # summary of the last finished heal
    count: ShardCount | None = None
    counted_at: float = 0.0


def now_ms() -> int:
    """Wall-clock milliseconds, as the status and the trackers show them."""
    return time.time_ns() // 1_000_000


def log_resource(what: str) -> None:
    """Out of descriptors or memory: the process's shortage, logged once a minute."""
    skipped = _RESOURCE_LOG.admit()
    if skipped is not None:
        more = f" ({skipped} more since the last line)" if skipped else ""
        log.warning(
            "out of file descriptors or memory, disk state unchanged: %s%s (raise the fd "
            "limit or lower connections_max)",
            what,
            more,
        )
