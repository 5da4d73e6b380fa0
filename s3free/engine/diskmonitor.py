"""Disk lifecycle at run time: error counting, offline/online, replacement and healing state.

Each disk of the set is in one state (specs/beexl-v1.md, "Disk states"):

    online   in service (DiskSlot.online)
    full     in service for reads, deletes and repairs, but given no new data
             (DiskSlot.full): free space fell below its reserve (full_reserve_pct of the disk,
             at most full_reserve_max_bytes) or a write met ENOSPC/EDQUOT; it takes writes
             again once free space is back above twice the reserve (hysteresis, so it does
             not flap at the edge). A full disk is never taken offline for being full.
    offline  out of service: the probe failed, or too many hard I/O errors came in a short
             window (then it stays out for a cool-down that doubles each time, up to a cap,
             so a disk that fails every read does not flap)
    healing  in service (new writes land on it) while a repair pass rebuilds what it lacks;
             <disk>/healing.json records the progress and survives restarts

The engine keeps working while quorum allows: readers skip offline disks and decode from
the others, writers skip them (placement ranks online disks first).

Every disk is wrapped in a MonitoredDisk so errors from real I/O are seen. Hard errors (EIO,
EROFS, ...) count toward offline; ENOENT/ENOTDIR only ask for an early probe (a wiped disk
looks like every file missing); EMFILE/ENFILE/ENOMEM are the process's, not the disk's: they
change nothing (a probe that meets one leaves the disk's state as it was) and are logged at
most once a minute. The probe (s3free/storage/health.py) runs every `probe_s`:
it brings a recovered disk back, and recognises a NEW EMPTY directory in a disk's place. That
one is formatted with the same disk id and position (manifests name disk ids, so keeping the
id means no manifest or sibling format.json changes), gets a healing tracker, and a repair
pass over everything is started through the healer (the heal service; s3free.heal sits above
the engine, so it is attached here through a two-method protocol). A disk of another set, a
mismatching format.json or a non-empty directory without one is never written to.

The settings and per-disk state are in diskstate.py; the tracker and repair pass of a healing
disk in diskhealing.py (a HealingDriver the monitor owns).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from s3free.engine.diskhealing import HealingDriver
from s3free.engine.diskstate import (
    PROBE_DECISIONS,
    DiskHealth,
    Healer,
    MonitorConfig,
    MonitoredStore,
    ProbeDecision,
    log,
    log_resource,
    now_ms,
)
from s3free.engine.writer import human_size
from s3free.errors import StoreInUse
from s3free.format.diskformat import DiskFormat
from s3free.states import DiskErrorKind, DiskState, JobState, ProbeStatus
from s3free.storage.diskset import DiskSlot
from s3free.storage.health import (
    HealingTracker,
    Probe,
    ShardCount,
    count_shards,
    format_replacement,
    may_format,
    probe,
)
from s3free.storage.monitored import MonitoredDisk, classify, unwrap
from s3free.storage.quarantine import summary as quarantine_summary

# Importers name these through this module.
__all__ = ["DiskHealth", "DiskMonitor", "Healer", "MonitorConfig"]


class DiskMonitor:
    def __init__(self, store: MonitoredStore, config: MonitorConfig | None = None) -> None:
        self.store = store
        self.diskset = store.diskset
        self.config = config or MonitorConfig()
        self.health: dict[int, DiskHealth] = {s.position: DiskHealth() for s in self.diskset.slots}
        self.healer: Healer | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._check_lock = asyncio.Lock()
        self._healing = HealingDriver(self.diskset, self.health, store.run_io, self.config)
        self._stopping = False  # stop() asked: the probe loop ends at its next turn

    # -- life cycle --------------------------------------------------------------------------

    async def start(self, *, background: bool = True) -> None:
        """Wrap every disk to see its errors, load healing trackers, run one check, and (with
        background) keep probing every probe_s."""
        for slot in self.diskset.slots:
            if not isinstance(slot.disk, MonitoredDisk):
                slot.disk = MonitoredDisk(slot.disk, self._reporter(slot))
        for slot in self.diskset.online_slots():
            await self._healing.load_tracker(slot)
        await self.check_all()
        if background:
            self._task = asyncio.ensure_future(self._run_loop())

    async def stop(self) -> None:
        """Stop the probe loop. Cancelled until it ends: Python 3.11's wait_for can lose a
        cancellation that races its timeout, and a lost one left stop() waiting forever."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=1.0)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self._task.result()
            self._task = None

    def attach_healer(self, healer: Healer | None) -> None:
        self.healer = healer
        if healer is not None:
            healer.use_monitor(self)
        self._loop.call_soon_threadsafe(self._wake.set)

    async def _run_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.probe_s)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.check_all()
            except Exception:
                log.exception("disk check failed")

    # -- errors from real I/O (any thread) -----------------------------------------------------

    def _reporter(self, slot: DiskSlot) -> Callable[[str, OSError], None]:
        def report(op: str, exc: OSError) -> None:
            self._on_error(slot, op, exc)

        return report

    def _on_error(self, slot: DiskSlot, op: str, exc: OSError) -> None:
        kind = classify(exc)
        if kind == DiskErrorKind.RESOURCE:  # the process's shortage, not the disk's error
            log_resource(f"{op} on {slot.disk.root}: {exc}")
            return
        cfg = self.config
        h = self.health[slot.position]
        now = time.monotonic()
        with self._lock:
            if kind == DiskErrorKind.SUSPECT:
                # A missing file is normal (a missing shard); it is not an error of the disk
                # unless the probe says so.
                h.probe_soon = True
            else:
                h.errors += 1
                h.last_error = f"{op}: {exc}"
                h.last_error_ms = now_ms()
            trip = False
            if kind == DiskErrorKind.FULL and slot.online and not slot.full:
                slot.full = f"no space left ({op}: {exc})"
                log.warning(
                    "disk %s (%s) full: no new data until space is freed (%s: %s)",
                    slot.position,
                    slot.disk.root,
                    op,
                    exc,
                )
            if kind == DiskErrorKind.HARD:
                h.hard_errors += 1
                h.recent.append(now)
                while h.recent and h.recent[0] < now - cfg.error_window_s:
                    h.recent.popleft()
                if len(h.recent) >= cfg.error_limit and slot.online:
                    h.cooldown = min(
                        cfg.cooldown_max_s, h.cooldown * 2 if h.cooldown else cfg.cooldown_s
                    )
                    h.held_until = now + h.cooldown
                    h.recent.clear()
                    trip = True
        if trip:
            slot.mark_offline(
                f"{cfg.error_limit} I/O errors within {cfg.error_window_s:g} s "
                f"(last: {op}: {exc}); retried in {h.cooldown:g} s"
            )
        if kind != DiskErrorKind.SOFT:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- the probe and what follows from it ------------------------------------------------------

    def expected_format(self, slot: DiskSlot) -> DiskFormat:
        ds = self.diskset
        return DiskFormat(
            ds.set_id, slot.disk_id, slot.position, ds.disk_ids, ds.k, ds.m, ds.block_size
        )

    async def check_all(self) -> None:
        """Probe every disk (in parallel) and act on the results, then drive healing."""
        async with self._check_lock:
            slots = self.diskset.slots
            looks = await asyncio.gather(*(self.store.run_io(self._look, s) for s in slots))
            for slot, (result, usage) in zip(slots, looks, strict=True):
                await self._apply(slot, result, usage=usage)
            await self._healing.drive(self.healer)

    async def check(self, position: int, *, format_fresh: bool = True) -> dict:
        """Probe one disk now (the operator's `disk replace`: formats an empty directory even
        when the monitor's config does not); returns its status."""
        slot = self.diskset.slots[position]
        async with self._check_lock:
            result, usage = await self.store.run_io(self._look, slot)
            await self._apply(slot, result, force=format_fresh, usage=usage)
            await self._healing.drive(self.healer)
        return (await self.status())["disks"][position]

    def _look(self, slot: DiskSlot) -> tuple[Probe, tuple[int, int] | None]:
        """The probe and the filesystem's (used, total) bytes (None when unknown); blocking."""
        disk = unwrap(slot.disk)
        result = probe(disk, self.expected_format(slot))
        try:
            usage = disk.usage() if result.in_service else None
        except OSError:
            usage = None
        return result, usage

    async def _apply(
        self,
        slot: DiskSlot,
        result: Probe,
        force: bool = False,
        usage: tuple[int, int] | None = None,
    ) -> None:
        h = self.health[slot.position]
        decision = PROBE_DECISIONS[result.status]
        if decision is ProbeDecision.UNCHANGED:  # the process's shortage: nothing learnt
            h.last_probe, h.last_probe_ms, h.probe_soon = result, now_ms(), False
            log_resource(f"probe of {slot.disk.root}: {result.detail}")
            return
        h.last_probe, h.last_probe_ms, h.probe_soon = result, now_ms(), False
        if decision is ProbeDecision.SERVE:
            h.fresh_seen = 0
            if not slot.online and time.monotonic() >= h.held_until:
                if not await self._take_disk_lock(slot):
                    return
                slot.mark_online()
                await self._healing.load_tracker(slot)
                await self._settle(slot)
                if self.healer is not None:
                    self.healer.disk_online(slot.disk_id)  # what waited for it is repaired
            self._judge_full(slot, result, usage)
            return
        h.fresh_seen = h.fresh_seen + 1 if decision is ProbeDecision.FORMAT else 0
        if decision is ProbeDecision.FORMAT:
            # Formatted only when two probes in a row (probe_s apart) found it empty, so a
            # directory caught half-way through an `rm -rf` or a mount is left alone, unless
            # the operator asked for it (check(), i.e. `disk replace`).
            if force or (self.config.format_fresh and h.fresh_seen >= 2):
                await self._replace(slot)
                return
            why = "formatted at the next probe if still empty"
            if not self.config.format_fresh:
                why = "not formatted here (`s3free disk replace` does it)"
            result = Probe(ProbeStatus.FRESH, f"empty directory: {why}")
        slot.full = ""
        if slot.online:
            slot.mark_offline(result.detail)
        else:
            slot.problem = result.detail

    def reserve(self, total: int) -> int:
        """Bytes of a disk of `total` bytes kept free of new data (see full_reserve_pct)."""
        pct = self.config.full_reserve_pct
        return min(int(total * pct / 100), self.config.full_reserve_max_bytes)

    def _judge_full(self, slot: DiskSlot, result: Probe, usage: tuple[int, int] | None) -> None:
        """Full when the probe could not write or free space is below the reserve; writable
        again only when free space is back at twice the reserve (hysteresis)."""
        was = slot.full
        if usage is None:  # free space unknown: the probe's write decides alone
            now = result.detail if result.status == ProbeStatus.FULL else ""
        else:
            used, total = usage
            free, reserve = max(0, total - used), self.reserve(total)
            figures = f"{human_size(free)} free of {human_size(total)}"
            if result.status == ProbeStatus.FULL:
                now = f"{figures}; {result.detail}"
            elif free < reserve:
                now = f"{figures}, below the reserve of {human_size(reserve)}"
            elif was and free < 2 * reserve:
                now = f"{figures}; writable again from {human_size(2 * reserve)} free"
            else:
                now = ""
        slot.full = now
        if was and not now:
            log.warning("disk %s (%s) takes new data again", slot.position, slot.disk.root)
            if self.healer is not None:
                self.healer.disk_online(slot.disk_id)  # repairs that waited for room
        elif now and not was:
            log.warning(
                "disk %s (%s) full: no new data until space is freed (%s)",
                slot.position,
                slot.disk.root,
                now,
            )

    async def _replace(self, slot: DiskSlot) -> None:
        """A new empty directory where a disk of the set should be: format it into the set
        at the same position with the same id, with a healing tracker, and bring it in."""
        h = self.health[slot.position]
        if slot.online:
            slot.mark_offline("format.json vanished and the directory is empty (wiped?)")
        siblings = [s.disk.root for s in self.diskset.online_slots()]
        refused = may_format(slot.disk.root, siblings)
        if refused:
            slot.problem = f"empty, not formatted: {refused}"
            return
        tracker = HealingTracker(
            self.diskset.set_id,
            slot.disk_id,
            slot.position,
            now_ms(),
            f"replaced: empty directory at position {slot.position}",
        )
        if not await self._take_disk_lock(slot):
            return
        try:
            await self.store.run_io(
                format_replacement, unwrap(slot.disk), self.expected_format(slot), tracker
            )
        except OSError as exc:
            slot.problem = f"empty, formatting failed: {exc}"
            return
        log.warning(
            "disk %s at position %d was replaced by an empty directory: formatted, healing",
            slot.disk.root,
            slot.position,
        )
        h.tracker = tracker
        h.held_until = 0.0
        with self._lock:
            h.recent.clear()
        slot.mark_online()
        await self._settle(slot)
        if self.healer is not None:
            self.healer.disk_online(slot.disk_id)

    async def _take_disk_lock(self, slot: DiskSlot) -> bool:
        """Take this process's lock on the disk's directory (it may be new, or have been away
        at start) before using it; a directory another process holds is never used."""
        try:
            if await self.store.run_io(self.store.disk_locks.acquire, slot.disk.root):
                return True
            slot.problem = "directory missing"
        except StoreInUse as exc:
            slot.problem = str(exc)
            log.error("disk %s not used: %s", slot.disk.root, exc)
        except OSError as exc:
            slot.problem = f"cannot lock the directory: {exc}"
        return False

    async def _settle(self, slot: DiskSlot) -> None:
        """A disk is back: finish removing the versions replaced or deleted while it was
        away (their files there would otherwise wait for the next start-up)."""
        try:
            settled = await self.store.settle_removals()
        except Exception:  # never let a cleanup keep the monitor from its work
            log.exception("settling removals after disk %s came back failed", slot.disk.root)
            return
        if settled:
            log.info("disk %s is back: %d removed versions settled", slot.disk.root, settled)

    async def wait_healed(self, own_job: str | None = None) -> list[str]:
        """Wait until no disk is healing or about to be (an empty directory the probe will
        format): what a scrub or repair pass that promises "every object is back at k+m" must
        wait for. The pass `own_job` does not wait for itself (it may be the disk heal).
        Returns what stands in the way and will not pass by waiting (an empty disk this
        monitor does not format by itself): the pass reports those as left to do."""
        while True:
            if self._task is None:  # no background probes: probe here (probe_s apart)
                await self.check_all()
            fresh = [
                s
                for s in self.diskset.slots
                if not s.online
                and (p := self.health[s.position].last_probe) is not None
                and p.status == ProbeStatus.FRESH
            ]
            healing = [s for s in self.diskset.online_slots() if self.health[s.position].tracker]
            if fresh and not self.config.format_fresh:
                return [
                    f"disk {s.position} ({s.disk.root}) is empty and waits for "
                    f"`s3free disk replace {s.position}`"
                    for s in fresh
                ]
            if not fresh and not healing:
                return []
            if own_job and self._healing.job_id == own_job:
                return []  # this pass is the disk heal
            healer, job_id = self.healer, self._healing.job_id
            job = healer.job(job_id) if healer is not None and job_id else None
            if (
                healer is not None
                and job is not None
                and job.state == JobState.RUNNING
                and job.id != own_job
            ):
                await healer.wait(job.id)
            else:  # the next probe formats the disk or starts the heal pass
                await asyncio.sleep(max(0.05, min(1.0, self.config.probe_s / 2)))
                if self._task is None:
                    await asyncio.sleep(self.config.probe_s)

    # -- status -------------------------------------------------------------------------------

    def state(self, slot: DiskSlot) -> DiskState:
        """offline, full (in service, no new data), healing or online."""
        if not slot.online:
            return DiskState.OFFLINE
        if slot.full:
            return DiskState.FULL
        if self.health[slot.position].tracker is not None:
            return DiskState.HEALING
        return DiskState.ONLINE

    async def status(self) -> dict:
        """Everything `disk status` shows, JSON-ready."""
        slots = self.diskset.slots
        usages = await asyncio.gather(
            *(self.store.run_io(s.disk.usage) for s in slots), return_exceptions=True
        )
        counts = await asyncio.gather(*(self._count(s) for s in slots))
        quarantined = await asyncio.gather(
            *(self._quarantine(s) for s in slots), return_exceptions=True
        )
        disks = []
        for slot, usage, count, held in zip(slots, usages, counts, quarantined, strict=True):
            h = self.health[slot.position]
            heal = None
            if h.tracker is not None:
                heal = h.tracker.to_json()
                if self.healer is None:
                    heal["waiting"] = "no heal service attached"
            disks.append(
                {
                    "position": slot.position,
                    "path": str(slot.disk.root),
                    "disk_id": slot.disk_id,
                    "set_id": self.diskset.set_id,
                    "state": str(self.state(slot)),
                    "problem": slot.problem,
                    "full": slot.full,  # why it takes no new data, "" when it does
                    "format": str(h.last_probe.status) if h.last_probe else "unknown",
                    "last_probe_ms": h.last_probe_ms,
                    "used_bytes": None if isinstance(usage, BaseException) else usage[0],
                    "total_bytes": None if isinstance(usage, BaseException) else usage[1],
                    "shards": count.to_json() if count else None,
                    "errors": h.errors,
                    "hard_errors": h.hard_errors,
                    "last_error": h.last_error,
                    "last_error_ms": h.last_error_ms,
                    "heal": heal,
                    "last_heal": h.last_heal,
                    # {"files", "bytes"} moved aside by repairs (None: offline or unreadable)
                    "quarantine": None if isinstance(held, BaseException) else held,
                }
            )
        ds = self.diskset
        return {"set_id": ds.set_id, "k": ds.k, "m": ds.m, "block_size": ds.block_size,
                "write_quorum": ds.write_quorum, "disks": disks}  # fmt: skip

    async def _quarantine(self, slot: DiskSlot) -> dict | None:
        """Files and bytes in the disk's quarantine (spec 13.2); None while it is offline."""
        return await self.store.run_io(self.quarantine_held, slot)

    def quarantine_held(self, slot: DiskSlot) -> dict | None:
        """{"files", "bytes"} in the disk's quarantine, None while it is offline (blocking:
        call it in a thread; the metrics scrape does)."""
        if not slot.online:
            return None
        return quarantine_summary(slot.disk.root)

    async def _count(self, slot: DiskSlot) -> ShardCount | None:
        """Shard files on the disk, counted at most every count_cache_s (bounded in time)."""
        h = self.health[slot.position]
        if not slot.online:
            return h.count
        if h.count is None or time.monotonic() - h.counted_at > self.config.count_cache_s:
            try:
                h.count = await self.store.run_io(
                    count_shards, slot.disk.root, self.config.count_budget_s
                )
                h.counted_at = time.monotonic()
            except OSError as exc:
                log.warning("could not count shards on %s: %s", slot.disk.root, exc)
        return h.count
