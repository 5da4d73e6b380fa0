"""Heal-on-read and the queue worker: what happens to each bad shard the engine reports, the
worker that repairs queued versions one at a time (most urgent first), and the catch-up that
repairs the versions waiting for a disk once it is back.

The fault listener only records the report (in memory; persisted by the ledger's flush) and
wakes the worker: the read that found the shard is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import StrEnum

from s3free.engine.store import ObjectStore
from s3free.engine.types import FaultKind, ShardFault
from s3free.heal.checker import VersionChecker
from s3free.heal.ledger import HealLedger
from s3free.heal.model import HealConfig, Job, UnrepairableReason
from s3free.heal.pacer import Pacer
from s3free.heal.queue import Ident, now_ms
from s3free.storage.diskset import DiskSlot

# The service's logger (the name its log lines have always carried).
log = logging.getLogger("s3free.heal.service")

CATCH_UP_CONCURRENCY = 4  # waiting versions repaired at once after a disk returns


class FaultAction(StrEnum):
    """What the heal service does with a reported fault."""

    QUEUE = "queue"  # queue the version for repair
    WAIT = "wait"  # a write missed the disk: wait for it to be back, not for a retry
    IGNORE = "ignore"  # a read met a disk that is away: healing that disk settles it


# Every FaultKind has one (tests/test_heal_vocabulary.py): a new kind must be decided here.
FAULT_ACTIONS: dict[FaultKind, FaultAction] = {
    FaultKind.DISK_OFFLINE: FaultAction.IGNORE,
    FaultKind.NOT_IN_SET: FaultAction.IGNORE,
    FaultKind.MISSING: FaultAction.QUEUE,
    FaultKind.UNUSABLE: FaultAction.QUEUE,
    FaultKind.IO_ERROR: FaultAction.QUEUE,
    FaultKind.CORRUPT: FaultAction.QUEUE,
    FaultKind.MISPLACED: FaultAction.QUEUE,
    FaultKind.NEWER_GENERATION: FaultAction.QUEUE,
    FaultKind.DISAGREES: FaultAction.QUEUE,
    FaultKind.NOT_WRITTEN: FaultAction.QUEUE,
    FaultKind.NOT_WRITTEN_OFFLINE: FaultAction.WAIT,
    FaultKind.NOT_WRITTEN_FULL: FaultAction.WAIT,
}


class RepairWorker:
    def __init__(
        self,
        store: ObjectStore,
        config: HealConfig,
        ledger: HealLedger,
        checker: VersionChecker,
        pacer: Pacer,
    ) -> None:
        self.store = store
        self.config = config
        self.ledger = ledger
        self.checker = checker
        self.pacer = pacer  # paces the queue's and the catch-up's repairs
        self.returned = asyncio.Event()  # a disk came back: walk the waiting versions
        self.caught_up = 0  # waiting versions repaired after their disk returned

    def on_fault(self, fault: ShardFault) -> None:
        """On the loop, for every bad shard a read met or a write could not make: queue (or,
        for a write that missed an offline disk, wait for that disk), never block."""
        ledger = self.ledger
        ident = (fault.bucket, fault.key, fault.version_id)
        action = FAULT_ACTIONS[fault.kind]
        if action is FaultAction.WAIT:
            # No repair can succeed before the disk is back: wait for it, not for a retry.
            ledger.waiting.add(ident, {fault.disk_id}, fault.object_size)
            ledger.changed()
            return
        if action is FaultAction.IGNORE:
            return  # a read met an offline disk: healing that disk (not this queue) settles it
        ledger.count_bad(ident, (fault.part_number, fault.shard_index), fault.disk_id)
        shards = ledger.fault_shards.setdefault(ident, set())
        shards.add(fault.shard_index)
        priority = max(0, self.store.diskset.n - len(shards))
        added = ledger.queue.add(ident, priority, fault.reason, fault.object_size)
        if not added and ident not in ledger.queue.entries:
            ledger.fault_shards.pop(ident, None)
        ledger.changed()

    async def run(self) -> None:
        """Repair the queue's versions as they fall due, for as long as the service runs."""
        ledger = self.ledger
        while True:
            entry = ledger.queue.pop()
            if entry is None:
                await ledger.flush()
                ledger.wake.clear()
                due = ledger.queue.next_due_ms()
                timeout = None if due is None else max(0.01, (due - now_ms()) / 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ledger.wake.wait(), timeout)
                continue
            await self.repair_entry(entry.ident)
            await ledger.flush()

    async def repair_entry(
        self, ident: Ident, pacer: Pacer | None = None, job: Job | None = None
    ) -> bool:
        """Check and repair one queued or waiting version; True when nothing is left to do
        for it now (repaired, clean, gone, or waiting for an offline disk)."""
        ledger = self.ledger
        bucket, key, version_id = ident
        try:
            async with self.store.healing.leased_manifest(bucket, key) as manifest:
                if manifest is None or manifest.version_id != version_id:
                    await ledger.forget(ident)  # gone or replaced: nothing to repair
                else:
                    await self.checker.check(manifest, pacer or self.pacer, job)
                    ledger.queue.done(ident)
            ledger.fault_shards.pop(ident, None)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("repair of %s/%s failed: %s", bucket, key, exc)
            offline = await self._offline_placement(ident)
            if offline:  # a disk went away or is full: wait for it, not for retries
                ledger.queue.remove(ident)
                ledger.waiting.add(ident, offline)
                ledger.changed()
                if job is not None:
                    job.note_waiting(ident, offline)
                return True
            ledger.waiting.set(ident, set())  # the queue's retries take it over
            if ident not in ledger.queue.entries:
                ledger.queue.add(ident, 0, f"repair failed: {exc}")
            if not ledger.queue.retry(
                ident, self.config.retry_backoff_s, self.config.repair_retries, str(exc)
            ):
                ledger.fault_shards.pop(ident, None)
                await ledger.record_unrepairable(
                    ident,
                    None,
                    UnrepairableReason.RETRIES,
                    f"{self.config.repair_retries} retries failed: {exc}",
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
            if not usable(slot):
                offline.add(disk_id)
        return offline

    async def catch_up(self) -> None:
        """After a disk comes back: repair every waiting version that names a disk now
        online, a few at once, paced like the queue's repairs."""
        waiting = self.ledger.waiting
        while True:
            await self.returned.wait()
            self.returned.clear()
            await waiting.flush()
            after: Ident | None = None
            while True:
                page = await waiting.page(after)
                if not page:
                    break
                after = page[-1][0]
                ready = [ident for ident, record in page if self._any_online(record)]
                for i in range(0, len(ready), CATCH_UP_CONCURRENCY):
                    chunk = ready[i : i + CATCH_UP_CONCURRENCY]
                    done = await asyncio.gather(*(self.repair_entry(x) for x in chunk))
                    self.caught_up += sum(done)
                    await self.ledger.flush()

    def _any_online(self, record: dict) -> bool:
        for disk_id in record.get("disks", []):
            if usable(self.store.diskset.slot_for(disk_id)):
                return True
        return False

    def catching_up_now(self) -> bool:
        """Whether some waiting version could be repaired now (one of its disks is online)."""
        return self.returned.is_set() or any(
            usable(self.store.diskset.slot_for(d)) for d in self.ledger.waiting.per_disk
        )

    async def drain(self, timeout: float) -> None:
        """Wait until no queued repair is due and no waiting version has a disk back."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self.ledger.flush()
            due = [e for e in self.ledger.queue.entries.values() if e.due_ms <= now_ms()]
            if not due and not self.checker.busy and not self.catching_up_now():
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("the repair queue did not drain")


def usable(slot: DiskSlot | None) -> bool:
    """Online and with room: a repair waiting for this disk may run now."""
    return slot is not None and slot.online and not slot.full
