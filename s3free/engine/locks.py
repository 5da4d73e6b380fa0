"""In-process locks: per-key mutexes and per-bucket shared/exclusive gates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class KeyLocks:
    """One asyncio.Lock per key, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        """How many keys are held or waited for now."""
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class BucketGates:
    """Many writers may commit into a bucket at once (shared); deleting the bucket waits for
    them and keeps new ones out (exclusive), so no object is committed into a bucket that is
    being deleted."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._writers: dict[str, int] = {}
        self._closing: set[str] = set()

    @asynccontextmanager
    async def shared(self, bucket: str) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: bucket not in self._closing)
            self._writers[bucket] = self._writers.get(bucket, 0) + 1
        try:
            yield
        finally:
            async with self._cond:
                self._writers[bucket] -= 1
                if not self._writers[bucket]:
                    del self._writers[bucket]
                self._cond.notify_all()

    @asynccontextmanager
    async def exclusive(self, bucket: str) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: bucket not in self._closing)
            self._closing.add(bucket)
            await self._cond.wait_for(lambda: not self._writers.get(bucket))
        try:
            yield
        finally:
            async with self._cond:
                self._closing.discard(bucket)
                self._cond.notify_all()
