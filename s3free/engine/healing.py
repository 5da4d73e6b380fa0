"""The few engine hooks the healer (s3free/heal/) needs, so it never reaches into the store's
private state: read a version like a reader does (leased, so an overwrite does not remove its
files meanwhile), hold a key's lock, switch the index to a repaired manifest, and ask whether
a version's files are still in use."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from s3free.format.manifest import Manifest

if TYPE_CHECKING:
    from s3free.engine.store import ObjectStore


class HealingMixin:
    @contextlib.asynccontextmanager
    async def leased_manifest(
        self: ObjectStore, bucket: str, key: str
    ) -> AsyncIterator[Manifest | None]:
        """The current manifest of bucket/key (None if absent); its version's files stay on
        disk until the block ends, exactly as for an open_object reader."""
        token = next(self._lookup_ids)
        self._lookups.add(token)
        manifest: Manifest | None = None
        try:
            manifest = await self._run(self._load_manifest, bucket, key)
            if manifest is not None:
                self._lease(manifest.version_id)
        finally:
            self._lookup_done(token)
        try:
            yield manifest
        finally:
            if manifest is not None:
                self._unlease(manifest.version_id)

    @contextlib.asynccontextmanager
    async def key_locked(self: ObjectStore, bucket: str, key: str) -> AsyncIterator[None]:
        """Hold the key's lock (and the bucket's shared gate) as PUT/DELETE do at their switch."""
        async with self._gates.shared(bucket), self._key_locks.hold((bucket, key)):
            yield

    async def current_manifest(self: ObjectStore, bucket: str, key: str) -> Manifest | None:
        return await self._run(self._load_manifest, bucket, key)

    async def index_repaired(self: ObjectStore, manifest: Manifest) -> None:
        """Point the index at a repaired manifest of the current version. Call under
        key_locked, after checking the version is still the current one."""
        from s3free.engine.recovery import _listing_entry

        blob = await self._run(manifest.encode)
        await self._run(
            lambda: self.index.put_object(
                manifest.bucket, manifest.key, _listing_entry(manifest), blob
            )
        )

    async def restore_bucket_records(self: ObjectStore) -> int:
        """Rewrite each bucket's record on every online disk whose copy is missing or differs
        from the index's (bit rot, a truncated file, a replaced disk): the records are what a
        lost index is rebuilt from, so they must not rot away one disk at a time. Returns how
        many copies were rewritten; a disk that refuses is left for the next pass."""
        from s3free.engine.store import _record_bytes
        from s3free.storage.layout import bucket_record_path

        def restore(slot, path: str, blob: bytes) -> bool:
            try:
                if slot.disk.read_file(path) == blob:
                    return False
            except FileNotFoundError:
                pass
            slot.disk.write_file(path, blob)
            return True

        rewritten = 0
        for info in list(self._buckets.values()):
            path = bucket_record_path(info.name)
            blob = _record_bytes(info.to_record())
            async with self._gates.shared(info.name):
                if self._buckets.get(info.name) is not info:
                    continue  # changed or deleted meanwhile: its writer wrote every copy
                results = await self._on_disks(
                    self.diskset.online_slots(), lambda s, p=path, b=blob: restore(s, p, b)
                )
            for outcome in results:
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, OSError):
                        raise outcome
                else:
                    rewritten += bool(outcome)
        return rewritten

    def version_in_use(self: ObjectStore, version_id: str) -> bool:
        """Whether a reader holds the version or its removal is still pending."""
        return (
            version_id in self._leases
            or version_id in self._doomed
            or any(m.version_id == version_id for _, m in self._deferred)
        )
