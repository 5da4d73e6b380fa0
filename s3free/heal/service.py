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

The service wires its parts together and owns their tasks: what it remembers of versions
(ledger.py), the check of one version (checker.py), heal-on-read and the queue worker
(worker.py), and the jobs and their schedule (jobs.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from s3free.engine.store import ObjectStore
from s3free.errors import NoSuchKey
from s3free.format.manifest import Manifest
from s3free.heal.checker import VersionChecker
from s3free.heal.jobs import JobRunner
from s3free.heal.ledger import HealLedger
from s3free.heal.model import HealConfig, Job, ObjectHealth
from s3free.heal.pacer import Pacer
from s3free.heal.queue import Ident, RepairQueue
from s3free.heal.repair import RepairOutcome
from s3free.heal.waiting import WaitingSet
from s3free.heal.worker import RepairWorker
from s3free.meta.healstate import HealState
from s3free.states import DiskState

if TYPE_CHECKING:
    from s3free.engine.diskmonitor import DiskMonitor

log = logging.getLogger(__name__)


class HealService:
    def __init__(self, store: ObjectStore, config: HealConfig | None = None) -> None:
        self.store = store
        self.config = config or HealConfig()
        self.state = HealState(store.index)
        self.ledger = HealLedger(self.state, store.run_io, self.config.queue_max)
        self.checker = VersionChecker(store, self.ledger)
        self._repair_pacer = Pacer(self.config.scrub_rate_mb_s, self.config.scrub_files_per_s)
        self.worker = RepairWorker(
            store, self.config, self.ledger, self.checker, self._repair_pacer
        )
        self.jobs = JobRunner(self, self.ledger, self.worker, self.config)
        # disk id -> progress of a disk heal; filled by whoever heals disks (helper "disk").
        self.disk_heal: dict[str, dict] = {}
        self.monitor: DiskMonitor | None = None
        self._stopping = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._scheduler: asyncio.Task | None = None
        self._catching_up: asyncio.Task | None = None
        self._started = False
        self._background: set[asyncio.Task] = set()
        # Records kept on every disk (buckets, users: what a lost index is rebuilt from),
        # checked and rewritten by whole-store passes; each returns the copies rewritten.
        self.record_keepers: list[Callable[[], Awaitable[int]]] = [
            store.healing.restore_bucket_records
        ]

    # -- what others read (the admin API, metrics, the CLI, tests) -----------------------------

    @property
    def queue(self) -> RepairQueue:
        return self.ledger.queue

    @property
    def waiting(self) -> WaitingSet:
        return self.ledger.waiting

    @property
    def unrepairable(self) -> dict[Ident, dict]:
        return self.ledger.unrepairable

    @property
    def disk_errors(self) -> Counter[str]:
        return self.ledger.disk_errors

    @property
    def repairs(self) -> Counter[str]:
        return self.checker.repairs

    @property
    def shards_rebuilt(self) -> int:
        return self.checker.shards_rebuilt

    @property
    def caught_up(self) -> int:
        return self.worker.caught_up

    @property
    def scrub_passes(self) -> int:
        return self.jobs.scrub_passes

    @property
    def resumed_bytes(self) -> dict[str, int]:
        return self.jobs.resumed_bytes

    @property
    def _scrub_id(self) -> str | None:
        return self.jobs.scrub_id

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def use_monitor(self, monitor: DiskMonitor) -> None:
        """The disk monitor, whose disk heals a pass waits for before it says done."""
        self.monitor = monitor

    def disk_online(self, disk_id: str) -> None:
        """A disk is back (monitor): repair what waited for it, paced, with no command run;
        and bring its records (buckets, users) up to date now, so its stale copies of records
        changed while it was away are not what a lost index is rebuilt from."""
        if self.waiting.count or self.waiting.dirty:
            self.worker.returned.set()
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
        await self.ledger.load()
        self.store.retire_listeners.append(self._on_retired)
        self._spawn(self._prune_unrepairable())
        if self.waiting.count:
            self.worker.returned.set()  # disks that came back while the server was down
        record = await self.store.run_io(self.state.checkpoint)
        self.jobs.last_scrub = (record or {}).get("job")
        self.store.fault_listeners.append(self.worker.on_fault)
        if (record or {}).get("in_progress"):
            self.start_scrub(resume=True)  # a pass a restart interrupted goes on at once
        self._worker = asyncio.ensure_future(self._work())
        self._scheduler = asyncio.ensure_future(self.jobs.schedule(self._stopping))
        self._catching_up = asyncio.ensure_future(self.worker.catch_up())

    async def stop(self) -> None:
        """Stop listening, cancel background work (a scrub saves its checkpoint), persist
        the queue."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        if self.worker.on_fault in self.store.fault_listeners:
            self.store.fault_listeners.remove(self.worker.on_fault)
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
                *self.jobs.tasks.values(),
                *self._background,
            )
            if t
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.ledger.close()

    async def _work(self) -> None:
        await self.worker.run()

    async def _flush(self) -> None:
        await self.ledger.flush()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _on_retired(self, manifest: Manifest) -> None:
        """On the loop, for each version a write or delete replaced (engine)."""
        ident = (manifest.bucket, manifest.key, manifest.version_id)
        if self.ledger.knows(ident):
            self._spawn(self.ledger.forget(ident))

    async def _prune_unrepairable(self) -> None:
        """At start: drop records of versions deleted or replaced while the server was down
        or before records were cleared on delete (they would never clear otherwise)."""
        for ident in list(self.unrepairable):
            current = await self.store.healing.current_manifest(ident[0], ident[1])
            if current is None or current.version_id != ident[2]:
                await self.ledger.clear_unrepairable(ident)

    # -- one object --------------------------------------------------------------------------

    async def verify(self, bucket: str, key: str) -> ObjectHealth:
        """The full health of the object's current version (NoSuchKey if absent)."""
        async with self.store.healing.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                await self.store.get_manifest(bucket, key)  # raises NoSuchBucket/NoSuchKey
                raise NoSuchKey(f"{bucket}/{key} does not exist")
            health, _ = await self.checker.verify(manifest, None)
            return health

    async def repair_object(self, bucket: str, key: str) -> ObjectHealth:
        """Verify, repair what needs it, and return the health after the repair."""
        async with self.store.healing.leased_manifest(bucket, key) as manifest:
            if manifest is None:
                await self.store.get_manifest(bucket, key)
                raise NoSuchKey(f"{bucket}/{key} does not exist")
            health, outcome = await self._check(manifest, None, None)
            if health is None or (outcome is not None and outcome.status.rewrote):
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
                self.ledger.changed()
        return True

    async def _check(
        self, manifest: Manifest, pacer: Pacer | None, job: Job | None
    ) -> tuple[ObjectHealth | None, RepairOutcome | None]:
        """VersionChecker.check (tests call it under this name)."""
        return await self.checker.check(manifest, pacer, job)

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no queued repair is due and no waiting version has a disk back (tests,
        shutdown scripts)."""
        await self.worker.drain(timeout)

    # -- jobs --------------------------------------------------------------------------------

    def start_scrub(
        self, bucket: str | None = None, rate_mb_s: float | None = None, *, resume: bool = False
    ) -> Job:
        """A pass over every object (or one bucket's): verify, repair, and (unscoped) collect
        orphans and record a resumable checkpoint. A scrub already running is returned
        instead of starting a second one, its byte rate changed to rate_mb_s if given (so
        `s3free disk scrub --rate` adjusts a pass under way, without a restart)."""
        return self.jobs.start_scrub(bucket, rate_mb_s, resume)

    def start_repair(
        self, bucket: str | None = None, key: str | None = None, rate_mb_s: float | None = None
    ) -> Job:
        """Verify every object in scope and repair what needs it (no orphan collection)."""
        return self.jobs.start_repair(bucket, key, rate_mb_s)

    def set_job_rate(self, job_id: str, rate_mb_s: float) -> Job | None:
        """Pace a running job at rate_mb_s from now (`disk replace --rate`: the disk monitor,
        not the operator, starts a replaced disk's heal pass). None if it is not running."""
        return self.jobs.set_job_rate(job_id, rate_mb_s)

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once finished, or as it stands when the timeout ends."""
        return await self.jobs.wait(job_id, timeout)

    def job(self, job_id: str) -> Job | None:
        return self.jobs.jobs.get(job_id)

    def set_rate(self, rate_mb_s: float | None = None, files_per_s: float | None = None) -> None:
        """Change the caps now, for running passes and the ones to come."""
        for value in (rate_mb_s, files_per_s):
            if value is not None and value < 0:
                raise ValueError("rates must not be negative")
        if rate_mb_s is not None:
            self.config.scrub_rate_mb_s = rate_mb_s
        if files_per_s is not None:
            self.config.scrub_files_per_s = files_per_s
        for pacer in [*self.jobs.pacers.values(), self._repair_pacer]:
            pacer.set_rate(rate_mb_s, files_per_s)

    def set_interval(self, interval_s: float) -> None:
        """Change the time between scheduled scrub passes now (0: only on demand)."""
        if interval_s < 0:
            raise ValueError("the scrub interval must not be negative")
        self.config.scrub_interval_s = interval_s
        self.jobs.rescheduled.set()

    def scrub_bytes_now(self) -> int:
        """Bytes verified by scrubs in this process, the running pass's included."""
        return self.jobs.scrub_bytes_now()

    # -- status ------------------------------------------------------------------------------

    def degraded(self) -> dict:
        """How many versions the store knows to be below k+m and still repairable: queued
        for repair (a read or a pass found them) or waiting for an offline disk; and how many
        disks are healing or offline, whose versions are below k+m without being counted one by
        one. 0 objects, 0 disks healing and 0 offline: every known version is at k+m."""
        healing = offline = 0
        if self.monitor is not None:
            for slot in self.store.diskset.slots:
                state = self.monitor.state(slot)
                healing += state == DiskState.HEALING
                offline += state == DiskState.OFFLINE
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
        return {
            "degraded": self.degraded(),
            "queue_depth": len(self.queue),
            "queue_dropped": self.queue.dropped,
            "repairs": dict(self.repairs),
            "unrepairable": [
                {"bucket": b, "key": k, "version_id": v, **record}
                for (b, k, v), record in sorted(self.unrepairable.items())
            ],
            "scrub": self.jobs.scrub_json(),
            "disks": {
                slot.disk_id: {
                    "errors": self.disk_errors.get(slot.disk_id, 0),
                    "heal": self.disk_heal.get(slot.disk_id),
                }
                for slot in self.store.diskset.slots
            },
        }


async def attach(store: ObjectStore, config: HealConfig | None = None) -> HealService:
    """Create and start the heal service for an open store. The caller must
    `await service.stop()` before `store.close()`."""
    service = HealService(store, config)
    await service.start()
    return service
