"""One call per disk, in parallel, where a disk's OSError is that disk's failure (recorded by
the caller, never silent) and anything else is a bug that must not be swallowed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import TypeVar

K = TypeVar("K")


def disk_failures(keys: Sequence[K], outcomes: Sequence[object]) -> dict[K, OSError]:
    """Per key (a shard index, a slot) the OSError its call ended with; an outcome that is any
    other exception is raised here. Outcomes that are not exceptions are successes."""
    failed: dict[K, OSError] = {}
    for key, outcome in zip(keys, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, OSError):
                raise outcome
            failed[key] = outcome
    return failed


async def gather_disk_failures(
    keys: Sequence[K], calls: Iterable[Awaitable[object]]
) -> dict[K, OSError]:
    """Await one call per key together (each to its end, whatever the others do), then
    disk_failures of their outcomes."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    return disk_failures(keys, outcomes)
