"""The few engine hooks the healer (s3free/heal/) needs, so it never reaches into the store's
private state: read a version like a reader does (leased, so an overwrite does not remove its
files meanwhile), hold a key's lock, switch the index to a repaired manifest, and ask whether
a version's files are still in use."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from s3free.format.manifest import Manifest

if TYPE_CHECKING:
    from s3free.engine.store import ObjectStore

log = logging.getLogger(__name__)


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
            manifest = await self.run_io(self._load_manifest, bucket, key)
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
        return await self.run_io(self._load_manifest, bucket, key)

    async def index_repaired(self: ObjectStore, manifest: Manifest) -> None:
        """Point the index at a repaired manifest of the current version. Call under
        key_locked, after checking the version is still the current one."""
        from s3free.engine.recovery import _listing_entry

        blob = await self.run_io(manifest.encode)
        await self.run_io(
            lambda: self.index.put_object(
                manifest.bucket, manifest.key, _listing_entry(manifest), blob
            )
        )

    async def restore_bucket_records(self: ObjectStore) -> int:
        """Bring every online disk's copy of every bucket record (tombstones included) to the
        newest one, of the disks' copies and the index's: a disk that was away holds stale
        ones, and the records are what a lost index is rebuilt from, so they must not rot
        away one disk at a time either. Where a disk holds a newer record than the index (a
        write that reached the disks but not the index), the index takes it. The heal service
        calls this in whole-store passes and when a disk comes back. Returns how many copies
        were rewritten; a disk that refuses is left for the next pass."""
        from s3free.engine.recovery import parse_bucket_record
        from s3free.storage.layout import BUCKETS_DIR

        def names() -> set[str]:
            found: set[str] = set()
            for slot in self.diskset.online_slots():
                found.update(e[:-5] for e in slot.disk.list_dir(BUCKETS_DIR) if e.endswith(".json"))
            return found

        rewritten = 0
        for name in sorted(await self.run_io(names) | set(self._buckets)):
            async with self._bucket_lock:
                rewritten += await self._restore_bucket_record(name, parse_bucket_record)
        return rewritten

    async def _restore_bucket_record(self: ObjectStore, name: str, parse) -> int:
        from s3free.engine.store import _record_bytes
        from s3free.engine.types import BucketInfo
        from s3free.format import records
        from s3free.storage.layout import bucket_record_path

        path = bucket_record_path(name)
        copies = await self.run_io(self._record_copies, name)
        good: list[tuple[dict, bytes]] = []
        for blob in copies.values():
            try:
                if blob is not None:
                    good.append((parse(name, blob), blob))
            except ValueError:
                pass  # rewritten below
        info = self._buckets.get(name)
        mine = None if info is None else _record_bytes(info.to_record())
        if info is not None:
            good.append((info.to_record(), mine))
        if not good:
            return 0
        record, best = records.newest(good, preferred=mine)
        if best != mine:
            if records.is_tombstone(record):
                if info is not None:
                    if await self.run_io(self.index.bucket_has_objects, name):
                        # Objects the index holds prove the bucket lives on (a rebuild
                        # re-created it from them): above the tombstone.
                        gen = records.generation_of(record) + 1
                        info = BucketInfo(info.name, info.created_ms, info.owner, info.acl, gen)
                        best = _record_bytes(info.to_record())
                        await self.run_io(self.index.put_bucket, name, info.to_record())
                        self._buckets[name] = info
                    else:
                        log.warning("bucket %s: a newer tombstone on the disks, dropped", name)
                        await self.run_io(self.index.delete_bucket, name)
                        self._buckets.pop(name, None)
            else:
                info = BucketInfo.from_record(record)
                log.warning("bucket %s: a newer record on the disks than the index's", name)
                await self.run_io(self.index.put_bucket, name, info.to_record())
                self._buckets[name] = info

        def restore(slot) -> bool:
            if copies.get(slot.position) == best:
                return False
            slot.disk.write_file(path, best)
            return True

        rewritten = 0
        for outcome in await self._on_disks(self.diskset.online_slots(), restore):
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
