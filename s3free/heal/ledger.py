"""What the heal service remembers of object versions, and keeps persisted.

A version below k+m is in at most one of: the repair queue (something is to be tried),
the waiting set (only offline disks keep it below k+m), or the unrepairable records (fewer
than k good shards in a block: left untouched). Every check, report and repair brings the
version's place in line here; the queue and waiting changes are written to LevelDB by a
background flush (`changed`), so a restart resumes them. Also counted here: the errors per
disk, one per bad shard until it is repaired.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from s3free.heal.model import Job, ObjectHealth, ShardState, UnrepairableReason
from s3free.heal.queue import Ident, RepairQueue, now_ms
from s3free.heal.waiting import WaitingSet
from s3free.meta.healstate import HealState

# The service's logger (the name its log lines have always carried).
log = logging.getLogger("s3free.heal.service")

COUNTED_MAX = 100_000  # versions whose counted errors are remembered (then forgotten at once)


class HealLedger:
    def __init__(
        self, state: HealState, run_io: Callable[..., Awaitable[Any]], queue_max: int
    ) -> None:
        self.state = state
        self._run_io = run_io
        self.queue = RepairQueue(queue_max)
        # Below k+m for want of offline disks; repaired when one of their disks is back.
        self.waiting = WaitingSet(state, run_io)
        self.unrepairable: dict[Ident, dict] = {}
        self.disk_errors: Counter[str] = Counter()
        # The shard indices reads reported bad per queued version (its queue priority).
        self.fault_shards: dict[Ident, set[int]] = {}
        # (part, shard index) of each version already counted in disk_errors
        self._counted: dict[Ident, set[tuple[int, int]]] = {}
        self.wake = asyncio.Event()  # the queue changed: the worker looks again
        self._flushing: asyncio.Task | None = None

    async def load(self) -> None:
        """The persisted queue, unrepairable records and waiting totals (at start)."""
        self.queue.load(await self._run_io(self.state.queue_all))
        self.unrepairable = dict(await self._run_io(self.state.unrepairable_all))
        await self.waiting.load()

    # -- persisting --------------------------------------------------------------------------

    def changed(self) -> None:
        """Wake the worker and persist the queue's and the waiting set's changes soon."""
        self.wake.set()
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
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

        await self._run_io(apply)

    async def close(self) -> None:
        """Finish a flush under way, then write what is left (at stop)."""
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.flush()

    # -- a version's place -------------------------------------------------------------------

    def count_bad(self, ident: Ident, shard: tuple[int, int], disk_id: str) -> None:
        """One error on the disk per bad shard until that shard is repaired: the read that met
        it and the verify that then finds it are the same error, not two."""
        if len(self._counted) > COUNTED_MAX:  # versions deleted before their repair: forget
            self._counted.clear()
        counted = self._counted.setdefault(ident, set())
        if shard not in counted:  # (part, shard index)
            counted.add(shard)
            self.disk_errors[disk_id] += 1

    def uncount(self, ident: Ident) -> None:
        """The version's shards are good again: a shard bad later is a new error."""
        self._counted.pop(ident, None)

    async def settled(self, ident: Ident, health: ObjectHealth, size: int, job: Job | None) -> None:
        """After a check that left nothing it could fix: the version is back at k+m, or
        waits only for offline disks (the shards and manifest copies that belong there)."""
        offline = {s.disk_id for s in health.shards if s.state == ShardState.OFFLINE}
        offline |= {d for d, v in health.manifests.items() if v == ShardState.OFFLINE}
        self.waiting.set(ident, offline, size)
        if offline:
            if job is not None:
                job.note_waiting(ident, offline)
        else:
            await self.clear_unrepairable(ident)
        self.queue.remove(ident)  # a report that came before this check is answered by it
        self.fault_shards.pop(ident, None)
        self.changed()

    async def forget(self, ident: Ident) -> None:
        """The version was replaced or deleted: nothing about it is left to do or to report."""
        self.queue.remove(ident)
        self.waiting.set(ident, set())
        self.fault_shards.pop(ident, None)
        self._counted.pop(ident, None)
        await self.clear_unrepairable(ident)
        self.changed()

    def knows(self, ident: Ident) -> bool:
        """Whether anything about the version may be remembered here (to forget it)."""
        return (
            ident in self.unrepairable
            or ident in self.queue.entries
            or bool(self.waiting.count)
            or ident in self.fault_shards
        )

    async def record_unrepairable(
        self,
        ident: Ident,
        health: ObjectHealth | None,
        reason: UnrepairableReason,
        detail: str = "",
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
            "reason": reason.value,
        }
        if ident not in self.unrepairable:  # once per version, not once per look
            log.error(
                "%s/%s version %s cannot be repaired (%s): %s; its data was left untouched",
                *ident,
                reason.value,
                detail,
            )
        self.unrepairable[ident] = record
        await self._run_io(self.state.unrepairable_put, ident, record)

    async def clear_unrepairable(self, ident: Ident) -> None:
        if self.unrepairable.pop(ident, None) is not None:
            await self._run_io(self.state.unrepairable_delete, ident)
