"""HealService: heal-on-read, the repair queue worker, scheduled scrubs, and jobs.

Everything runs on the store's event loop; file I/O and hashing go to the store's thread pool
in slices of a few blocks, so the loop is never held and a scrub takes one pool thread at a
time (client requests keep the rest). Background passes pace themselves (pacer.py).

Heal-on-read: the engine reports every bad or missing shard it meets (`store.fault_listeners`,
including shards a degraded PUT could not write). The listener only records the report in the
queue (in memory; persisted by a background task) and wakes the worker: the read that found it
is never blocked. The worker repairs one version at a time, most urgent first.

One repair per version at a time (a per-version lock), whoever asks: the worker, a scrub, a
repair job or repair_object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter

from s3free.engine.locks import KeyLocks
from s3free.engine.store import ObjectStore
from s3free.engine.types import ShardFault
from s3free.errors import NoSuchKey
from s3free.format.manifest import Manifest
from s3free.heal.model import HealConfig, Job, ObjectHealth
from s3free.heal.pacer import Pacer
from s3free.heal.queue import Ident, RepairQueue, now_ms
from s3free.heal.repair import RepairOutcome, repair_version
from s3free.heal.verify import verify_manifest
from s3free.meta.healstate import HealState

log = logging.getLogger(__name__)

# Fault reasons (engine/reader.py) that no repair can fix while they last.
UNFIXABLE_HERE = ("disk offline", "disk is not part of this set")


class HealService:
    def __init__(self, store: ObjectStore, config: HealConfig | None = None) -> None:
        self.store = store
        self.config = config or HealConfig()
        self.state = HealState(store.index)
        self.queue = RepairQueue(self.config.queue_max)
        self.unrepairable: dict[Ident, dict] = {}
        self.disk_errors: Counter[str] = Counter()
        # disk id -> progress of a disk heal; filled by whoever heals disks (helper "disk").
        self.disk_heal: dict[str, dict] = {}
        self.repairs = Counter()  # outcome status -> count, for status()
        self.shards_rebuilt = 0  # shards rewritten by repairs (metrics)
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._pacers: dict[str, Pacer] = {}
        self._repair_pacer = Pacer(self.config.scrub_rate_mb_s, self.config.scrub_files_per_s)
        self._locks = KeyLocks()
        self._fault_shards: dict[Ident, set[int]] = {}
        # (part, shard index) of each version already counted in disk_errors
        self._counted: dict[Ident, set[tuple[int, int]]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._rescheduled = asyncio.Event()  # set_interval: the scheduler looks again now
        self._worker: asyncio.Task | None = None
        self._scheduler: asyncio.Task | None = None
        self._flushing: asyncio.Task | None = None
        self._scrub_id: str | None = None
        self._last_scrub: dict | None = None
        # Counted here as passes end, not pieced together by whoever looks (metrics), so a
        # pass that starts and ends between two looks still counts: scrub passes completed
        # and bytes verified by scrubs since this process started, and per running job the
        # bytes a resumed pass carried over from before it (not verified by this process).
        self.scrub_passes = 0
        self.scrub_bytes = 0
        self.resumed_bytes: dict[str, int] = {}
        self._started = False

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the persisted queue, listen for read faults, start the worker and the
        scrub schedule (resuming a pass a restart interrupted)."""
        if self._started:
            return
        self._started = True
        self._stopping.clear()
        self.queue.load(await self.store._run(self.state.queue_all))
        self.unrepairable = dict(await self.store._run(self.state.unrepairable_all))
        record = await self.store._run(self.state.checkpoint)
        self._last_scrub = (record or {}).get("job")
        self.store.fault_listeners.append(self._on_fault)
        if (record or {}).get("in_progress"):
            self.start_scrub(resume=True)  # a pass a restart interrupted goes on at once
        self._worker = asyncio.ensure_future(self._work())
        self._scheduler = asyncio.ensure_future(self._schedule())

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def stop(self) -> None:
        """Stop listening, cancel background work (a scrub saves its checkpoint), persist
        the queue."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        if self._on_fault in self.store.fault_listeners:
            self.store.fault_listeners.remove(self._on_fault)
        # Tasks are cancelled while they sleep or wait on the pool; the pacers are not woken
        # first (Python 3.11's wait_for can lose a cancellation that races its wake-up).
        tasks = [t for t in (self._worker, self._scheduler, *self._tasks.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self._flush()

    # -- one object --------------------------------------------------------------------------

    async def verify(self, bucket: str, key: str) -> ObjectHealth:
        """The full health of the object's current version (NoSuchKey if absent)."""
        async with self.store.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                await self.store.get_manifest(bucket, key)  # raises NoSuchBucket/NoSuchKey
                raise NoSuchKey(f"{bucket}/{key} does not exist")
            health, _ = await self._verify(manifest, None)
            return health

    async def repair_object(self, bucket: str, key: str) -> ObjectHealth:
        """Verify, repair what needs it, and return the health after the repair."""
        async with self.store.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                await self.store.get_manifest(bucket, key)
                raise NoSuchKey(f"{bucket}/{key} does not exist")
            health, outcome = await self._check(manifest, None, None)
            if outcome is not None and outcome.status in ("repaired", "partial"):
                current = await self.store.current_manifest(bucket, key)
                if current is not None and current.version_id == manifest.version_id:
                    health, _ = await self._verify(current, None)
            return health

    async def check_key(self, bucket: str, key: str, pacer: Pacer, job: Job | None) -> bool:
        """Verify and repair one key as a pass does: errors are counted, never raised.
        False when the key does not exist (any more)."""
        async with self.store.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                return False
            try:
                await self._check(manifest, pacer, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s/%s: check failed: %s", bucket, key, exc)
                if job is not None:
                    job.error = f"{bucket}/{key}: {exc}"
                ident = (bucket, key, manifest.version_id)
                self.queue.add(ident, manifest.k, f"check failed: {exc}")
                self._changed()
        return True

    async def _verify(self, manifest: Manifest, pacer: Pacer | None) -> tuple[ObjectHealth, int]:
        return await verify_manifest(
            manifest,
            self.store.diskset,
            self.store.codec,
            self.store._run,
            pacer.pace if pacer is not None else None,
        )

    async def _check(
        self, manifest: Manifest, pacer: Pacer | None, job: Job | None
    ) -> tuple[ObjectHealth, RepairOutcome | None]:
        """Verify one version and repair it if it needs it (one repair per version at once)."""
        ident = (manifest.bucket, manifest.key, manifest.version_id)
        async with self._locks.hold(ident):
            health, max_generation = await self._verify(manifest, pacer)
            if job is not None:
                job.bytes_checked += health.bytes_checked
                job.shards_bad += len(health.bad_shards())
            for shard in health.bad_shards():
                self._count_bad(ident, (shard.part, shard.shard), shard.disk_id)
            if not health.needs_repair:
                self._counted.pop(ident, None)
                await self._clear_unrepairable(ident)
                return health, None
            if not health.repairable:
                await self._record_unrepairable(ident, health, "data")
                if job is not None:
                    job.unrepairable += 1
                return health, RepairOutcome("unrepairable")
            outcome = await repair_version(
                self.store, manifest, health, max_generation, pacer.pace if pacer else None
            )
            self.repairs[outcome.status] += 1
            self.shards_rebuilt += outcome.shards_rebuilt
            if outcome.status == "repaired":
                self._counted.pop(ident, None)  # a shard bad again later is a new error
            if outcome.status in ("repaired", "partial"):
                if job is not None:
                    job.repaired += 1
                    job.manifests_restored += sum(
                        v in ("missing", "corrupt", "stale") for v in health.manifests.values()
                    )
                await self._clear_unrepairable(ident)
                log.info(
                    "repaired %s/%s (%s): %d shards rebuilt, generation %d%s",
                    *ident[:2],
                    manifest.version_id,
                    outcome.shards_rebuilt,
                    outcome.generation,
                    f"; not done: {'; '.join(outcome.failures)}" if outcome.failures else "",
                )
            if outcome.status == "partial":
                raise OSError("; ".join(outcome.failures))
            return health, outcome

    async def _record_unrepairable(
        self, ident: Ident, health: ObjectHealth | None, reason: str, detail: str = ""
    ) -> None:
        if health is not None:
            detail = "; ".join(health.errors) or (
                f"only {health.block_min_good} good shards in a block, {health.k} needed"
            )
        record = {
            "block_min_good": health.block_min_good if health else None,
            "detail": detail,
            "k": health.k if health else None,
            "ms": now_ms(),
            "reason": reason,
        }
        log.error(
            "%s/%s version %s cannot be repaired (%s): %s; its data was left untouched",
            *ident,
            reason,
            detail,
        )
        self.unrepairable[ident] = record
        await self.store._run(self.state.unrepairable_put, ident, record)

    async def _clear_unrepairable(self, ident: Ident) -> None:
        if self.unrepairable.pop(ident, None) is not None:
            await self.store._run(self.state.unrepairable_delete, ident)

    # -- heal-on-read and the queue worker ----------------------------------------------------

    def _count_bad(self, ident: Ident, shard: tuple[int, int], disk_id: str) -> None:
        """One error on the disk per bad shard until that shard is repaired: the read that met
        it and the verify that then finds it are the same error, not two."""
        if len(self._counted) > 100_000:  # versions deleted before their repair: forget them
            self._counted.clear()
        counted = self._counted.setdefault(ident, set())
        if shard not in counted:  # (part, shard index)
            counted.add(shard)
            self.disk_errors[disk_id] += 1

    def _on_fault(self, fault: ShardFault) -> None:
        """On the loop, for every bad shard a read met: queue, never block."""
        ident = (fault.bucket, fault.key, fault.version_id)
        if fault.reason.startswith(UNFIXABLE_HERE):
            self.disk_errors[fault.disk_id] += 1  # the disk is away: no repair will settle it
            return  # healing that disk (not this queue) rebuilds its shards
        self._count_bad(ident, (fault.part_number, fault.shard_index), fault.disk_id)
        shards = self._fault_shards.setdefault(ident, set())
        shards.add(fault.shard_index)
        priority = max(0, self.store.diskset.n - len(shards))
        if not self.queue.add(ident, priority, fault.reason) and ident not in self.queue.entries:
            self._fault_shards.pop(ident, None)
        self._changed()

    def _changed(self) -> None:
        self._wake.set()
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        writes = self.queue.take_writes()
        if not writes:
            return

        def apply() -> None:
            for ident, record in writes:
                if record is None:
                    self.state.queue_delete(ident)
                else:
                    self.state.queue_put(ident, record)

        await self.store._run(apply)

    async def _work(self) -> None:
        while True:
            entry = self.queue.pop()
            if entry is None:
                await self._flush()
                self._wake.clear()
                due = self.queue.next_due_ms()
                timeout = None if due is None else max(0.01, (due - now_ms()) / 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            await self._repair_entry(entry.ident)
            await self._flush()

    async def _repair_entry(self, ident: Ident) -> None:
        bucket, key, version_id = ident
        try:
            async with self.store.leased_manifest(bucket, key) as manifest:
                if manifest is None or manifest.version_id != version_id:
                    self.queue.done(ident)  # gone or replaced: nothing to repair
                else:
                    await self._check(manifest, self._repair_pacer, None)
                    self.queue.done(ident)
            self._fault_shards.pop(ident, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("repair of %s/%s failed: %s", bucket, key, exc)
            if not self.queue.retry(
                ident, self.config.retry_backoff_s, self.config.repair_retries, str(exc)
            ):
                self._fault_shards.pop(ident, None)
                await self._record_unrepairable(
                    ident, None, "retries", f"{self.config.repair_retries} retries failed: {exc}"
                )

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no queued repair is due (tests, shutdown scripts)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            due = [e for e in self.queue.entries.values() if e.due_ms <= now_ms()]
            if not due and not self._locks._locks:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("the repair queue did not drain")

    # -- jobs --------------------------------------------------------------------------------

    def start_scrub(
        self, bucket: str | None = None, rate_mb_s: float | None = None, *, resume: bool = False
    ) -> Job:
        """A pass over every object (or one bucket's): verify, repair, and (unscoped) collect
        orphans and record a resumable checkpoint. A scrub already running is returned
        instead of starting a second one, its byte rate changed to rate_mb_s if given (so
        `s3free disk scrub --rate` adjusts a pass under way, without a restart)."""
        if self._scrub_id is not None and self._jobs[self._scrub_id].state == "running":
            running = self._jobs[self._scrub_id]
            pacer = self._pacers.get(running.id)
            if rate_mb_s is not None and pacer is not None:
                pacer.set_rate(rate_mb_s=rate_mb_s)
            return running
        pacer = Pacer(
            self.config.scrub_rate_mb_s if rate_mb_s is None else rate_mb_s,
            self.config.scrub_files_per_s,
        )
        job = self._new_job("scrub", bucket, None, pacer, resume)
        self._scrub_id = job.id
        return job

    def start_repair(self, bucket: str | None = None, key: str | None = None) -> Job:
        """Verify every object in scope and repair what needs it (no orphan collection)."""
        if key is not None and bucket is None:
            raise ValueError("a key needs its bucket")
        pacer = Pacer(self.config.scrub_rate_mb_s, self.config.scrub_files_per_s)
        return self._new_job("repair", bucket, key, pacer, False)

    def _new_job(
        self, kind: str, bucket: str | None, key: str | None, pacer: Pacer, resume: bool
    ) -> Job:
        job = Job(uuid.uuid4().hex[:16], kind, "running", bucket, key, started_ms=now_ms())
        self._jobs[job.id] = job
        self._pacers[job.id] = pacer
        self._tasks[job.id] = asyncio.ensure_future(self._run_job(job, pacer, resume))
        return job

    async def _run_job(self, job: Job, pacer: Pacer, resume: bool) -> None:
        from s3free.heal.scrub import collect_orphans, walk

        unscoped = job.bucket is None and job.key is None
        try:
            await walk(
                self,
                job,
                pacer,
                bucket=job.bucket,
                key=job.key,
                checkpoint=job.kind == "scrub" and unscoped,
                resume=resume,
            )
            if job.kind == "scrub" and unscoped:
                await collect_orphans(self, job, pacer)
            job.state = "done"
        except asyncio.CancelledError:
            job.state = "cancelled"
            raise
        except Exception as exc:
            log.exception("%s job %s failed", job.kind, job.id)
            job.state = "failed"
            job.error = str(exc)
        finally:
            job.throttled = pacer.stats.sleeps
            job.finished_ms = now_ms()
            self._pacers.pop(job.id, None)
            self._tasks.pop(job.id, None)
            if job.kind == "scrub":
                self._last_scrub = job.to_json()
                self.scrub_passes += job.state == "done"
                self.scrub_bytes += job.bytes_checked - self.resumed_bytes.pop(job.id, 0)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once finished, or as it stands when the timeout ends."""
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        task = self._tasks.get(job_id)
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
            except Exception:
                pass  # recorded in the job
        return job

    def job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def set_rate(self, rate_mb_s: float | None = None, files_per_s: float | None = None) -> None:
        """Change the caps now, for running passes and the ones to come."""
        for value in (rate_mb_s, files_per_s):
            if value is not None and value < 0:
                raise ValueError("rates must not be negative")
        if rate_mb_s is not None:
            self.config.scrub_rate_mb_s = rate_mb_s
        if files_per_s is not None:
            self.config.scrub_files_per_s = files_per_s
        for pacer in [*self._pacers.values(), self._repair_pacer]:
            pacer.set_rate(rate_mb_s, files_per_s)

    def set_interval(self, interval_s: float) -> None:
        """Change the time between scheduled scrub passes now (0: only on demand)."""
        if interval_s < 0:
            raise ValueError("the scrub interval must not be negative")
        self.config.scrub_interval_s = interval_s
        self._rescheduled.set()

    def scrub_bytes_now(self) -> int:
        """Bytes verified by scrubs in this process, the running pass's included."""
        job = self._jobs.get(self._scrub_id) if self._scrub_id else None
        running = 0
        if job is not None and job.state == "running":
            running = job.bytes_checked - self.resumed_bytes.get(job.id, 0)
        return self.scrub_bytes + running

    def status(self) -> dict:
        scrub = self._jobs.get(self._scrub_id) if self._scrub_id else None
        return {
            "queue_depth": len(self.queue),
            "queue_dropped": self.queue.dropped,
            "repairs": dict(self.repairs),
            "unrepairable": [
                {"bucket": b, "key": k, "version_id": v, **record}
                for (b, k, v), record in sorted(self.unrepairable.items())
            ],
            "scrub": scrub.to_json() if scrub is not None else self._last_scrub,
            "disks": {
                slot.disk_id: {
                    "errors": self.disk_errors.get(slot.disk_id, 0),
                    "heal": self.disk_heal.get(slot.disk_id),
                }
                for slot in self.store.diskset.slots
            },
        }

    # -- schedule ----------------------------------------------------------------------------

    async def _schedule(self) -> None:
        """Resume an interrupted pass now; then one pass scrub_interval_s after the last
        completed one (the first: that long after the service first ran)."""
        if self._scrub_id is not None:
            await self.wait(self._scrub_id)
        while True:
            record = await self.store._run(self.state.checkpoint) or {}
            if "last_completed_ms" not in record and "baseline_ms" not in record:
                record["baseline_ms"] = now_ms()
                await self.store._run(self.state.set_checkpoint, record)
            interval = self.config.scrub_interval_s
            last = record.get("last_completed_ms") or record["baseline_ms"]
            wait_s = (last + interval * 1000 - now_ms()) / 1000
            if interval <= 0 or wait_s > 0:
                # Re-read the schedule at least every minute, and at once after set_interval.
                if await self._pause(min(wait_s, 60.0) if interval > 0 else None):
                    return
                continue
            await self.wait(self.start_scrub(resume=True).id)

    async def _pause(self, seconds: float | None) -> bool:
        """Sleep up to seconds (None: no limit) or until set_interval; True when stopping."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self._stopping, self._rescheduled)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._rescheduled.clear()
        return self._stopping.is_set()


async def attach(store: ObjectStore, config: HealConfig | None = None) -> HealService:
    """Create and start the heal service for an open store. The caller must
    `await service.stop()` before `store.close()`."""
    service = HealService(store, config)
    await service.start()
    return service
