"""One call per disk, in parallel, on the store's I/O pool (`RunIO`, the store's run_io): a
disk's OSError is that disk's failure (recorded by the caller, never silent), anything else is
a bug that must not be swallowed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from s3free.storage.diskset import DiskSlot

K = TypeVar("K")
T = TypeVar("T")


class RunIO(Protocol):
    """The store's run_io: fn(*args) on the I/O pool, as a future the loop can await."""

    def __call__(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]: ...


async def on_disks(
    run_io: RunIO, slots: Sequence[DiskSlot], fn: Callable[[DiskSlot], object]
) -> list[object]:
    """Run fn on each disk in parallel; each result is a value or the exception raised."""
    return await asyncio.gather(*(run_io(fn, s) for s in slots), return_exceptions=True)


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
