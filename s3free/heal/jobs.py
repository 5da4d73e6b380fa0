"""Scrub and repair jobs: starting a pass, running it to "done" (which means restored: it
waits for the disk heals it overlaps and tries its failures again), and the scrub schedule.

The walk and the orphan pass themselves are in heal/scrub.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from s3free.heal.ledger import HealLedger
from s3free.heal.model import HealConfig, Job, JobKind, JobPhase, JobState
from s3free.heal.pacer import Pacer
from s3free.heal.queue import now_ms
from s3free.heal.worker import RepairWorker

if TYPE_CHECKING:
    from s3free.heal.service import HealService

# The service's logger (the name its log lines have always carried).
log = logging.getLogger("s3free.heal.service")

LEFT_SHOWN = 100  # versions a pass names in what it left to do (all are counted)


class JobRunner:
    def __init__(
        self, service: HealService, ledger: HealLedger, worker: RepairWorker, config: HealConfig
    ) -> None:
        self.service = service
        self.ledger = ledger
        self.worker = worker
        self.config = config
        self.jobs: dict[str, Job] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.pacers: dict[str, Pacer] = {}
        self.scrub_id: str | None = None
        self.last_scrub: dict | None = None
        # Counted here as passes end, not pieced together by whoever looks (metrics), so a
        # pass that starts and ends between two looks still counts: scrub passes completed
        # and bytes verified by scrubs since this process started, and per running job the
        # bytes a resumed pass carried over from before it (not verified by this process).
        self.scrub_passes = 0
        self.scrub_bytes = 0
        self.resumed_bytes: dict[str, int] = {}
        self.rescheduled = asyncio.Event()  # set_interval: the scheduler looks again now

    def running_scrub(self) -> Job | None:
        job = self.jobs.get(self.scrub_id) if self.scrub_id else None
        return job if job is not None and job.state == JobState.RUNNING else None

    def start_scrub(self, bucket: str | None, rate_mb_s: float | None, resume: bool) -> Job:
        """See HealService.start_scrub."""
        running = self.running_scrub()
        if running is not None:
            pacer = self.pacers.get(running.id)
            if rate_mb_s is not None and pacer is not None:
                pacer.set_rate(rate_mb_s=rate_mb_s)
            return running
        pacer = Pacer(
            self.config.scrub_rate_mb_s if rate_mb_s is None else rate_mb_s,
            self.config.scrub_files_per_s,
        )
        job = self._new_job(JobKind.SCRUB, bucket, None, pacer, resume)
        self.scrub_id = job.id
        return job

    def start_repair(self, bucket: str | None, key: str | None, rate_mb_s: float | None) -> Job:
        """See HealService.start_repair."""
        if key is not None and bucket is None:
            raise ValueError("a key needs its bucket")
        rate = self.config.scrub_rate_mb_s if rate_mb_s is None else rate_mb_s
        pacer = Pacer(rate, self.config.scrub_files_per_s)
        return self._new_job(JobKind.REPAIR, bucket, key, pacer, False)

    def set_job_rate(self, job_id: str, rate_mb_s: float) -> Job | None:
        pacer = self.pacers.get(job_id)
        if pacer is None:
            return None
        pacer.set_rate(rate_mb_s=rate_mb_s)
        return self.jobs.get(job_id)

    def _new_job(
        self, kind: JobKind, bucket: str | None, key: str | None, pacer: Pacer, resume: bool
    ) -> Job:
        job = Job(uuid.uuid4().hex[:16], kind, JobState.RUNNING, bucket, key, started_ms=now_ms())
        self.jobs[job.id] = job
        self.pacers[job.id] = pacer
        self.tasks[job.id] = asyncio.ensure_future(self._run_job(job, pacer, resume))
        return job

    async def _run_job(self, job: Job, pacer: Pacer, resume: bool) -> None:
        from s3free.heal.scrub import collect_orphans, walk

        service = self.service
        unscoped = job.bucket is None and job.key is None
        try:
            await walk(
                service,
                job,
                pacer,
                bucket=job.bucket,
                key=job.key,
                checkpoint=job.kind == JobKind.SCRUB and unscoped,
                resume=resume,
            )
            if unscoped:
                job.phase = JobPhase.RECORDS
                for keeper in service.record_keepers:
                    job.records_restored += await keeper()
            if job.kind == JobKind.SCRUB and unscoped:
                job.phase = JobPhase.ORPHANS
                await collect_orphans(service, job, pacer)
            job.phase = JobPhase.FINISHING
            await self._finish_pass(job, pacer, wait_for_disks=unscoped)
            job.state = JobState.DONE
        except asyncio.CancelledError:
            job.state = JobState.CANCELLED
            raise
        except Exception as exc:
            log.exception("%s job %s failed", job.kind, job.id)
            job.state = JobState.FAILED
            job.error = str(exc)
        finally:
            job.throttled = pacer.stats.sleeps
            job.finished_ms = now_ms()
            self.pacers.pop(job.id, None)
            self.tasks.pop(job.id, None)
            if job.kind == JobKind.SCRUB:
                self.last_scrub = job.to_json()
                self.scrub_passes += job.state == JobState.DONE
                self.scrub_bytes += job.bytes_checked - self.resumed_bytes.pop(job.id, 0)

    async def _finish_pass(self, job: Job, pacer: Pacer, *, wait_for_disks: bool) -> None:
        """What makes "done" mean restored: wait for the disk heals the pass overlaps (a whole
        pass only: a wiped disk is rebuilt by the monitor's heal pass, which the walk cannot
        see finish), try again what failed during the walk, and name what is still left (a
        version waiting for an offline disk, a repair that keeps failing, a disk to replace)."""
        blocked: list[str] = []
        monitor = self.service.monitor
        if wait_for_disks and monitor is not None:
            blocked = await monitor.wait_healed(own_job=job.id)
        # What failed, and what waited for a disk that is back now (healed, or returned).
        for ident in sorted(job.retry | set(job.waiting_left())):
            job.clear_left(ident)
            if not await self.worker.repair_entry(ident, pacer, job):
                entry = self.ledger.queue.entries.get(ident)
                job.note_left(ident, f"repair failed: {entry.reason if entry else 'see the log'}")
        await self.ledger.flush()
        job.seal_left(blocked, LEFT_SHOWN)
        if job.left_total:
            log.warning(
                "%s %s finished with %d object version(s) still below k+m; first: %s",
                job.kind,
                job.id,
                job.left_total,
                job.left[0],
            )

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once finished, or as it stands when the timeout ends."""
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        task = self.tasks.get(job_id)
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                # The job's own cancellation ends this wait; the waiter's (a pass waiting for
                # a disk heal, stopped with the service) must go on up, never be swallowed.
                current = asyncio.current_task()
                if not task.cancelled() or (current is not None and current.cancelling()):
                    raise
            except Exception:
                pass  # recorded in the job
        return job

    def scrub_bytes_now(self) -> int:
        """Bytes verified by scrubs in this process, the running pass's included."""
        job = self.running_scrub()
        running = 0
        if job is not None:
            running = job.bytes_checked - self.resumed_bytes.get(job.id, 0)
        return self.scrub_bytes + running

    def scrub_json(self) -> dict | None:
        """The running (or else the last) scrub pass, as status() shows it."""
        scrub = self.jobs.get(self.scrub_id) if self.scrub_id else None
        return scrub.to_json() if scrub is not None else self.last_scrub

    # -- schedule ----------------------------------------------------------------------------

    async def schedule(self, stopping: asyncio.Event) -> None:
        """Resume an interrupted pass now; then one pass scrub_interval_s after the last
        completed one (the first: that long after the service first ran)."""
        store, state = self.service.store, self.service.state
        if self.scrub_id is not None:
            await self.wait(self.scrub_id)
        while True:
            record = await store.run_io(state.checkpoint) or {}
            if "last_completed_ms" not in record and "baseline_ms" not in record:
                record["baseline_ms"] = now_ms()
                await store.run_io(state.set_checkpoint, record)
            interval = self.config.scrub_interval_s
            last = record.get("last_completed_ms") or record["baseline_ms"]
            wait_s = (last + interval * 1000 - now_ms()) / 1000
            if interval <= 0 or wait_s > 0:
                # Re-read the schedule at least every minute, and at once after set_interval.
                if await self._pause(stopping, min(wait_s, 60.0) if interval > 0 else None):
                    return
                continue
            await self.wait(self.start_scrub(None, None, resume=True).id)

    async def _pause(self, stopping: asyncio.Event, seconds: float | None) -> bool:
        """Sleep up to seconds (None: no limit) or until set_interval; True when stopping."""
        waits = [asyncio.ensure_future(e.wait()) for e in (stopping, self.rescheduled)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self.rescheduled.clear()
        return stopping.is_set()
