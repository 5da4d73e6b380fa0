"""Group commit: writers that skipped their fsyncs wait for one syncfs of each disk involved,
shared with every other writer in flight.

A caller asks only after its own writes have completed, and is answered by a syncfs that
started after it asked, so that syncfs covers its writes. While one syncfs runs, new callers
gather for the next one: under load, one flush serves many requests instead of each request
paying ~4 fsyncs per disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Sequence

from s3free.storage.disk import LocalDisk
from s3free.storage.diskset import DiskSlot
from s3free.storage.monitored import MonitoredDisk


class GroupSync:
    """One syncfs at a time for one disk; callers batch up behind it."""

    def __init__(self, sync: Callable[[], None], executor: concurrent.futures.Executor) -> None:
        self._sync = sync
        self._executor = executor
        self._waiting: list[asyncio.Future] = []
        self._busy = False

    async def sync(self) -> None:
        """Return once every write this caller completed before calling is durable."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        if not self._busy:
            self._start()
        await future

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        self._busy = True
        running = asyncio.wrap_future(self._executor.submit(self._sync))

        def done(fut: asyncio.Future) -> None:
            self._busy = False
            error = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            for waiter in batch:
                if waiter.done():
                    continue
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
            if self._waiting:
                self._start()

        running.add_done_callback(done)


class Syncer:
    """A GroupSync per filesystem: syncfs flushes a whole filesystem, so disks that are
    directories of one filesystem share one flush (a test or single-disk host) while real
    disks, each its own filesystem, each get their own. A disk wrapped for fault injection
    (anything but a plain LocalDisk) always gets its own, so its injected errors still happen."""

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self._executor = executor
        self._groups: dict[object, GroupSync] = {}
        self._keys: dict[str, object] = {}
        self._members: dict[object, list[DiskSlot]] = {}

    def _group(self, slot: DiskSlot) -> GroupSync:
        key = self._keys.get(slot.disk_id)
        if key is None:
            key = self._keys[slot.disk_id] = _filesystem_key(slot)
            self._members.setdefault(key, []).append(slot)
        group = self._groups.get(key)
        if group is None:
            members = self._members[key]
            group = self._groups[key] = GroupSync(lambda: _sync_any(members), self._executor)
        return group

    async def sync(self, slots: Sequence[DiskSlot]) -> list[BaseException | None]:
        """Sync the given disks in parallel; per disk, None or the error it raised."""
        results = await asyncio.gather(
            *(self._group(slot).sync() for slot in slots), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]


def _filesystem_key(slot: DiskSlot) -> object:
    disk = slot.disk
    while isinstance(disk, MonitoredDisk):  # only watches errors: the disk below decides
        disk = disk.inner
    if type(disk) is LocalDisk:
        try:
            return ("fs", os.stat(disk.root).st_dev)
        except OSError:
            pass
    return ("disk", slot.disk_id)


def _sync_any(members: list[DiskSlot]) -> None:
    """syncfs through the first member disk whose root can still be opened: one that was
    wiped or unmounted must not fail the flush for the others on the same filesystem."""
    error: OSError | None = None
    for slot in list(members):
        try:
            slot.disk.sync()
            return
        except FileNotFoundError as exc:
            error = exc
    assert error is not None
    raise error
