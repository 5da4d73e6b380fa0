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
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

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
from s3free.heal.waiting import WaitingSet
from s3free.meta.healstate import HealState

if TYPE_CHECKING:
    from s3free.engine.diskmonitor import DiskMonitor

log = logging.getLogger(__name__)

# Fault reasons (engine/reader.py) that no repair can fix while they last.
UNFIXABLE_HERE = ("disk offline", "disk is not part of this set")
# A write that missed a disk because it was offline (engine/store.py `_publish`).
MISSED_OFFLINE = "not written: disk offline"
MISSED_FULL = "not written: disk full"  # ... or because the monitor marked it full
CATCH_UP_CONCURRENCY = 4  # waiting versions repaired at once after a disk returns
LEFT_SHOWN = 100  # versions a pass names in what it left to do (all are counted)


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
        # Below k+m for want of offline disks; repaired when one of their disks is back.
        self.waiting = WaitingSet(self.state, store.run_io)
        self.monitor: DiskMonitor | None = None
        self._returned = asyncio.Event()  # a disk came back: walk the waiting versions
        self._catching_up: asyncio.Task | None = None
        self.caught_up = 0  # waiting versions repaired after their disk returned
        self._background: set[asyncio.Task] = set()
        # Records kept on every disk (buckets, users: what a lost index is rebuilt from),
        # checked and rewritten by whole-store passes; each returns the copies rewritten.
        self.record_keepers: list[Callable[[], Awaitable[int]]] = [
            store.healing.restore_bucket_records
        ]

    def use_monitor(self, monitor: DiskMonitor) -> None:
        """The disk monitor, whose disk heals a pass waits for before it says done."""
        self.monitor = monitor

    def disk_online(self, disk_id: str) -> None:
        """A disk is back (monitor): repair what waited for it, paced, with no command run;
        and bring its records (buckets, users) up to date now, so its stale copies of records
        changed while it was away are not what a lost index is rebuilt from."""
        if self.waiting.count or self.waiting.dirty:
            self._returned.set()
        if self._started:
            self._spawn(self._keep_records(disk_id))

    async def _keep_records(self, disk_id: str) -> None:
        for keeper in self.record_keepers:
            try:
                restored = await keeper()
            except Exception:
                log.exception("records not brought up to date after disk %s returned", disk_id)
                continue
            if restored:
                log.info("disk %s back: %d record copies brought up to date", disk_id, restored)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the persisted queue, listen for read faults, start the worker and the
        scrub schedule (resuming a pass a restart interrupted)."""
        if self._started:
            return
        self._started = True
        self._stopping.clear()
        self.queue.load(await self.store.run_io(self.state.queue_all))
        self.unrepairable = dict(await self.store.run_io(self.state.unrepairable_all))
        await self.waiting.load()
        self.store.retire_listeners.append(self._on_retired)
        self._spawn(self._prune_unrepairable())
        if self.waiting.count:
            self._returned.set()  # disks that came back while the server was down
        record = await self.store.run_io(self.state.checkpoint)
        self._last_scrub = (record or {}).get("job")
        self.store.fault_listeners.append(self._on_fault)
        if (record or {}).get("in_progress"):
            self.start_scrub(resume=True)  # a pass a restart interrupted goes on at once
        self._worker = asyncio.ensure_future(self._work())
        self._scheduler = asyncio.ensure_future(self._schedule())
        self._catching_up = asyncio.ensure_future(self._catch_up())

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
        if self._on_retired in self.store.retire_listeners:
            self.store.retire_listeners.remove(self._on_retired)
        # Tasks are cancelled while they sleep or wait on the pool; the pacers are not woken
        # first (Python 3.11's wait_for can lose a cancellation that races its wake-up).
        tasks = [
            t
            for t in (
                self._worker,
                self._scheduler,
                self._catching_up,
                *self._tasks.values(),
                *self._background,
            )
            if t
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self._flush()

    # -- one object --------------------------------------------------------------------------

    async def verify(self, bucket: str, key: str) -> ObjectHealth:
        """The full health of the object's current version (NoSuchKey if absent)."""
        async with self.store.healing.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                await self.store.get_manifest(bucket, key)  # raises NoSuchBucket/NoSuchKey
                raise NoSuchKey(f"{bucket}/{key} does not exist")
            health, _ = await self._verify(manifest, None)
            return health

    async def repair_object(self, bucket: str, key: str) -> ObjectHealth:
        """Verify, repair what needs it, and return the health after the repair."""
        async with self.store.healing.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                await self.store.get_manifest(bucket, key)
                raise NoSuchKey(f"{bucket}/{key} does not exist")
            health, outcome = await self._check(manifest, None, None)
            if health is None or (
                outcome is not None and outcome.status in ("repaired", "partial")
            ):
                return await self.verify(bucket, key)  # as it stands now
            return health

    async def check_key(self, bucket: str, key: str, pacer: Pacer, job: Job | None) -> bool:
        """Verify and repair one key as a pass does: errors are counted, never raised.
        False when the key does not exist (any more)."""
        async with self.store.healing.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                return False
            ident = (bucket, key, manifest.version_id)
            try:
                await self._check(manifest, pacer, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s/%s: check failed: %s", bucket, key, exc)
                if job is not None:
                    job.error = f"{bucket}/{key}: {exc}"
                    job.retry.add(ident)  # tried again before the pass says done
                self.queue.add(ident, manifest.k, f"check failed: {exc}", manifest.size)
                self._changed()
        return True

    async def _verify(self, manifest: Manifest, pacer: Pacer | None) -> tuple[ObjectHealth, int]:
        return await verify_manifest(
            manifest,
            self.store.diskset,
            self.store.codec,
            self.store.run_io,
            pacer.pace if pacer is not None else None,
        )

    async def _check(
        self, manifest: Manifest, pacer: Pacer | None, job: Job | None
    ) -> tuple[ObjectHealth | None, RepairOutcome | None]:
        """Verify one version and repair it if it needs it. One check per version at a time,
        whoever asks (a scrub, the disk heal, the queue worker, an operator), and each works
        from the index's manifest as it is once the version is theirs: a check that waited
        while another repaired the version sees that repair's generation, so it finds the
        rebuilt shards good instead of "newer than the manifest", and neither rebuilds them
        again nor quarantines them. (None, superseded) when the version is no longer current.
        Whatever the outcome, what the heal service remembers of the version (queued,
        waiting for a disk, unrepairable) is brought in line with what the check found."""
        ident = (manifest.bucket, manifest.key, manifest.version_id)
        async with self._locks.hold(ident):
            current = await self.store.healing.current_manifest(manifest.bucket, manifest.key)
            if current is None or current.version_id != manifest.version_id:
                await self._forget(ident)
                return None, RepairOutcome("superseded")
            manifest = current
            health, max_generation = await self._verify(manifest, pacer)
            if job is not None:
                job.bytes_checked += health.bytes_checked
                job.shards_bad += len(health.bad_shards())
            for shard in health.bad_shards():
                if shard.state != "offline":
                    self._count_bad(ident, (shard.part, shard.shard), shard.disk_id)
            if not health.needs_repair:
                self._counted.pop(ident, None)
                await self._settled(ident, health, manifest.size, job)
                return health, None
            if not health.repairable and _may_come_back(health):
                # Short of k good shards only because some are on disks that are away: not
                # lost (a disk-full or outage episode once recorded 47 intact objects so).
                away = {s.disk_id for s in health.shards if s.state == "offline"}
                self.waiting.set(ident, away, manifest.size)
                self._changed()
                if job is not None:
                    job.note_waiting(ident, away)
                return health, RepairOutcome("waiting")
            if not health.repairable:
                await self._record_unrepairable(ident, health, "data")
                self.queue.remove(ident)
                self.waiting.set(ident, set())
                self._changed()
                if job is not None:
                    job.unrepairable += 1
                return health, RepairOutcome("unrepairable")
            outcome = await repair_version(
                self.store, manifest, health, max_generation, pacer.pace if pacer else None
            )
            self.repairs[outcome.status] += 1
            self.shards_rebuilt += outcome.shards_rebuilt
            if outcome.status == "superseded":
                await self._forget(ident)
                return None, outcome
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
            await self._settled(ident, health, manifest.size, job)
            return health, outcome

    async def _settled(
        self, ident: Ident, health: ObjectHealth, size: int, job: Job | None
    ) -> None:
        """After a check that left nothing it could fix: the version is back at k+m, or
        waits only for offline disks (the shards and manifest copies that belong there)."""
        offline = {s.disk_id for s in health.shards if s.state == "offline"}
        offline |= {d for d, v in health.manifests.items() if v == "offline"}
        self.waiting.set(ident, offline, size)
        if offline:
            if job is not None:
                job.note_waiting(ident, offline)
        else:
            await self._clear_unrepairable(ident)
        self.queue.remove(ident)  # a report that came before this check is answered by it
        self._fault_shards.pop(ident, None)
        self._changed()

    async def _forget(self, ident: Ident) -> None:
        """The version was replaced or deleted: nothing about it is left to do or to report."""
        self.queue.remove(ident)
        self.waiting.set(ident, set())
        self._fault_shards.pop(ident, None)
        self._counted.pop(ident, None)
        await self._clear_unrepairable(ident)
        self._changed()

    def _on_retired(self, manifest: Manifest) -> None:
        """On the loop, for each version a write or delete replaced (engine)."""
        ident = (manifest.bucket, manifest.key, manifest.version_id)
        if (
            ident in self.unrepairable
            or ident in self.queue.entries
            or self.waiting.count
            or ident in self._fault_shards
        ):
            self._spawn(self._forget(ident))

    async def _prune_unrepairable(self) -> None:
        """At start: drop records of versions deleted or replaced while the server was down
        or before records were cleared on delete (they would never clear otherwise)."""
        for ident in list(self.unrepairable):
            current = await self.store.healing.current_manifest(ident[0], ident[1])
            if current is None or current.version_id != ident[2]:
                await self._clear_unrepairable(ident)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
        if ident not in self.unrepairable:  # once per version, not once per look
            log.error(
                "%s/%s version %s cannot be repaired (%s): %s; its data was left untouched",
                *ident,
                reason,
                detail,
            )
        self.unrepairable[ident] = record
        await self.store.run_io(self.state.unrepairable_put, ident, record)

    async def _clear_unrepairable(self, ident: Ident) -> None:
        if self.unrepairable.pop(ident, None) is not None:
            await self.store.run_io(self.state.unrepairable_delete, ident)

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
        """On the loop, for every bad shard a read met or a write could not make: queue (or,
        for a write that missed an offline disk, wait for that disk), never block."""
        ident = (fault.bucket, fault.key, fault.version_id)
        if fault.reason.startswith((MISSED_OFFLINE, MISSED_FULL)):
            # No repair can succeed before the disk is back: wait for it, not for a retry.
            self.waiting.add(ident, {fault.disk_id}, fault.object_size)
            self._changed()
            return
        if fault.reason.startswith(UNFIXABLE_HERE):
            return  # a read met an offline disk: healing that disk (not this queue) settles it
        self._count_bad(ident, (fault.part_number, fault.shard_index), fault.disk_id)
        shards = self._fault_shards.setdefault(ident, set())
        shards.add(fault.shard_index)
        priority = max(0, self.store.diskset.n - len(shards))
        added = self.queue.add(ident, priority, fault.reason, fault.object_size)
        if not added and ident not in self.queue.entries:
            self._fault_shards.pop(ident, None)
        self._changed()

    def _changed(self) -> None:
        self._wake.set()
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        await self.waiting.flush()
        writes = self.queue.take_writes()
        if not writes:
            return

        def apply() -> None:
            for ident, record in writes:
                if record is None:
                    self.state.queue_delete(ident)
                else:
                    self.state.queue_put(ident, record)

        await self.store.run_io(apply)

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

    async def _repair_entry(
        self, ident: Ident, pacer: Pacer | None = None, job: Job | None = None
    ) -> bool:
        """Check and repair one queued or waiting version; True when nothing is left to do
        for it now (repaired, clean, gone, or waiting for an offline disk)."""
        bucket, key, version_id = ident
        try:
            async with self.store.healing.leased_manifest(bucket, key) as manifest:
                if manifest is None or manifest.version_id != version_id:
                    await self._forget(ident)  # gone or replaced: nothing to repair
                else:
                    await self._check(manifest, pacer or self._repair_pacer, job)
                    self.queue.done(ident)
            self._fault_shards.pop(ident, None)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("repair of %s/%s failed: %s", bucket, key, exc)
            offline = await self._offline_placement(ident)
            if offline:  # a disk went away or is full: wait for it, not for retries
                self.queue.remove(ident)
                self.waiting.add(ident, offline)
                self._changed()
                if job is not None:
                    job.note_waiting(ident, offline)
                return True
            self.waiting.set(ident, set())  # the queue's retries take it over
            if ident not in self.queue.entries:
                self.queue.add(ident, 0, f"repair failed: {exc}")
            if not self.queue.retry(
                ident, self.config.retry_backoff_s, self.config.repair_retries, str(exc)
            ):
                self._fault_shards.pop(ident, None)
                await self._record_unrepairable(
                    ident, None, "retries", f"{self.config.repair_retries} retries failed: {exc}"
                )
            return False

    async def _offline_placement(self, ident: Ident) -> set[str]:
        """The offline or full disks among the version's placement (none if it is not
        current): a repair that failed while one is away or has no room waits for it."""
        try:
            manifest = await self.store.healing.current_manifest(ident[0], ident[1])
        except Exception:
            return set()
        if manifest is None or manifest.version_id != ident[2]:
            return set()
        offline = set()
        for disk_id in manifest.placement:
            slot = self.store.diskset.slot_for(disk_id)
            if not _usable(slot):
                offline.add(disk_id)
        return offline

    async def _catch_up(self) -> None:
        """After a disk comes back: repair every waiting version that names a disk now
        online, a few at once, paced like the queue's repairs."""
        while True:
            await self._returned.wait()
            self._returned.clear()
            await self.waiting.flush()
            after: Ident | None = None
            while True:
                page = await self.waiting.page(after)
                if not page:
                    break
                after = page[-1][0]
                ready = [ident for ident, record in page if self._any_online(record)]
                for i in range(0, len(ready), CATCH_UP_CONCURRENCY):
                    chunk = ready[i : i + CATCH_UP_CONCURRENCY]
                    done = await asyncio.gather(*(self._repair_entry(x) for x in chunk))
                    self.caught_up += sum(done)
                    await self._flush()

    def _any_online(self, record: dict) -> bool:
        for disk_id in record.get("disks", []):
            if _usable(self.store.diskset.slot_for(disk_id)):
                return True
        return False

    def _catching_up_now(self) -> bool:
        """Whether some waiting version could be repaired now (one of its disks is online)."""
        return self._returned.is_set() or any(
            _usable(self.store.diskset.slot_for(d)) for d in self.waiting.per_disk
        )

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no queued repair is due and no waiting version has a disk back (tests,
        shutdown scripts)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            await self._flush()
            due = [e for e in self.queue.entries.values() if e.due_ms <= now_ms()]
            if not due and not self._locks._locks and not self._catching_up_now():
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

    def start_repair(
        self, bucket: str | None = None, key: str | None = None, rate_mb_s: float | None = None
    ) -> Job:
        """Verify every object in scope and repair what needs it (no orphan collection)."""
        if key is not None and bucket is None:
            raise ValueError("a key needs its bucket")
        rate = self.config.scrub_rate_mb_s if rate_mb_s is None else rate_mb_s
        pacer = Pacer(rate, self.config.scrub_files_per_s)
        return self._new_job("repair", bucket, key, pacer, False)

    def set_job_rate(self, job_id: str, rate_mb_s: float) -> Job | None:
        """Pace a running job at rate_mb_s from now (`disk replace --rate`: the disk monitor,
        not the operator, starts a replaced disk's heal pass). None if it is not running."""
        pacer = self._pacers.get(job_id)
        if pacer is None:
            return None
        pacer.set_rate(rate_mb_s=rate_mb_s)
        return self._jobs.get(job_id)

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
            if unscoped:
                job.phase = "records"
                for keeper in self.record_keepers:
                    job.records_restored += await keeper()
            if job.kind == "scrub" and unscoped:
                job.phase = "orphans"
                await collect_orphans(self, job, pacer)
            job.phase = "finishing"
            await self._finish_pass(job, pacer, wait_for_disks=unscoped)
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

    async def _finish_pass(self, job: Job, pacer: Pacer, *, wait_for_disks: bool) -> None:
        """What makes "done" mean restored: wait for the disk heals the pass overlaps (a whole
        pass only: a wiped disk is rebuilt by the monitor's heal pass, which the walk cannot
        see finish), try again what failed during the walk, and name what is still left (a
        version waiting for an offline disk, a repair that keeps failing, a disk to replace)."""
        blocked: list[str] = []
        if wait_for_disks and self.monitor is not None:
            blocked = await self.monitor.wait_healed(own_job=job.id)
        # What failed, and what waited for a disk that is back now (healed, or returned).
        for ident in sorted(job.retry | set(job.waiting_left())):
            job.clear_left(ident)
            if not await self._repair_entry(ident, pacer, job):
                entry = self.queue.entries.get(ident)
                job.note_left(ident, f"repair failed: {entry.reason if entry else 'see the log'}")
        await self._flush()
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
                # The job's own cancellation ends this wait; the waiter's (a pass waiting for
                # a disk heal, stopped with the service) must go on up, never be swallowed.
                current = asyncio.current_task()
                if not task.cancelled() or (current is not None and current.cancelling()):
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

    def degraded(self) -> dict:
        """How many versions the store knows to be below k+m and still repairable: queued
        for repair (a read or a pass found them) or waiting for an offline disk; and how many
        disks are healing or offline, whose versions are below k+m without being counted one by
        one. 0 objects, 0 disks healing and 0 offline: every known version is at k+m."""
        healing = offline = 0
        if self.monitor is not None:
            for slot in self.store.diskset.slots:
                state = self.monitor.state(slot)
                healing += state == "healing"
                offline += state == "offline"
        else:
            offline = sum(not s.online for s in self.store.diskset.slots)
        return {
            "objects": len(self.queue) + self.waiting.count,
            "bytes": self.queue.total_bytes() + self.waiting.bytes,
            "queued": len(self.queue),
            "waiting": self.waiting.count,
            "waiting_by_disk": dict(sorted(self.waiting.per_disk.items())),
            "caught_up": self.caught_up,
            "disks_healing": healing,
            "disks_offline": offline,
        }

    def status(self) -> dict:
        scrub = self._jobs.get(self._scrub_id) if self._scrub_id else None
        return {
            "degraded": self.degraded(),
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
            record = await self.store.run_io(self.state.checkpoint) or {}
            if "last_completed_ms" not in record and "baseline_ms" not in record:
                record["baseline_ms"] = now_ms()
                await self.store.run_io(self.state.set_checkpoint, record)
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


def _usable(slot) -> bool:
    """Online and with room: a repair waiting for this disk may run now."""
    return slot is not None and slot.online and not slot.full


def _may_come_back(health: ObjectHealth) -> bool:
    """Whether the shards on offline disks would make up what each part lacks (they may be
    intact: the disk is only away), with nothing else (a Merkle root) saying the data is bad."""
    # Every error must be a block short of good shards (verify.py), not a hash or Merkle
    # disagreement, which no returning disk can make right.
    if any(" good shards of the " not in error for error in health.errors):
        return False
    per_part: dict[int, int] = {}
    for shard in health.shards:
        per_part[shard.part] = per_part.get(shard.part, 0) + (shard.state == "offline")
    away = min(per_part.values(), default=0)
    return away > 0 and health.block_min_good + away >= health.k


async def attach(store: ObjectStore, config: HealConfig | None = None) -> HealService:
    """Create and start the heal service for an open store. The caller must
    `await service.stop()` before `store.close()`."""
    service = HealService(store, config)
    await service.start()
    return service
