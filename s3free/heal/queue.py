"""The repair queue: prioritised, deduplicated, bounded, persisted.

- Priority is the redundancy an object has left: the number of healthy shards (k means one more
  loss in that block is data loss; k+m-1 means one shard is bad). Lower goes first; equal
  priorities go oldest first. An entry's priority only ever drops (a second report of another
  bad shard of the same version makes it more urgent).
- One entry per (bucket, key, version id): reports of the same version merge.
- At most `queue_max` entries. When full, a new entry that is more urgent than the least urgent
  queued one evicts it; otherwise the new one is dropped. Either way `dropped` counts it: a
  dropped object is found again by the next scrub.
- Entries are persisted (meta/healstate.py) by the caller, through the pending-writes list
  this class fills, so a restart resumes the queue.
- A failed repair is retried after a backoff (base x 4^attempts); after `retries` failures the
  entry leaves the queue and the caller records it as unrepairable (reason "retries").
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from dataclasses import dataclass

Ident = tuple[str, str, str]  # (bucket, key, version id)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class QueueEntry:
    ident: Ident
    priority: int
    added_ms: int
    attempts: int = 0
    due_ms: int = 0
    reason: str = ""
    size: int = 0  # the version's bytes when the reporter knew them (0: unknown)

    def to_record(self) -> dict:
        return {
            "size": self.size,
            "added_ms": self.added_ms,
            "attempts": self.attempts,
            "due_ms": self.due_ms,
            "priority": self.priority,
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, ident: Ident, record: dict) -> QueueEntry:
        return cls(
            ident,
            int(record.get("priority", 0)),
            int(record.get("added_ms", 0)),
            int(record.get("attempts", 0)),
            int(record.get("due_ms", 0)),
            str(record.get("reason", "")),
            int(record.get("size", 0)),
        )


class RepairQueue:
    """In-memory view; every change appends (ident, record or None) to `writes` for the
    caller to persist."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: dict[Ident, QueueEntry] = {}
        self._ready: dict[int, OrderedDict[Ident, None]] = {}  # priority -> FIFO of idents
        self._delayed: list[tuple[int, Ident]] = []  # (due ms, ident) heap
        self.dropped = 0
        self.writes: list[tuple[Ident, dict | None]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, entries: list[tuple[Ident, dict]]) -> None:
        for ident, record in entries:
            entry = QueueEntry.from_record(ident, record)
            self.entries[ident] = entry
            self._place(entry)

    def add(self, ident: Ident, priority: int, reason: str = "", size: int = 0) -> bool:
        """Queue or merge; False when the queue was full and this one was dropped."""
        entry = self.entries.get(ident)
        if entry is not None:
            entry.size = entry.size or size
            if priority < entry.priority:
                self._unplace(entry)
                entry.priority = priority
                entry.reason = reason or entry.reason
                self._place(entry)
                self.writes.append((ident, entry.to_record()))
            return True
        if len(self.entries) >= self.max_entries:
            worst = self._least_urgent()
            if worst is None or worst.priority <= priority:
                self.dropped += 1
                return False
            self.remove(worst.ident)
            self.dropped += 1
        entry = QueueEntry(ident, priority, now_ms(), reason=reason, size=size)
        self.entries[ident] = entry
        self._place(entry)
        self.writes.append((ident, entry.to_record()))
        return True

    def pop(self, now: int | None = None) -> QueueEntry | None:
        """The most urgent entry that is due (it stays recorded until done() or retry())."""
        now = now_ms() if now is None else now
        while self._delayed and self._delayed[0][0] <= now:
            _, ident = heapq.heappop(self._delayed)
            entry = self.entries.get(ident)
            if entry is not None and entry.due_ms <= now:
                self._ready.setdefault(entry.priority, OrderedDict())[ident] = None
        for priority in sorted(self._ready):
            fifo = self._ready[priority]
            if fifo:
                ident, _ = fifo.popitem(last=False)
                return self.entries[ident]
        return None

    def next_due_ms(self) -> int | None:
        return self._delayed[0][0] if self._delayed else None

    def done(self, ident: Ident) -> None:
        self.remove(ident)

    def retry(self, ident: Ident, backoff_s: float, retries: int, why: str) -> bool:
        """Schedule another attempt; False (and removed) when the retries are used up."""
        entry = self.entries.get(ident)
        if entry is None:
            return False
        entry.attempts += 1
        entry.reason = why
        if entry.attempts > retries:
            self.remove(ident)
            return False
        self._unplace(entry)
        entry.due_ms = now_ms() + int(backoff_s * 1000 * 4 ** (entry.attempts - 1))
        self._place(entry)
        self.writes.append((ident, entry.to_record()))
        return True

    def remove(self, ident: Ident) -> None:
        entry = self.entries.pop(ident, None)
        if entry is not None:
            self._unplace(entry)
            self.writes.append((ident, None))

    def total_bytes(self) -> int:
        """The queued versions' bytes, as far as their reporters knew them."""
        return sum(e.size for e in self.entries.values())

    def take_writes(self) -> list[tuple[Ident, dict | None]]:
        writes, self.writes = self.writes, []
        return writes

    def snapshot(self) -> list[QueueEntry]:
        """Entries in the order they would be repaired (due ones first)."""
        return sorted(self.entries.values(), key=lambda e: (e.due_ms, e.priority, e.added_ms))

    # -- internals -------------------------------------------------------------------------

    def _place(self, entry: QueueEntry) -> None:
        if entry.due_ms > now_ms():
            heapq.heappush(self._delayed, (entry.due_ms, entry.ident))
        else:
            self._ready.setdefault(entry.priority, OrderedDict())[entry.ident] = None

    def _unplace(self, entry: QueueEntry) -> None:
        fifo = self._ready.get(entry.priority)
        if fifo is not None:
            fifo.pop(entry.ident, None)
            if not fifo:
                del self._ready[entry.priority]
        # A delayed heap item is skipped lazily when it no longer matches its entry.

    def _least_urgent(self) -> QueueEntry | None:
        for priority in sorted(self._ready, reverse=True):
            fifo = self._ready[priority]
            if fifo:
                return self.entries[next(reversed(fifo))]
        if self.entries:  # only delayed entries: the least urgent of them
            return max(self.entries.values(), key=lambda e: (e.priority, e.added_ms))
        return None
