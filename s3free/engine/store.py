"""ObjectStore: buckets and objects over a DiskSet, with the LevelDB index as a fast view.

Commit order for a write (see docs/architecture.md, "Write path"): shard files (temp, fsync,
rename, dir fsync) -> the manifest on every disk that holds a shard -> the index (sync) ->
reply. The index switch is the moment the new object becomes visible; it happens under the
key's lock, so concurrent writers of one key are serialised there and readers see the whole
old object or the whole new one. The replaced version's files are removed afterwards, once no
reader holds them.

The store owns its collaborators and wires them together: `buckets` (the bucket table),
`publisher` (manifests and the index switch), `reaper` (leases and removal of old versions),
`multipart` (uploads), `recovery` (rebuilding the index from the disks) and `healing` (the
port the heal service uses). What the S3 layer calls stays here as the store's own methods.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import deque
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from s3free.engine.buckets import Buckets
from s3free.engine.fanout import on_disks
from s3free.engine.groupsync import Syncer
from s3free.engine.healing import HealingPort
from s3free.engine.locks import BucketGates, KeyLocks
from s3free.engine.manifestcache import Manifests
from s3free.engine.multipart import MultipartUploads
from s3free.engine.names import validate_key
from s3free.engine.pool import IOPool
from s3free.engine.publish import Precondition, Publisher, rewrite_manifest_copy
from s3free.engine.reader import BlockReader, ObjectReader, Prefetched
from s3free.engine.reaper import VersionReaper
from s3free.engine.recovery import RebuildReport, Recovery
from s3free.engine.storelock import DiskLocks, StoreLock
from s3free.engine.types import (
    BucketInfo,
    ListResult,
    ObjectInfo,
    ObjectSummary,
    ShardFault,
    now_ms,
)
from s3free.engine.writer import PartResult, PartWriter, ShardIdentity
from s3free.erasure import ReedSolomon
from s3free.errors import (
    InvalidArgument,
    InvalidPartNumber,
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
)
from s3free.format.ids import bucket_hash, object_id, uuid7, version_hex
from s3free.format.manifest import Manifest, PartEntry
from s3free.meta.index import Index, JournalEntry, open_index
from s3free.obs.stage import ENGINE_GET, ENGINE_PUT, staged
from s3free.storage.disk import Disk
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import manifest_file, part_path

__all__ = ["ObjectStore", "Precondition", "now_ms", "rewrite_manifest_copy"]

log = logging.getLogger(__name__)

DEFAULT_MIN_PART_SIZE = 5 * 1024 * 1024
# A PUT of at most this many bytes (and one block) is stored inline: each disk's shard records
# go into the manifest file itself, one file per disk instead of two (spec 8.5).
DEFAULT_INLINE_MAX = 128 * 1024
T = TypeVar("T")


class ObjectStore:
    def __init__(
        self,
        diskset: DiskSet,
        index: Index,
        *,
        executor: concurrent.futures.Executor,
        min_part_size: int = DEFAULT_MIN_PART_SIZE,
        inline_max: int = DEFAULT_INLINE_MAX,
        store_lock: StoreLock | None = None,
        disk_locks: DiskLocks | None = None,
    ) -> None:
        self.diskset = diskset
        self.index = index
        self.executor = executor
        self.min_part_size = min_part_size
        self.inline_max = min(inline_max, diskset.block_size)
        self.codec = ReedSolomon(diskset.k, diskset.m)
        self.fault_listeners: list[Callable[[ShardFault], None]] = []
        # The flocks on the disk directories (ObjectStore.open takes them; the disk monitor
        # takes that of a disk coming back or replaced, before using it).
        self.disk_locks = disk_locks if disk_locks is not None else DiskLocks()
        self.recent_faults: deque[ShardFault] = deque(maxlen=10_000)
        self._store_lock = store_lock
        self._loop = asyncio.get_running_loop()
        gates, key_locks = BucketGates(), KeyLocks()
        self._gates, self._key_locks = gates, key_locks
        self.manifests = Manifests(index)
        syncer = Syncer(executor)
        run_io = self.run_io
        self.reaper = VersionReaper(diskset, index, run_io)
        # Called on the loop with each version a PUT, COPY, complete or DELETE replaced.
        self.retire_listeners = self.reaper.retire_listeners
        self.buckets = Buckets(diskset, index, run_io, gates)
        self.publisher = Publisher(
            diskset,
            index,
            run_io,
            syncer=syncer,
            manifests=self.manifests,
            gates=gates,
            key_locks=key_locks,
            buckets=self.buckets,
            reaper=self.reaper,
            report=self._report,
        )
        self.multipart = MultipartUploads(
            diskset,
            index,
            run_io,
            executor=executor,
            codec=self.codec,
            syncer=syncer,
            manifests=self.manifests,
            gates=gates,
            key_locks=key_locks,
            buckets=self.buckets,
            publisher=self.publisher,
            report=self._report,
            min_part_size=min_part_size,
        )
        self.recovery = Recovery(
            diskset,
            index,
            run_io,
            buckets=self.buckets,
            manifests=self.manifests,
            reaper=self.reaper,
            forget_upload=self.multipart.forget,
            delete_current=self._delete_current,
        )
        self.healing = HealingPort(
            index,
            run_io,
            manifests=self.manifests,
            reaper=self.reaper,
            gates=gates,
            key_locks=key_locks,
            buckets=self.buckets,
        )
        self._syncer = syncer
        # The multipart calls of the S3 layer, as the store's own (MultipartUploads has them).
        self.create_multipart_upload = self.multipart.create
        self.upload_part = self.multipart.upload_part
        self.complete_multipart_upload = self.multipart.complete
        self.abort_multipart_upload = self.multipart.abort
        self.list_parts = self.multipart.list_parts
        self.list_multipart_uploads = self.multipart.list_uploads

    @property
    def degraded_writes(self) -> int:
        """Writes committed with some shard not written (for the metrics)."""
        return self.publisher.degraded_writes

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
            index = await loop.run_in_executor(executor, open_index, Path(meta_dir))
        except BaseException:
            disk_locks.release_all()
            if lock is not None:
                lock.release()
            executor.shutdown(wait=False)
            raise
        store = cls(
            diskset,
            index,
            executor=executor,
            min_part_size=min_part_size,
            inline_max=inline_max,
            store_lock=lock,
            disk_locks=disk_locks,
        )
        meta = await store.run_io(index.get_meta)
        if not meta or meta.get("set_id") != diskset.set_id or not meta.get("complete"):
            log.info("index missing or incomplete: rebuilding it from the disks")
            await store.rebuild_index()
        else:
            await store.reload_buckets()
            await store.recovery.replay_journal()
        return store

    async def close(self) -> None:
        """Wait for background removals, then close the index and the thread pool."""
        await self.reaper.wait_idle()
        # Pool work whose awaiter was cancelled (a stopped service's index write) may still
        # run: the pool finishes first, so the index never closes under a write (in LevelDB
        # that is a segfault, not an exception).
        self.executor.shutdown(wait=True)
        self.index.close()
        self.disk_locks.release_all()
        if self._store_lock is not None:
            self._store_lock.release()

    def run_io(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """fn(*args) on the I/O pool, as a future the loop can await."""
        if isinstance(self.executor, IOPool):
            return self.executor.call(fn, *args)
        return self._loop.run_in_executor(self.executor, fn, *args)

    def _slots_of(self, manifest: Manifest) -> list[DiskSlot]:
        return self.diskset.online_slots_of(manifest.placement)

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

    async def wait_idle(self) -> None:
        """Wait for background removals (tests and shutdown)."""
        await self.reaper.wait_idle()

    async def settle_removals(self) -> int:
        """Remove again the versions whose removal missed a disk that was offline or failed
        (the disk monitor calls this when a disk comes back); returns how many are now gone
        everywhere. Their journal entries keep them from the scrubber, so without this they
        would stay until the next start-up."""
        return await self.reaper.settle()

    async def rebuild_index(self) -> RebuildReport:
        """Restore buckets, listing and object metadata from the disks (the truth)."""
        return await self.recovery.rebuild_index()

    async def recover_headerless(self) -> RebuildReport:
        """Restore every version with shards but no manifest anywhere into lost+found."""
        return await self.recovery.recover_headerless()

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner: str = "", acl: str = "private") -> BucketInfo:
        """Create atomically: of two racing creators exactly one wins, the other gets
        BucketAlreadyExists (with .owner set to the winner's owner)."""
        return await self.buckets.create(name, owner, acl)

    async def set_bucket_acl(self, name: str, acl: str) -> BucketInfo:
        return await self.buckets.set_acl(name, acl)

    async def set_bucket_tags(self, name: str, tags: dict[str, str]) -> BucketInfo:
        return await self.buckets.set_tags(name, tags)

    async def head_bucket(self, name: str) -> BucketInfo:
        return self.buckets.head(name)

    async def list_buckets(self) -> list[BucketInfo]:
        return self.buckets.all()

    async def reload_buckets(self) -> None:
        """Refill the in-memory bucket table from the index (at open, after a rebuild)."""
        await self.buckets.reload()

    async def delete_bucket(self, name: str) -> None:
        """Refuse while objects remain; uploads in progress are aborted with the bucket. The
        record becomes a tombstone (kept), so a copy on a disk away now loses to it."""
        await self.buckets.delete(name, self.multipart.drop)

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
        tags: dict[str, str] | None = None,
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
                tags=tags or {},
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
        vhex = version_hex(vid)
        part = PartEntry(1, result.size, result.etag, len(result.block_hashes), result.merkle_root)
        if writer.in_memory:
            manifest = self.publisher.new_manifest(
                bucket, key, oid, vid, [part], result.etag, placement, inline=True, **fields
            )
            return await self.publisher.publish(
                manifest, placement, dict(result.failed), precondition, writer.inline_records()
            )
        failed = await writer.commit(lambda j: part_path(oid, vhex, 1), self._syncer)
        manifest = self.publisher.new_manifest(
            bucket, key, oid, vid, [part], result.etag, placement, **fields
        )
        return await self.publisher.publish(manifest, placement, failed, precondition)

    async def update_object_headers(
        self, bucket: str, key: str, http_headers: dict[str, str]
    ) -> ObjectInfo:
        """Replace an object's stored HTTP headers (e.g. its canned ACL) without touching its
        data: the manifest is rewritten with the next generation on its disks, then indexed."""
        return await self.publisher.rewrite(
            bucket, key, lambda m: replace(m, http_headers=dict(http_headers)), self.get_manifest
        )

    async def set_object_tags(self, bucket: str, key: str, tags: dict[str, str]) -> ObjectInfo:
        """Replace an object's tags ({} removes them) without touching its data, the same way
        as its headers: they live in the manifest, so a rebuilt index or a healed disk keeps
        them."""
        return await self.publisher.rewrite(
            bucket, key, lambda m: replace(m, tags=dict(tags)), self.get_manifest
        )

    # -- objects: read -----------------------------------------------------------------------

    async def get_manifest(self, bucket: str, key: str) -> Manifest:
        validate_key(key)
        manifest = await self.run_io(self.manifests.load, bucket, key)
        if manifest is None:
            raise self._missing(bucket, key)
        return manifest

    def _missing(self, bucket: str, key: str) -> NoSuchBucket | NoSuchKey:
        if bucket not in self.buckets:
            return NoSuchBucket(f"bucket {bucket} does not exist")
        return NoSuchKey(f"{bucket}/{key} does not exist")

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
        with self.reaper.lookup():
            return await self._open_leased(bucket, key, start, end, part_number, prepare, prefetch)

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
            manifest = await self.run_io(self.manifests.load, bucket, key)
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
        self.reaper.lease(manifest.version_id)
        return ObjectReader(
            info=ObjectInfo.from_manifest(manifest),
            manifest=manifest,
            start=start,
            end=end,
            blocks=blocks or BlockReader(manifest, self.diskset, self.codec, on_fault),
            executor=self.executor,
            release=lambda: self.reaper.unlease(manifest.version_id),
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
            manifest = await self.run_io(self.manifests.load, bucket, key)
            if manifest is None:
                if bucket not in self.buckets:
                    raise NoSuchBucket(f"bucket {bucket} does not exist")
                return False
            await self.run_io(
                self.index.put_journal,
                manifest.version_id,
                JournalEntry.of(manifest, deleting=True),
            )
            await self._delete_current(manifest)
        self.reaper.retire(manifest)
        return True

    async def _delete_current(self, manifest: Manifest) -> None:
        # The disks are the truth: drop the manifests there first, so a crash between
        # the two steps cannot bring the object back when the index is rebuilt.
        mpath = manifest_file(manifest.object_id, manifest.version_hex, manifest.inline)
        await on_disks(self.run_io, self._slots_of(manifest), lambda s: s.disk.remove(mpath))
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
        objects = [ObjectSummary(key, e.size, e.etag, e.mtime) for key, e in page.entries]
        return ListResult(objects, page.common_prefixes, page.is_truncated, page.next_marker)
