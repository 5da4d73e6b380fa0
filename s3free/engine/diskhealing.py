"""Healing a disk that came back empty: its tracker (<disk>/healing.json) and the repair pass
it waits on (specs/beexl-v1.md, "Disk states"). The disk monitor owns one HealingDriver and
calls it after every round of probes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from s3free.engine.diskstate import DiskHealth, Healer, MonitorConfig, log, now_ms
from s3free.states import JobState
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.health import HealingTracker, read_tracker, remove_tracker, write_tracker
from s3free.storage.monitored import unwrap


class HealingDriver:
    """Starts a repair pass when a disk is healing and none runs, copies its progress into the
    trackers, and ends a disk's healing when a pass that started after it came in finished."""

    def __init__(
        self,
        diskset: DiskSet,
        health: dict[int, DiskHealth],
        run_io: Callable[..., Awaitable[Any]],
        config: MonitorConfig,
    ) -> None:
        self.diskset = diskset
        self.health = health
        self._run_io = run_io
        self.config = config
        self.job_id = ""  # the repair pass healing disks are waiting on
        self._retry_at = 0.0

    async def load_tracker(self, slot: DiskSlot) -> None:
        """The disk's healing tracker (a disk that was healing when the server stopped)."""
        h = self.health[slot.position]
        try:
            tracker = await self._run_io(read_tracker, unwrap(slot.disk))
        except Exception as exc:  # unreadable or invalid: healing state unknown, heal again
            log.error("healing tracker on %s unusable (%s): healing again", slot.disk.root, exc)
            tracker = HealingTracker(
                self.diskset.set_id, slot.disk_id, slot.position, now_ms(), f"tracker: {exc}"
            )
        if tracker is not None and (
            tracker.set_id != self.diskset.set_id or tracker.disk_id != slot.disk_id
        ):
            log.error("healing tracker on %s names another disk: healing again", slot.disk.root)
            tracker = HealingTracker(
                self.diskset.set_id, slot.disk_id, slot.position, now_ms(), "tracker mismatch"
            )
        h.tracker = tracker

    async def drive(self, healer: Healer | None) -> None:
        """Follow the repair pass the healing disks wait on; start one when none runs; a
        disk is healed when a pass that started after it came in finished."""
        healing = [
            s for s in self.diskset.online_slots() if self.health[s.position].tracker is not None
        ]
        if not healing or healer is None:
            return
        job = healer.job(self.job_id) if self.job_id else None
        if job is not None and job.state == JobState.RUNNING:
            for slot in healing:
                tracker = self.health[slot.position].tracker
                if tracker is not None and tracker.job_id == job.id:
                    self._copy_progress(tracker, job)
                    await self.save_tracker(slot)
            return
        for slot in healing:
            h = self.health[slot.position]
            tracker = h.tracker
            assert tracker is not None
            if job is not None and tracker.job_id == job.id:
                self._copy_progress(tracker, job)
                if job.state == JobState.DONE:
                    await self._finish(slot, job)
                    continue
            tracker.job_id = ""  # none yet, failed, cancelled, or unknown after a restart
        waiting = [s for s in healing if self.health[s.position].tracker is not None]
        if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED):
            log.error("repair pass %s %s: %s; retrying", job.id, job.state, job.error)
            self._retry_at = time.monotonic() + self.config.cooldown_s
        self.job_id = ""
        if not waiting or time.monotonic() < self._retry_at:
            return
        job = healer.start_repair()
        self.job_id = job.id
        for slot in waiting:
            tracker = self.health[slot.position].tracker
            assert tracker is not None
            tracker.job_id, tracker.job_state = job.id, str(job.state)
            tracker.passes += 1
            await self.save_tracker(slot)
        log.info("repair pass %s started to heal %d disk(s)", job.id, len(waiting))

    @staticmethod
    def _copy_progress(tracker: HealingTracker, job: Any) -> None:
        tracker.job_state = str(job.state)
        tracker.objects_checked = job.objects_checked
        tracker.objects_repaired = job.repaired
        tracker.bytes_checked = job.bytes_checked
        tracker.unrepairable = job.unrepairable
        tracker.last_key = str(job.to_json().get("last_key") or "")

    async def save_tracker(self, slot: DiskSlot) -> None:
        tracker = self.health[slot.position].tracker
        try:
            await self._run_io(write_tracker, unwrap(slot.disk), tracker)
        except OSError as exc:
            log.warning("could not update healing tracker on %s: %s", slot.disk.root, exc)

    async def _finish(self, slot: DiskSlot, job: Any) -> None:
        h = self.health[slot.position]
        try:
            await self._run_io(remove_tracker, unwrap(slot.disk))
        except OSError as exc:
            log.warning("could not remove healing tracker on %s: %s", slot.disk.root, exc)
            return
        assert h.tracker is not None
        h.last_heal = {**h.tracker.to_json(), "finished_ms": now_ms()}
        h.tracker = None
        log.warning(
            "disk %s healed: %d objects checked, %d repaired, %d unrepairable",
            slot.disk.root,
            job.objects_checked,
            job.repaired,
            job.unrepairable,
        )
