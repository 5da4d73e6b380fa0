"""Versions below k+m only because some of their shards belong on disks that are offline.

A write that missed an offline disk, or a repair that could rebuild everything but the shards
of an offline disk, leaves a version that no repair can finish *now*: retrying it would fail
until the disk is back, and dropping it (as the queue once did with "waiting" outcomes) left it
degraded until the next weekly scrub. So it waits here, persisted (meta/healstate.py, "H w"),
naming the disks it waits for; when one of them comes back the heal service walks the entries
that name it and repairs them, paced, without anyone running a command.

Only totals live in memory (count, bytes, per disk), so a disk away for a week of writes costs
LevelDB entries, not RAM. Changes are noted on the loop (a fault listener must not block) and
written in batches, one synced LevelDB batch per flush, under one lock so that the
read-modify-write of an entry and the totals stay consistent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from s3free.heal.queue import Ident, now_ms
from s3free.meta.healstate import HealState

PAGE = 256  # entries read per thread-pool call when loading or walking


class WaitingSet:
    def __init__(self, state: HealState, run: Callable[..., Awaitable[Any]]) -> None:
        self._state = state
        self._run = run
        self._lock = asyncio.Lock()
        self._pending: list[tuple[Ident, frozenset[str], int, bool]] = []
        self.count = 0
        self.bytes = 0
        self.per_disk: Counter[str] = Counter()

    async def load(self) -> None:
        """Totals from the persisted entries (once, at start)."""
        count, size, per_disk = 0, 0, Counter[str]()
        after: Ident | None = None
        while True:
            page = await self._run(self._state.waiting_page, after, PAGE)
            for ident, record in page:
                count += 1
                size += int(record.get("size", 0))
                per_disk.update(record.get("disks", []))
                after = ident
            if len(page) < PAGE:
                break
        self.count, self.bytes, self.per_disk = count, size, per_disk

    def add(self, ident: Ident, disks: set[str], size: int = 0) -> None:
        """The version also waits for these disks (written at the next flush)."""
        self._pending.append((ident, frozenset(disks), size, False))

    def set(self, ident: Ident, disks: set[str], size: int = 0) -> None:
        """The version waits for exactly these disks; none: for nothing (next flush)."""
        if disks or self.count or self._pending:  # nothing to remove from an empty set
            self._pending.append((ident, frozenset(disks), size, True))

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    async def flush(self) -> None:
        async with self._lock:
            ops, self._pending = self._pending, []
            if not ops:
                return
            try:
                changes = await self._run(self._state.waiting_apply, ops, now_ms())
            except BaseException:
                self._pending[:0] = ops  # tried again at the next flush
                raise
            for old, new in changes:
                self._account(old, -1)
                self._account(new, +1)

    async def page(self, after: Ident | None, limit: int = PAGE) -> list[tuple[Ident, dict]]:
        return await self._run(self._state.waiting_page, after, limit)

    def _account(self, record: dict | None, sign: int) -> None:
        if record is None:
            return
        self.count += sign
        self.bytes += sign * int(record.get("size", 0))
        for disk in record.get("disks", []):
            self.per_disk[disk] += sign
            if self.per_disk[disk] <= 0:
                del self.per_disk[disk]
