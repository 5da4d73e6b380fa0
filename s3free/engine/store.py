"""ObjectStore: buckets and objects over a DiskSet, with the LevelDB index as a fast view.

Commit order for a write (see DESIGN.md, "Write path"): shard files (temp, fsync, rename, dir
fsync) -> the manifest on every disk that holds a shard -> the index (sync) -> reply. The index
switch is the moment the new object becomes visible; it happens under the key's lock, so
concurrent writers of one key are serialised there and readers see the whole old object or the
whole new one. The replaced version's files are removed afterwards, once no reader holds them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path

from s3free.engine.groupsync import Syncer
from s3free.engine.healing import HealingMixin
from s3free.engine.locks import BucketGates, KeyLocks
from s3free.engine.manifestcache import ManifestCache
from s3free.engine.multipart import MultipartMixin
from s3free.engine.names import validate_bucket_name, validate_key
from s3free.engine.pool import IOPool
from s3free.engine.reader import BlockReader, ObjectReader, Prefetched
from s3free.engine.recovery import RecoveryMixin, _listing_entry
from s3free.engine.storelock import DiskLocks, StoreLock
from s3free.engine.types import BucketInfo, ListResult, ObjectInfo, ObjectSummary, ShardFault
from s3free.engine.writer import PartResult, PartWriter, ShardIdentity, is_full, quorum_error
from s3free.erasure import ReedSolomon
from s3free.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    InsufficientWriteQuorum,
    InvalidArgument,
    InvalidPartNumber,
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
    StoreInUse,
)
from s3free.format import records
from s3free.format.errors import FormatError
from s3free.format.ids import bucket_hash, object_id, uuid7
from s3free.format.manifest import Manifest, PartEntry, envelope_length
from s3free.format.merkle import merkle_root
from s3free.meta.index import Index
from s3free.obs.stage import ENGINE_GET, ENGINE_PUT, staged
from s3free.storage.batch import create_files
from s3free.storage.disk import Disk
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import (
    bucket_record_path,
    inline_path,
    manifest_file,
    manifest_path,
    part_path,
    version_dir,
)

log = logging.getLogger(__name__)

DEFAULT_MIN_PART_SIZE = 5 * 1024 * 1024
# Removals that missed a disk, remembered for `settle_removals` (beyond this, the journal
# alone remembers them and the next start-up settles them).
MAX_UNSETTLED = 100_000
# A PUT of at most this many bytes (and one block) is stored inline: each disk's shard records
# go into the manifest file itself, one file per disk instead of two (spec 8.5).
DEFAULT_INLINE_MAX = 128 * 1024
Precondition = Callable[[ObjectInfo | None], None]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ObjectStore(MultipartMixin, RecoveryMixin, HealingMixin):
    def __init__(
        self,
        diskset: DiskSet,
        index: Index,
        *,
        executor: concurrent.futures.Executor,
        min_part_size: int = DEFAULT_MIN_PART_SIZE,
        inline_max: int = DEFAULT_INLINE_MAX,
    ) -> None:
        self.diskset = diskset
        self.index = index
        self.executor = executor
        self.min_part_size = min_part_size
        self.inline_max = min(inline_max, diskset.block_size)
        self.codec = ReedSolomon(diskset.k, diskset.m)
        self.fault_listeners: list[Callable[[ShardFault], None]] = []
        # Called on the loop with each version a PUT, COPY, complete or DELETE replaced: what
        # the healer remembers about it (queued, waiting, unrepairable) is void.
        self.retire_listeners: list[Callable[[Manifest], None]] = []
        # The flocks on the disk directories (ObjectStore.open takes them; the disk monitor
        # takes that of a disk coming back or replaced, before using it).
        self.disk_locks = DiskLocks()
        self.degraded_writes = 0  # committed with some shard not written (for the metrics)
        self.recent_faults: deque[ShardFault] = deque(maxlen=10_000)
        self._key_locks = KeyLocks()
        self._gates = BucketGates()
        self._bucket_lock = asyncio.Lock()
        self._leases: dict[str, int] = {}
        self._doomed: dict[str, Manifest] = {}
        self._lookups: set[int] = set()  # open_object calls between index lookup and lease
        self._lookup_ids = itertools.count()
        self._deferred: list[tuple[set[int], Manifest]] = []
        self._background: set[asyncio.Task] = set()
        # Versions removed while some of their disks were offline or failed: their files stay
        # there (and their journal entry) until `settle_removals` finishes the job.
        self._unsettled: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._syncer = Syncer(executor)
        self._manifests = ManifestCache()
        # Buckets are few and change only through this store: kept in memory (from the
        # index), so that no request pays a thread hop to learn that its bucket exists.
        self._buckets: dict[str, BucketInfo] = {}
        self._loop = asyncio.get_running_loop()

    # -- life cycle --------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        disks: Sequence[str | Path | Disk],
        *,
        meta_dir: str | Path,
        k: int | None = None,
        m: int | None = None,
        block_size: int | None = None,
        min_part_size: int = DEFAULT_MIN_PART_SIZE,
        inline_max: int = DEFAULT_INLINE_MAX,
        io_threads: int = 32,
    ) -> ObjectStore:
        """Open (formatting a new set if the disks are empty), remove temp files left by a
        crash, and rebuild the index from the disks if it is missing or incomplete."""
        # Runs each call in its caller's context: request id and span reach the worker threads.
        executor = IOPool(io_threads, thread_name_prefix="s3free-io")
        loop = asyncio.get_running_loop()
        lock: StoreLock | None = None
        disk_locks = DiskLocks()
        roots = sorted(str(d if isinstance(d, (str, Path)) else d.root) for d in disks)

        def lock_disks() -> None:
            # In path order, so two processes starting at once cannot each hold a part.
            for root in roots:
                disk_locks.acquire(root)

        try:
            lock = await loop.run_in_executor(executor, StoreLock.acquire, Path(meta_dir))
            await loop.run_in_executor(executor, lock_disks)  # before anything is written
            diskset = await loop.run_in_executor(
                executor, lambda: DiskSet.open(disks, k=k, m=m, block_size=block_size)
            )
            await loop.run_in_executor(executor, lock_disks)  # those a new set just made
            for slot in diskset.online_slots():
                removed = await loop.run_in_executor(executor, slot.disk.clean_temp)
                if removed:
                    log.info("removed %d temp files on %s", removed, slot.disk.root)
            index = await loop.run_in_executor(executor, _open_index, Path(meta_dir))
        except BaseException:
            disk_locks.release_all()
            if lock is not None:
                lock.release()
            executor.shutdown(wait=False)
            raise
        store = cls(
            diskset, index, executor=executor, min_part_size=min_part_size, inline_max=inline_max
        )
        store._store_lock = lock
        store.disk_locks = disk_locks
        meta = await store.run_io(index.get_meta)
        if not meta or meta.get("set_id") != diskset.set_id or not meta.get("complete"):
            log.info("index missing or incomplete: rebuilding it from the disks")
            await store.rebuild_index()
        else:
            await store.reload_buckets()
            await store._replay_journal()
        return store

    async def _replay_journal(self) -> None:
        """Finish what a crash interrupted: remove every journalled version the index does not
        point at (a write that never switched, a replaced version not yet removed), complete
        a delete that was in flight, and forget the upload of a CompleteMultipartUpload that
        switched but was killed before it dropped its upload (else the upload stays listed
        beside the object it became)."""
        for version_id, record in await self.run_io(self.index.journal):
            current = await self.run_io(self._load_manifest, record["bucket"], record["key"])
            if current is not None and current.version_id == version_id:
                if not record.get("deleting"):
                    if record.get("upload_id"):
                        await self._forget_upload_files_and_record(record["upload_id"])
                    await self.run_io(self.index.drop_journal, version_id)
                    continue
                await self._delete_current(current)
            elif record.get("upload_id") and await self.run_io(
                self.index.get_upload, record["upload_id"]
            ):
                # A complete that crashed before its switch: drop only the manifests, so the
                # moved parts stay where a retry of the complete finds them.
                mpath = manifest_path(record["object_id"], version_id.replace("-", ""))
                slots = [self.diskset.slot_for(d) for d in record["placement"]]
                await self._on_disks(
                    [s for s in slots if s is not None and s.online],
                    lambda s, p=mpath: s.disk.remove(p),
                )
                await self.run_io(self.index.drop_journal, version_id)
                continue
            await self._remove_files(record["object_id"], version_id, record["placement"])

    async def close(self) -> None:
        """Wait for background removals, then close the index and the thread pool."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        # Pool work whose awaiter was cancelled (a stopped service's index write) may still
        # run: the pool finishes first, so the index never closes under a write (in LevelDB
        # that is a segfault, not an exception).
        self.executor.shutdown(wait=True)
        self.index.close()
        self.disk_locks.release_all()
        lock = getattr(self, "_store_lock", None)
        if lock is not None:
            lock.release()

    def run_io(self, fn, *args) -> asyncio.Future:
        """fn(*args) on the I/O pool, as a future the loop can await."""
        if isinstance(self.executor, IOPool):
            return self.executor.call(fn, *args)
        return self._loop.run_in_executor(self.executor, fn, *args)

    async def _on_disks(
        self, slots: Sequence[DiskSlot], fn: Callable[[DiskSlot], object]
    ) -> list[object]:
        """Run fn on each disk in parallel; each result is a value or the exception raised."""
        futures = [self.run_io(fn, slot) for slot in slots]
        return await asyncio.gather(*futures, return_exceptions=True)

    def _report(self, fault: ShardFault) -> None:
        """Called from reader threads and the loop alike; listeners run on the loop."""
        self.recent_faults.append(fault)
        if self.fault_listeners:
            self._loop.call_soon_threadsafe(self._notify, fault)

    def _notify(self, fault: ShardFault) -> None:
        for listener in list(self.fault_listeners):
            try:
                listener(fault)
            except Exception:
                log.exception("fault listener failed")

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str = "", acl: str = "private") -> BucketInfo:
        """Create atomically: of two racing creators exactly one wins, the other gets
        BucketAlreadyExists (with .owner set to the winner's owner)."""
        validate_bucket_name(name)
        _check_acl(acl)
        async with self._bucket_lock:
            existing = self._buckets.get(name)
            if existing is not None:
                err = BucketAlreadyExists(f"bucket {name} already exists")
                err.owner = existing.owner  # type: ignore[attr-defined]
                raise err
            before = await self.run_io(self._record_copies, name)
            info = BucketInfo(name, now_ms(), owner, acl, _next_generation(before, 0))
            await self._save_bucket(info, new=before)
        return info

    async def set_bucket_acl(self, name: str, acl: str) -> BucketInfo:
        _check_acl(acl)
        async with self._bucket_lock:
            info = await self.head_bucket(name)
            copies = await self.run_io(self._record_copies, name)
            generation = _next_generation(copies, info.generation)
            info = BucketInfo(info.name, info.created_ms, info.owner, acl, generation)
            await self._save_bucket(info)
        return info

    def _record_copies(self, name: str) -> dict[int, bytes | None]:
        """Each online disk's copy of a bucket's record (None: none there, or unreadable)."""
        out: dict[int, bytes | None] = {}
        for slot in self.diskset.online_slots():
            try:
                out[slot.position] = slot.disk.read_file(bucket_record_path(name))
            except OSError:
                out[slot.position] = None
        return out

    async def _save_bucket(
        self, info: BucketInfo, *, new: dict[int, bytes | None] | None = None
    ) -> None:
        """The bucket record on every online disk (a write quorum of them), then the index.
        A new bucket (`new`: the copies there were before, a tombstone or none) that misses
        the quorum puts those back on the disks that got it."""
        path = bucket_record_path(info.name)
        record = _record_bytes(info.to_record())
        slots = self.diskset.online_slots()
        results = await self._on_disks(slots, lambda s: s.disk.write_file(path, record))
        if sum(not isinstance(r, BaseException) for r in results) < self.diskset.write_quorum:
            if new is not None:

                def undo(slot: DiskSlot) -> None:
                    old = new.get(slot.position)
                    if old is None:
                        slot.disk.remove(path)
                    else:
                        slot.disk.write_file(path, old)

                await self._on_disks(self.diskset.online_slots(), undo)
            failed = {j: str(r) for j, r in enumerate(results) if isinstance(r, BaseException)}
            full = {j for j, r in enumerate(results) if j in failed and is_full(slots[j], r)}
            raise quorum_error(
                f"copies of bucket {info.name}'s record",
                slots,
                failed,
                full,
                self.diskset.write_quorum,
            )
        await self.run_io(self.index.put_bucket, info.name, info.to_record())
        self._buckets[info.name] = info

    async def head_bucket(self, name: str) -> BucketInfo:
        info = self._buckets.get(name)
        if info is None:
            raise NoSuchBucket(f"bucket {name} does not exist")
        return info

    async def list_buckets(self) -> list[BucketInfo]:
        return sorted(self._buckets.values(), key=lambda b: b.name)

    async def reload_buckets(self) -> None:
        """Refill the in-memory bucket table from the index (at open, after a rebuild)."""
        rows = await self.run_io(self.index.list_buckets)
        self._buckets = {r["name"]: BucketInfo.from_record(r) for r in rows}

    async def delete_bucket(self, name: str) -> None:
        """Refuse while objects remain; uploads in progress are aborted with the bucket. The
        record becomes a tombstone (kept), so a copy on a disk away now loses to it."""
        async with self._bucket_lock, self._gates.exclusive(name):
            info = await self.head_bucket(name)
            if await self.run_io(self.index.bucket_has_objects, name):
                raise BucketNotEmpty(f"bucket {name} is not empty")
            for upload_id in await self.run_io(self.index.uploads_in_bucket, name):
                await self._drop_upload(upload_id)
            copies = await self.run_io(self._record_copies, name)
            tomb = _record_bytes(records.tombstone(name, _next_generation(copies, info.generation)))
            await self._on_disks(
                self.diskset.online_slots(),
                lambda s: s.disk.write_file(bucket_record_path(name), tomb),
            )
            await self.run_io(self.index.delete_bucket, name)
            self._buckets.pop(name, None)

    # -- objects: write ----------------------------------------------------------------------

    @staged(ENGINE_PUT)
    async def put_object(
        self,
        bucket: str,
        key: str,
        stream: AsyncIterable[bytes],
        *,
        content_type: str = "",
        user_metadata: dict[str, str] | None = None,
        http_headers: dict[str, str] | None = None,
        checksums: dict[str, str] | None = None,
        expected_size: int | None = None,
        expected_md5: bytes | None = None,
        precondition: Precondition | None = None,
    ) -> ObjectInfo:
        """Store a stream as bucket/key; returns once it is durable and visible.

        `checksums` is read after the stream is exhausted, so a stream wrapper that computes
        them may fill it in. `precondition` is called with the current object (or None) under
        the key's lock just before the switch; raising there aborts the write cleanly."""
        validate_key(key)
        await self.head_bucket(bucket)
        oid = object_id(bucket, key)
        vid = uuid7()
        placement = self.diskset.placement(oid)
        writer = PartWriter(
            placement=placement,
            codec=self.codec,
            identity=ShardIdentity(oid, bucket_hash(bucket), vid.bytes, 1),
            block_size=self.diskset.block_size,
            write_quorum=self.diskset.write_quorum,
            executor=self.executor,
            in_memory=expected_size is not None and expected_size <= self.inline_max,
        )
        result = await writer.write(stream, expected_size=expected_size, expected_md5=expected_md5)
        # Past this point the client has sent everything: finish even if the request task is
        # cancelled (shutdown), so an acknowledged-or-not write never stops half-way.
        return await asyncio.shield(
            self._finish_put(
                bucket,
                key,
                oid.hex(),
                str(vid),
                placement,
                writer,
                result,
                content_type=content_type,
                user_metadata=user_metadata or {},
                http_headers=http_headers or {},
                checksums=checksums if checksums is not None else {},
                precondition=precondition,
            )
        )

    async def _finish_put(
        self,
        bucket: str,
        key: str,
        oid: str,
        vid: str,
        placement: list[DiskSlot],
        writer: PartWriter,
        result: PartResult,
        *,
        precondition: Precondition | None,
        **fields,
    ) -> ObjectInfo:
        vhex = vid.replace("-", "")
        part = PartEntry(1, result.size, result.etag, len(result.block_hashes), result.merkle_root)
        if writer.in_memory:
            manifest = self._manifest(
                bucket, key, oid, vid, [part], result.etag, placement, inline=True, **fields
            )
            return await self._publish(
                manifest, placement, dict(result.failed), precondition, writer.inline_records()
            )
        failed = await writer.commit(lambda j: part_path(oid, vhex, 1), self._syncer)
        manifest = self._manifest(bucket, key, oid, vid, [part], result.etag, placement, **fields)
        return await self._publish(manifest, placement, failed, precondition)

    def _manifest(
        self,
        bucket: str,
        key: str,
        oid: str,
        vid: str,
        parts: list[PartEntry],
        etag: str,
        placement: Sequence[DiskSlot],
        *,
        content_type: str,
        user_metadata: dict[str, str],
        http_headers: dict[str, str],
        checksums: dict[str, str],
        inline: bool = False,
    ) -> Manifest:
        roots = [bytes.fromhex(p.merkle_root) for p in parts]
        manifest = Manifest(
            bucket=bucket,
            key=key,
            object_id=oid,
            version_id=vid,
            size=sum(p.size for p in parts),
            etag=etag,
            last_modified_ms=now_ms(),
            content_type=content_type,
            parts=tuple(parts),
            k=self.diskset.k,
            m=self.diskset.m,
            block_size=self.diskset.block_size,
            placement=tuple(s.disk_id for s in placement),
            generation=1,
            merkle_root=merkle_root(roots).hex(),
            user_metadata=dict(user_metadata),
            http_headers=dict(http_headers),
            checksums=dict(checksums),
            inline=inline,
        )
        manifest.validate()
        return manifest

    async def _publish(
        self,
        manifest: Manifest,
        placement: Sequence[DiskSlot],
        failed: dict[int, str],
        precondition: Precondition | None,
        inline: dict[int, list[bytes | memoryview]] | None = None,
        undo: Callable[[], Awaitable[None]] | None = None,
        upload_id: str | None = None,
    ) -> ObjectInfo:
        """Write the manifest next to every surviving shard, then switch the index. If that
        fails, `undo` runs before the version's files are removed (a multipart upload takes
        its parts back, so a failed complete can be retried).

        With `inline` (shard index -> its records), each disk's manifest file carries that
        disk's records after the envelope, written straight under its final name in the new
        version's directory: one file and one group commit per disk make the whole write
        durable, and a torn file fails its own checksums."""
        vhex = manifest.version_id.replace("-", "")
        mpath = manifest_file(manifest.object_id, vhex, manifest.inline)

        def encode_and_journal() -> bytes:
            # Journal the version before any manifest of it exists: a crash before the switch
            # then removes it at start-up instead of leaving it for a rebuild to publish.
            blob = manifest.encode()
            self.index.put_journal(manifest.version_id, _journal(manifest, upload_id=upload_id))
            return blob

        targets = [j for j in range(len(placement)) if j not in failed]
        if inline is None:
            blob = await self.run_io(encode_and_journal)
            results = await self._on_disks(
                [placement[j] for j in targets],
                lambda s: s.disk.write_file(mpath, blob, sync=False),
            )
        else:

            def journal_and_create() -> tuple[bytes, list[BaseException | None]]:
                # One pool call for the whole small write: the files are a few KiB each and
                # land in the page cache (the group commit below makes them durable), so a
                # hop per disk would cost more than the writes themselves; and the files are
                # created in one batch (storage/batch.py), one GIL release for them all.
                blob = encode_and_journal()
                outcomes = create_files(
                    [(placement[j].disk, mpath, [blob, *inline[j]]) for j in targets]
                )
                return blob, outcomes

            blob, results = await self.run_io(journal_and_create)
        full = {j for j in failed if is_full(placement[j])}
        for j, outcome in zip(targets, results, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, OSError):
                    raise outcome
                failed[j] = f"manifest write: {outcome}"
                if is_full(placement[j], outcome):
                    full.add(j)
        # One group commit per disk makes the manifests durable before the index switch.
        written = [j for j in targets if j not in failed]
        errors = await self._syncer.sync([placement[j] for j in written])
        for j, error in zip(written, errors, strict=True):
            if error is not None:
                if not isinstance(error, OSError):
                    raise error
                failed[j] = f"manifest sync: {error}"
                if is_full(placement[j], error):
                    full.add(j)
        try:
            if len(placement) - len(failed) < self.diskset.write_quorum:
                raise quorum_error(
                    "manifest copies",
                    list(placement),
                    failed,
                    full,
                    self.diskset.write_quorum,
                    -(-manifest.size // manifest.k),
                )
            # A complete keeps its journal entry past the switch, until it has forgotten the
            # upload (_forget_completed_upload): a crash in between is finished at start-up.
            old = await self._switch(
                manifest, blob, precondition, keep_journal=upload_id is not None
            )
        except BaseException:
            if undo is not None:
                await undo()
            await self._remove_version(manifest)
            raise
        if failed:
            self.degraded_writes += 1
        for j, why in failed.items():
            for part in manifest.parts:
                self._report(
                    ShardFault(
                        manifest.bucket,
                        manifest.key,
                        manifest.version_id,
                        part.number,
                        j,
                        manifest.placement[j],
                        f"not written: {why}",
                        object_size=manifest.size,
                    )
                )
        if old is not None and old.version_id != manifest.version_id:
            self._retire(old)
        return ObjectInfo.from_manifest(manifest)

    async def _switch(
        self,
        manifest: Manifest,
        blob: bytes,
        precondition: Precondition | None,
        *,
        keep_journal: bool = False,
    ) -> Manifest | None:
        """Make manifest (encoded: blob) the visible version of its key; returns the version
        it replaced. The new version's journal entry goes with the switch unless
        `keep_journal` (the caller has more to finish and drops it itself)."""
        async with (
            self._gates.shared(manifest.bucket),
            self._key_locks.hold((manifest.bucket, manifest.key)),
        ):
            if manifest.bucket not in self._buckets:
                raise NoSuchBucket(f"bucket {manifest.bucket} was deleted during the write")

            def switch(old: Manifest | None) -> None:
                journal: dict[str, dict | None] = (
                    {} if keep_journal else {manifest.version_id: None}
                )
                if old is not None and old.version_id != manifest.version_id:
                    journal[old.version_id] = _journal(old)  # removed by _retire, or at start-up
                self.index.put_object(
                    manifest.bucket, manifest.key, _listing_entry(manifest), blob, journal
                )
                self._manifests.remember(blob, manifest)

            def load_and_switch() -> Manifest | None:
                old = self._load_manifest(manifest.bucket, manifest.key)
                switch(old)
                return old

            if precondition is None:  # one trip to the pool for the common, unconditional write
                return await self.run_io(load_and_switch)
            # The precondition runs on the loop, between reading the current version and the
            # switch, both under the key's lock.
            old = await self.run_io(self._load_manifest, manifest.bucket, manifest.key)
            precondition(ObjectInfo.from_manifest(old) if old else None)
            await self.run_io(switch, old)
            return old

    async def update_object_headers(
        self, bucket: str, key: str, http_headers: dict[str, str]
    ) -> ObjectInfo:
        """Replace an object's stored HTTP headers (e.g. its canned ACL) without touching its
        data: the manifest is rewritten with the next generation on its disks, then indexed."""
        validate_key(key)
        async with self._gates.shared(bucket), self._key_locks.hold((bucket, key)):
            manifest = await self.get_manifest(bucket, key)
            updated = replace(
                manifest, http_headers=dict(http_headers), generation=manifest.generation + 1
            )
            blob = await self.run_io(updated.encode)
            mpath = manifest_file(
                updated.object_id, updated.version_id.replace("-", ""), updated.inline
            )
            results = await self._on_disks(
                self._slots_of(updated), lambda s: rewrite_manifest_copy(s.disk, mpath, blob)
            )
            if sum(not isinstance(r, BaseException) for r in results) < self.diskset.write_quorum:
                raise InsufficientWriteQuorum(f"manifest of {bucket}/{key}: too few disks")
            await self.run_io(
                lambda: self.index.put_object(bucket, key, _listing_entry(updated), blob)
            )
        return ObjectInfo.from_manifest(updated)

    # -- objects: read -----------------------------------------------------------------------

    async def get_manifest(self, bucket: str, key: str) -> Manifest:
        validate_key(key)
        manifest = await self.run_io(self._load_manifest, bucket, key)
        if manifest is None:
            raise self._missing(bucket, key)
        return manifest

    def _missing(self, bucket: str, key: str) -> NoSuchBucket | NoSuchKey:
        if bucket not in self._buckets:
            return NoSuchBucket(f"bucket {bucket} does not exist")
        return NoSuchKey(f"{bucket}/{key} does not exist")

    def _load_manifest(self, bucket: str, key: str) -> Manifest | None:
        """Index lookup and decode together, off the loop (a 10,000-part manifest is ~1 MB)."""
        raw = self.index.get_manifest(bucket, key)  # an index.get stage (meta/index.py)
        return self._manifests.decode(raw) if raw is not None else None

    async def head_object(self, bucket: str, key: str) -> ObjectInfo:
        return ObjectInfo.from_manifest(await self.get_manifest(bucket, key))

    @staged(ENGINE_GET)
    async def open_object(
        self,
        bucket: str,
        key: str,
        *,
        start: int | None = None,
        end: int | None = None,
        part_number: int | None = None,
        prepare: Callable[[ObjectInfo], tuple[int | None, int | None] | None] | None = None,
        prefetch: bool = False,
    ) -> ObjectReader:
        """A reader for the object, or bytes start..end (inclusive) of it, or one part.

        `prepare`, if given, sees the object's info before any byte is returned (to check
        access or conditions, raising to refuse) and may return the (start, end) to read,
        decided on the same version the reader will read. With `prefetch` (a GET, not a
        HEAD), an object of one block is read and verified in the same pool call as the
        index lookup: one thread hop per small GET instead of two. The caller must iterate
        the reader to the end or call aclose()."""
        token = next(self._lookup_ids)
        self._lookups.add(token)
        try:
            return await self._open_leased(bucket, key, start, end, part_number, prepare, prefetch)
        finally:
            self._lookup_done(token)

    async def _open_leased(
        self,
        bucket: str,
        key: str,
        start: int | None,
        end: int | None,
        part_number: int | None,
        prepare: Callable[[ObjectInfo], tuple[int | None, int | None] | None] | None,
        prefetch: bool = False,
    ) -> ObjectReader:
        faults: list[ShardFault] = []

        def on_fault(fault: ShardFault) -> None:
            faults.append(fault)
            self._report(fault)

        blocks: BlockReader | None = None
        prefetched: Prefetched | None = None
        if prefetch:
            validate_key(key)
            manifest = await self.run_io(self._load_manifest, bucket, key)
            if manifest is None:
                raise self._missing(bucket, key)
            blocks, prefetched = await self._prefetch(manifest, on_fault)
        else:
            manifest = await self.get_manifest(bucket, key)
        if prepare is not None:
            chosen = prepare(ObjectInfo.from_manifest(manifest))
            if chosen is not None:
                start, end = chosen
        size = manifest.size
        if part_number is not None:
            offset = 0
            for part in manifest.parts:
                if part.number == part_number:
                    start, end = offset, offset + part.size - 1
                    break
                offset += part.size
            else:
                raise InvalidPartNumber(f"{bucket}/{key} has no part {part_number}")
        if start is None and end is None:
            start, end = 0, size - 1
        else:
            start = 0 if start is None else start
            end = size - 1 if end is None else min(end, size - 1)
            if start < 0 or start >= size or end < start:
                raise InvalidRange(f"range {start}-{end} is not within 0..{size - 1}")
        self._lease(manifest.version_id)
        return ObjectReader(
            info=ObjectInfo.from_manifest(manifest),
            manifest=manifest,
            start=start,
            end=end,
            blocks=blocks or BlockReader(manifest, self.diskset, self.codec, on_fault),
            executor=self.executor,
            release=lambda: self._unlease(manifest.version_id),
            faults=faults,
            prefetched=prefetched,
        )

    async def _prefetch(
        self, manifest: Manifest, on_fault: Callable[[ShardFault], None]
    ) -> tuple[BlockReader, Prefetched | None]:
        """For an object of one block, that block read and verified (or the error reading it
        gave, raised only when the block is asked for: a 304 or 412 must still win), so a
        small GET costs one thread hop (the index lookup) or none at all for its data: an
        inline version whose files are in the page cache is read and checked right here on
        the loop, which cannot wait for a disk (BlockReader.read_cached); anything else is
        read in the pool. Its files are closed at once: nothing else is ever read."""
        blocks = BlockReader(manifest, self.diskset, self.codec, on_fault)
        if len(manifest.parts) != 1 or not 0 < manifest.size <= manifest.block_size:
            return blocks, None
        part = manifest.parts[0]
        data = blocks.read_cached(part, 0)
        if data is not None:
            blocks.close()
            return blocks, Prefetched(part.number, 0, data)

        def read() -> Prefetched:
            try:
                outcome: list[bytes | memoryview] | Exception = blocks.read_pieces(part, 0)
            except Exception as exc:
                outcome = exc
            finally:
                blocks.close()
            return Prefetched(part.number, 0, outcome)

        return blocks, await self.run_io(read)

    async def get_object_bytes(self, bucket: str, key: str, **kwargs) -> bytes:
        """Whole object (or range) in memory: tests and tiny objects only."""
        reader = await self.open_object(bucket, key, **kwargs)
        return await reader.read_all()

    # -- objects: delete and list ------------------------------------------------------------

    async def delete_object(self, bucket: str, key: str) -> bool:
        """Remove bucket/key; False if it did not exist (deleting is idempotent)."""
        validate_key(key)
        async with self._gates.shared(bucket), self._key_locks.hold((bucket, key)):
            manifest = await self.run_io(self._load_manifest, bucket, key)
            if manifest is None:
                if bucket not in self._buckets:
                    raise NoSuchBucket(f"bucket {bucket} does not exist")
                return False
            await self.run_io(
                self.index.put_journal, manifest.version_id, _journal(manifest, deleting=True)
            )
            await self._delete_current(manifest)
        self._retire(manifest)
        return True

    async def _delete_current(self, manifest: Manifest) -> None:
        # The disks are the truth: drop the manifests there first, so a crash between
        # the two steps cannot bring the object back when the index is rebuilt.
        mpath = manifest_file(
            manifest.object_id, manifest.version_id.replace("-", ""), manifest.inline
        )
        await self._on_disks(self._slots_of(manifest), lambda s: s.disk.remove(mpath))
        await self.run_io(self.index.delete_object, manifest.bucket, manifest.key)

    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        max_keys: int = 1000,
    ) -> ListResult:
        if max_keys < 0:
            raise InvalidArgument("max_keys must not be negative")
        await self.head_bucket(bucket)
        page = await self.run_io(
            lambda: self.index.list_objects(
                bucket,
                prefix=prefix,
                delimiter=delimiter,
                start_after=start_after,
                max_keys=max_keys,
            )
        )
        objects = [ObjectSummary(key, e["size"], e["etag"], e["mtime"]) for key, e in page.entries]
        return ListResult(objects, page.common_prefixes, page.is_truncated, page.next_marker)

    # -- version files: leases and removal ---------------------------------------------------

    def _slots_of(self, manifest: Manifest) -> list[DiskSlot]:
        slots = [self.diskset.slot_for(d) for d in manifest.placement]
        return [s for s in slots if s is not None and s.online]

    def _lease(self, version_id: str) -> None:
        self._leases[version_id] = self._leases.get(version_id, 0) + 1

    def _unlease(self, version_id: str) -> None:
        left = self._leases[version_id] - 1
        if left:
            self._leases[version_id] = left
            return
        del self._leases[version_id]
        doomed = self._doomed.pop(version_id, None)
        if doomed is not None:
            self._spawn(self._remove_version(doomed))

    def _retire(self, manifest: Manifest) -> None:
        """Remove a replaced or deleted version's files now, or when its last reader ends.
        An open_object in flight may have looked this version up without leasing it yet:
        wait for the lookups in flight now (not for later ones, which see the new version)."""
        for listener in list(self.retire_listeners):
            try:
                listener(manifest)
            except Exception:
                log.exception("retire listener failed")
        if self._lookups:
            self._deferred.append((set(self._lookups), manifest))
        else:
            self._retire_now(manifest)

    def _lookup_done(self, token: int) -> None:
        self._lookups.discard(token)
        for waiting, _ in self._deferred:
            waiting.discard(token)
        ready = [m for waiting, m in self._deferred if not waiting]
        self._deferred = [(w, m) for w, m in self._deferred if w]
        for manifest in ready:
            self._retire_now(manifest)

    def _retire_now(self, manifest: Manifest) -> None:
        if manifest.version_id in self._leases:
            self._doomed[manifest.version_id] = manifest
        else:
            self._spawn(self._remove_version(manifest))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _remove_version(self, manifest: Manifest) -> None:
        await self._remove_files(manifest.object_id, manifest.version_id, manifest.placement)

    async def _remove_files(
        self, object_id: str, version_id: str, placement: Sequence[str]
    ) -> None:
        """Remove one version's directory everywhere, then its journal entry (kept when a
        disk failed or was offline, so the next start-up tries again)."""
        vhex = version_id.replace("-", "")
        vdir = version_dir(object_id, vhex)
        inline = inline_path(object_id, vhex)
        slots = [self.diskset.slot_for(d) for d in placement]
        online = [s for s in slots if s is not None and s.online]

        def remove(slot: DiskSlot) -> None:
            # A version is a directory, or (inline) one file: whichever it is, both go.
            slot.disk.remove_tree(vdir)
            slot.disk.remove(inline)

        results = await self._on_disks(online, remove)
        failed = False
        for outcome in results:
            if isinstance(outcome, BaseException):
                # Left for the scrubber's orphan collection; never silently.
                log.warning("could not remove %s: %s", vdir, outcome)
                failed = True
        if not failed and len(online) == len(slots):
            await self.run_io(self.index.drop_journal, version_id)
            self._unsettled.pop(version_id, None)
        elif len(self._unsettled) < MAX_UNSETTLED or version_id in self._unsettled:
            self._unsettled[version_id] = (object_id, tuple(placement))
        # else: the journal entry alone remembers it, and the next start-up settles it

    async def settle_removals(self) -> int:
        """Remove again the versions whose removal missed a disk that was offline or failed
        (the disk monitor calls this when a disk comes back); returns how many are now gone
        everywhere. Their journal entries keep them from the scrubber, so without this they
        would stay until the next start-up."""
        settled = 0
        for version_id, (oid, placement) in list(self._unsettled.items()):
            await self._remove_files(oid, version_id, placement)
            settled += version_id not in self._unsettled
        return settled

    async def wait_idle(self) -> None:
        """Wait for background removals (tests and shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)


def rewrite_manifest_copy(disk: Disk, mpath: str, blob: bytes) -> None:
    """Replace one disk's manifest copy (durably), keeping the shard records an inline file
    carries after its envelope (found from the old envelope's length alone: a copy whose JSON
    rotted still has good records; an OSError if even that length is unusable)."""
    records = b""
    if Manifest.decode(blob).inline:
        raw = disk.read_file(mpath)
        try:
            records = raw[envelope_length(raw) :]
        except FormatError as exc:
            raise OSError(errno.EBADMSG, f"inline file's records cannot be found: {exc}") from None
    disk.write_file(mpath, blob + records)


def _journal(manifest: Manifest, *, deleting: bool = False, upload_id: str | None = None) -> dict:
    return {
        "bucket": manifest.bucket,
        "deleting": deleting,
        "key": manifest.key,
        "object_id": manifest.object_id,
        "placement": list(manifest.placement),
        "upload_id": upload_id,
    }


def _open_index(path: Path) -> Index:
    """Open the index; a corrupt one is moved aside (kept for inspection) and rebuilt."""
    import plyvel

    try:
        return Index(path)
    except plyvel.Error as exc:
        if "lock" in str(exc).lower():  # held by another process: in use, not corrupt
            raise StoreInUse(f"the index at {path} is in use by another process: {exc}") from None
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        log.error("index at %s is unusable (%s): moved to %s, rebuilding", path, exc, aside)
        path.rename(aside)
        return Index(path)


CANNED_ACLS = ("private", "public-read")


def _check_acl(acl: str) -> None:
    if acl not in CANNED_ACLS:
        allowed = ", ".join(CANNED_ACLS)
        raise InvalidArgument(f"canned ACL {acl!r} is not supported (only {allowed})")


def _record_bytes(record: dict) -> bytes:
    return records.encode(record)


def _next_generation(copies: dict[int, bytes | None], known: int) -> int:
    """A generation above `known` and above every generation the disks' copies carry."""
    found = [known]
    for blob in copies.values():
        try:
            found.append(records.generation_of(json.loads(blob)) if blob else 0)
        except (ValueError, AttributeError, TypeError):
            continue  # an unreadable copy: the restore rewrites it
    return records.next_generation(*found)
