"""Records kept whole on every disk (bucket records, user records): which copy wins.

A copy is a JSON object with a `generation` (absent in records written before generations: 0).
Deleting writes a tombstone (`"deleted": true`) with a higher generation instead of removing the
files, so a stale copy on a disk that was away when the change was made loses to it. Of the
copies of one record the newest wins: the highest generation; on a tie a tombstone, then the
copy more disks hold, then the greater bytes (specs/beexl-v1.md 11.6 and 11.7).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable


def generation_of(record: dict) -> int:
    """A record's generation; a record written before generations counts as 0."""
    value = record.get("generation", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"generation {value!r} is not a non-negative integer")
    return value


def is_tombstone(record: dict) -> bool:
    return record.get("deleted") is True


def next_generation(*known: int) -> int:
    """Above every generation known for the record, and at least the clock in milliseconds:
    writers that never saw each other's copies (two disjoint sets of online disks) still
    order by time."""
    return max(max(known, default=0) + 1, time.time_ns() // 1_000_000)


def tombstone(name: str, generation: int) -> dict:
    return {
        "deleted": True,
        "deleted_ms": time.time_ns() // 1_000_000,
        "generation": generation,
        "name": name,
    }


def encode(record: dict) -> bytes:
    return (json.dumps(record, sort_keys=True) + "\n").encode()


def newest(
    copies: Iterable[tuple[dict, bytes]], preferred: bytes | None = None
) -> tuple[dict, bytes]:
    """The winning copy among (record, bytes) pairs (at least one). `preferred` (the copy the
    running server holds) wins ties of generation and kind, so a legacy record without a
    generation is not replaced by a stale one that happens to be more common."""
    copies = list(copies)
    counts = Counter(blob for _, blob in copies)
    return max(
        copies,
        key=lambda c: (
            generation_of(c[0]),
            is_tombstone(c[0]),
            c[1] == preferred,
            counts[c[1]],
            c[1],
        ),
    )
