"""The few engine hooks the healer (s3free/heal/) needs, as `store.healing`, so it never reaches
into the store's private state: read a version like a reader does (leased, so an overwrite does
not remove its files meanwhile), hold a key's lock, switch the index to a repaired manifest, ask
whether a version's files are still in use, and keep the bucket records' copies current."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from s3free.engine.buckets import Buckets
from s3free.engine.fanout import RunIO
from s3free.engine.locks import BucketGates, KeyLocks
from s3free.engine.manifestcache import Manifests
from s3free.engine.reaper import VersionReaper
from s3free.format.manifest import Manifest
from s3free.meta.index import Index, ListingEntry


class HealingPort:
    def __init__(
        self,
        index: Index,
        run_io: RunIO,
        *,
        manifests: Manifests,
        reaper: VersionReaper,
        gates: BucketGates,
        key_locks: KeyLocks,
        buckets: Buckets,
    ) -> None:
        self.index = index
        self.run_io = run_io
        self.manifests = manifests
        self.reaper = reaper
        self.gates = gates
        self.key_locks = key_locks
        self.buckets = buckets

    @contextlib.asynccontextmanager
    async def leased_manifest(self, bucket: str, key: str) -> AsyncIterator[Manifest | None]:
        """The current manifest of bucket/key (None if absent); its version's files stay on
        disk until the block ends, exactly as for an open_object reader."""
        manifest: Manifest | None = None
        with self.reaper.lookup():
            manifest = await self.run_io(self.manifests.load, bucket, key)
            if manifest is not None:
                self.reaper.lease(manifest.version_id)
        try:
            yield manifest
        finally:
            if manifest is not None:
                self.reaper.unlease(manifest.version_id)

    @contextlib.asynccontextmanager
    async def key_locked(self, bucket: str, key: str) -> AsyncIterator[None]:
        """Hold the key's lock (and the bucket's shared gate) as PUT/DELETE do at their switch."""
        async with self.gates.shared(bucket), self.key_locks.hold((bucket, key)):
            yield

    async def current_manifest(self, bucket: str, key: str) -> Manifest | None:
        return await self.run_io(self.manifests.load, bucket, key)

    async def index_repaired(self, manifest: Manifest) -> None:
        """Point the index at a repaired manifest of the current version. Call under
        key_locked, after checking the version is still the current one."""
        blob = await self.run_io(manifest.encode)
        entry = ListingEntry.from_manifest(manifest)
        await self.run_io(self.index.put_object, manifest.bucket, manifest.key, entry, blob)

    async def restore_bucket_records(self) -> int:
        """Every online disk's copy of every bucket record brought to the newest one (see
        Buckets.restore_records); the heal service calls this in whole-store passes and when
        a disk comes back. Returns how many copies were rewritten."""
        return await self.buckets.restore_records()

    def version_in_use(self, version_id: str) -> bool:
        """Whether a reader holds the version or its removal is still pending."""
        return self.reaper.in_use(version_id)
