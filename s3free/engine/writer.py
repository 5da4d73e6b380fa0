"""Streams one part's bytes into k+m shard files, in bounded memory.

The event loop cuts the incoming stream into blocks; two chains of work run in the thread pool
while it reads the next block: MD5 (the ETag; it must see blocks in order) and BLAKE3 + encode
+ append one record to each shard's temp file. At most three blocks are alive at once (one
being read, one in each chain), so memory stays near 3 x block_size x (1 + m/k) whatever the
object size.

A shard whose disk fails (EIO, ENOSPC, ...) is dropped and reported; the part survives as long
as the write quorum of shards is still standing. A disk the monitor marked full gets no shard;
when full disks are what keeps a write below its quorum, the error is StorageFull (S3: 507,
not retried) naming what is free and what the write needs, not the retryable quorum error.
Nothing becomes visible here: `commit` only moves the fsynced files to their final names; the
manifest and index make the object visible.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field

import blake3

from s3free.engine.fanout import disk_failures, gather_disk_failures
from s3free.engine.groupsync import Syncer
from s3free.engine.types import FaultKind, WriteMiss
from s3free.erasure import ReedSolomon
from s3free.errors import BadDigest, IncompleteBody, InsufficientWriteQuorum, StorageFull
from s3free.format.footer import ShardFooter
from s3free.format.header import CODEC_ZFEC_RS, ShardHeader
from s3free.format.merkle import merkle_root
from s3free.format.record import leaf_hash
from s3free.obs.ratelimit import LogLimiter
from s3free.obs.stage import ERASURE_ENCODE, stage
from s3free.storage.diskset import DiskSlot
from s3free.storage.monitored import FULL_ERRNOS

log = logging.getLogger(__name__)

# While a disk is away every write fails its shard there: the first failure per disk is
# logged, then at most one line a minute per disk with the count since (the metric
# s3free_degraded_writes_total counts every degraded write).
SHARD_FAILURE_LOG_EVERY_S = 60.0
_shard_failures = LogLimiter(SHARD_FAILURE_LOG_EVERY_S)

# Blocks whose MD5 or encode+append may still be running while the stream is read further.
PIPELINE_DEPTH = 3
# An in-memory (inline) block up to this size is hashed and encoded on the event loop itself.
HASH_ON_LOOP_MAX = 32 * 1024


class _Lane:
    """Runs the calls submitted to it one at a time, in submission order, on a shared pool,
    without holding a pool thread while waiting: each call is queued when the previous one
    has finished."""

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        self._executor = executor
        self._tail: concurrent.futures.Future | None = None

    def submit(self, fn, *args) -> concurrent.futures.Future:
        out: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            if not out.set_running_or_notify_cancel():
                return
            try:
                out.set_result(fn(*args))
            except BaseException as exc:
                out.set_exception(exc)

        prev, self._tail = self._tail, out
        if prev is None:
            self._executor.submit(run)
        else:
            prev.add_done_callback(lambda _f: self._executor.submit(run))
        return out


def is_full(slot: DiskSlot, exc: BaseException | None = None) -> bool:
    """Whether a shard failed for want of space: the monitor marked the disk full, or the
    error itself is ENOSPC/EDQUOT (a store without a monitor)."""
    return (slot.online and bool(slot.full)) or (
        isinstance(exc, OSError) and exc.errno in FULL_ERRNOS
    )


def human_size(n: int) -> str:
    """n bytes for people (error messages, logs): "612.0 KiB"."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _free(slot: DiskSlot) -> str:
    try:
        used, total = slot.disk.usage()
    except OSError:
        return "free space unknown"
    return f"{human_size(max(0, total - used))} free of {human_size(total)}"


def quorum_error(
    what: str,
    placement: list[DiskSlot],
    failed: dict[int, str],
    full: set[int],
    quorum: int,
    needed_per_disk: int | None = None,
) -> InsufficientWriteQuorum:
    """The error for a write that reached too few disks. StorageFull when the full disks
    alone stand between it and its quorum (freeing space is what helps: retrying does not),
    naming each full disk's free space and, when known, what the write needed on each; the
    retryable InsufficientWriteQuorum otherwise (an offline disk may come back)."""
    alive = len(placement) - len(failed)
    head = f"only {alive} of {len(placement)} {what} could be written; {quorum} are needed"
    if full and alive + len(full) >= quorum:
        free = "; ".join(
            f"disk {placement[j].position}: {_free(placement[j])}" for j in sorted(full)
        )
        need = (
            f"; this write needs about {human_size(needed_per_disk)} on each of {quorum} disks"
            if needed_per_disk is not None
            else ""
        )
        return StorageFull(
            f"storage full: {head}. {len(full)} disk(s) have no room for new data ({free})"
            f"{need}. Delete objects or add capacity; reads and deletes still work"
        )
    return InsufficientWriteQuorum(f"{head} ({'; '.join(sorted(set(failed.values())))})")


@dataclass(frozen=True)
class ShardIdentity:
    """What every header of this part repeats."""

    object_id: bytes
    bucket_hash: bytes
    version_id: bytes
    part_number: int
    generation: int = 1


@dataclass
class PartResult:
    size: int
    md5: bytes
    block_hashes: list[bytes]
    failed: dict[int, str] = field(default_factory=dict)  # shard index -> why

    @property
    def etag(self) -> str:
        return self.md5.hex()

    @property
    def merkle_root(self) -> str:
        return merkle_root(self.block_hashes).hex()


class _MemoryShard:
    """Where an inline part's records for one shard gather until they go into its manifest
    file; used only for parts small enough to be held (at most one block)."""

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []

    def write(self, data: bytes | memoryview) -> None:
        self.chunks.append(data)

    def writev(self, chunks: list[bytes | memoryview]) -> None:
        self.chunks.extend(chunks)

    def discard(self) -> None:
        self.chunks = []


class PartWriter:
    def __init__(
        self,
        *,
        placement: list[DiskSlot],
        codec: ReedSolomon,
        identity: ShardIdentity,
        block_size: int,
        write_quorum: int,
        executor: concurrent.futures.Executor,
        in_memory: bool = False,
    ) -> None:
        self._placement = placement
        self._codec = codec
        self._id = identity
        self._block_size = block_size
        self._quorum = write_quorum
        self._executor = executor
        self._temps: list = [None] * len(placement)
        self._failed: dict[int, str] = {}
        self._full: set[int] = set()  # failed shards whose disk is full
        self._expected: int | None = None  # the announced size, for the "needed" figure
        self._md5 = hashlib.md5()
        self._hashes: list[bytes] = []
        self._pending: list[concurrent.futures.Future] = []
        self._md5_lane = _Lane(executor)
        self._encode_lane = _Lane(executor)
        self._in_memory = in_memory

    # -- writing ----------------------------------------------------------------------------

    async def write(
        self,
        stream: AsyncIterable[bytes],
        *,
        expected_size: int | None = None,
        expected_md5: bytes | None = None,
    ) -> PartResult:
        """Consume the stream into temp shard files. On any error (including one raised by the
        stream itself, or cancellation) every temp file is removed and the error re-raised."""
        self._expected = expected_size
        try:
            if self._in_memory:
                self._open_temps()
            else:
                await self._run(self._open_temps)
            size = 0
            index = 0
            pieces: list[memoryview] = []
            filled = 0
            async for chunk in stream:
                if not chunk:
                    continue
                size += len(chunk)
                if expected_size is not None and size > expected_size:
                    raise IncompleteBody(f"body is longer than the announced {expected_size} bytes")
                view = memoryview(chunk)
                while view:
                    take = view[: self._block_size - filled]
                    pieces.append(take)
                    filled += len(take)
                    view = view[len(take) :]
                    if filled == self._block_size:
                        await self._submit(b"".join(pieces), index)
                        index += 1
                        pieces, filled = [], 0
            if filled or index == 0:
                await self._submit(b"".join(pieces), index)
            await self._drain()
            if expected_size is not None and size != expected_size:
                raise IncompleteBody(
                    f"body ended after {size} bytes; {expected_size} were announced"
                )
            digest = self._md5.digest()
            if expected_md5 is not None and digest != expected_md5:
                raise BadDigest("the body's MD5 does not match Content-MD5")
            self._check_quorum()
            return PartResult(size, digest, self._hashes, dict(self._failed))
        except BaseException as exc:
            discarded = self.abandon()
            if not isinstance(exc, asyncio.CancelledError):
                # the caller hears of the failure only once the temp files are gone
                await asyncio.wrap_future(discarded)
            raise

    @property
    def in_memory(self) -> bool:
        return self._in_memory

    def inline_records(self) -> dict[int, list[bytes | memoryview]]:
        """For an in-memory writer, after write(): each surviving shard's records."""
        assert self._in_memory
        return {j: t.chunks for j, t in enumerate(self._temps) if t is not None}

    async def commit(
        self, rel_for_shard: Callable[[int], str], syncer: Syncer | None = None
    ) -> dict[int, str]:
        """Rename every surviving temp file to its final name, in parallel, durably: each
        fsynced on its own, or (with a syncer) all made durable by one group commit per disk.

        Returns the shards that failed (index -> why). Raises InsufficientWriteQuorum (after
        removing what it committed) when fewer than the quorum made it."""
        loop = asyncio.get_running_loop()
        grouped = syncer is not None

        def commit_one(j: int) -> None:
            temp, self._temps[j] = self._temps[j], None
            try:
                temp.commit(rel_for_shard(j), sync=not grouped)
            except BaseException:
                temp.discard()
                raise

        live = [j for j, t in enumerate(self._temps) if t is not None]
        not_committed = await gather_disk_failures(
            live, (loop.run_in_executor(self._executor, commit_one, j) for j in live)
        )
        for j, error in not_committed.items():
            self._fail(j, f"commit: {error}", error)
        renamed = [j for j in live if j not in self._failed]

        async def remove(shards: list[int]) -> None:
            await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self._executor, self._placement[j].disk.remove, rel_for_shard(j)
                    )
                    for j in shards
                ),
                return_exceptions=True,
            )

        if syncer is not None:
            errors = await syncer.sync([self._placement[j] for j in renamed])
            unsynced = disk_failures(renamed, errors)
            for j, error in unsynced.items():
                self._fail(j, f"sync: {error}", error)
            # A file its disk could not make durable is not kept: it would pass for a shard.
            await remove(list(unsynced))
        try:
            self._check_quorum()
        except InsufficientWriteQuorum:
            await remove([j for j in renamed if j not in self._failed])
            raise
        return dict(self._failed)

    # -- internals --------------------------------------------------------------------------

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _open_temps(self) -> None:
        for j, slot in enumerate(self._placement):
            if not slot.online:
                self._fail(
                    j, WriteMiss(FaultKind.NOT_WRITTEN_OFFLINE, f"disk offline: {slot.problem}")
                )
                continue
            if slot.full:
                self._fail(j, WriteMiss(FaultKind.NOT_WRITTEN_FULL, f"disk full: {slot.full}"))
                continue
            if self._in_memory:
                self._temps[j] = _MemoryShard()
                continue
            try:
                self._temps[j] = slot.disk.create_temp()
            except OSError as exc:
                self._fail(j, f"create temp: {exc}", exc)
        self._check_quorum()

    async def _submit(self, block: bytes, index: int) -> None:
        # Up to PIPELINE_DEPTH blocks in flight; MD5 and encode+append each keep block order
        # in their own lane, so neither waits for the other.
        if self._in_memory and len(block) <= HASH_ON_LOOP_MAX:
            # Tens of microseconds of hashing: cheaper here than two hops through the pool.
            self._md5.update(block)
            self._encode_and_append(block, index)
            return
        while len(self._pending) >= 2 * PIPELINE_DEPTH:
            await asyncio.wrap_future(self._pending[0])
            self._pending.pop(0)
            self._check_quorum()
        self._pending.append(self._md5_lane.submit(self._md5.update, block))
        self._pending.append(self._encode_lane.submit(self._encode_and_append, block, index))

    async def _drain(self) -> None:
        # Cleared only once all are done: a cancelled drain leaves them for the discard step,
        # which must wait for them before it closes the files they write to.
        for fut in self._pending:
            await asyncio.wrap_future(fut)
        self._pending = []
        self._check_quorum()

    def _encode_and_append(self, block: bytes, index: int) -> None:
        content_hash = blake3.blake3(block).digest()
        self._hashes.append(content_hash)
        with stage(ERASURE_ENCODE):
            shards = self._codec.encode(block)
        for j, payload in enumerate(shards):
            temp = self._temps[j]
            if temp is None:
                continue
            header = ShardHeader(
                codec_id=CODEC_ZFEC_RS,
                k=self._codec.k,
                m=self._codec.m,
                shard_index=j,
                object_id=self._id.object_id,
                bucket_hash=self._id.bucket_hash,
                version_id=self._id.version_id,
                part_number=self._id.part_number,
                block_index=index,
                block_length=len(block),
                payload_length=len(payload),
                generation=self._id.generation,
                content_hash=content_hash,
            ).encode()
            footer = ShardFooter(len(payload), index, self._id.generation, leaf_hash(payload))
            sealed = ShardFooter.seal(footer.encode_fields(), header, payload)
            try:
                temp.writev([header, payload, sealed])
            except OSError as exc:
                self._temps[j] = None
                temp.discard()
                self._fail(j, f"write: {exc}", exc)

    def _fail(self, j: int, why: str, exc: BaseException | None = None) -> None:
        if j not in self._failed:
            slot = self._placement[j]
            self._failed[j] = why
            if is_full(slot, exc):
                self._full.add(j)
            skipped = _shard_failures.admit(slot.disk.root)
            if skipped is None:
                return
            since = (
                f" ({skipped} more shard writes failed on this disk since the last line)"
                if skipped
                else ""
            )
            log.warning("shard %d on disk %s failed: %s%s", j, slot.disk.root, why, since)

    def _check_quorum(self) -> None:
        alive = len(self._placement) - len(self._failed)
        if alive < self._quorum:
            per_disk = None
            if self._expected is not None:
                per_disk = -(-self._expected // self._codec.k)
            raise quorum_error(
                "shards", self._placement, self._failed, self._full, self._quorum, per_disk
            )

    def abandon(self) -> concurrent.futures.Future:
        """Remove every temp file once the blocks still in flight have finished with them.
        Runs in the pool (not awaited) so it also happens when the caller was cancelled."""
        pending, self._pending = self._pending, []

        def discard() -> None:
            concurrent.futures.wait(pending)
            for j, temp in enumerate(self._temps):
                if temp is not None:
                    self._temps[j] = None
                    try:
                        temp.discard()
                    except OSError as exc:
                        log.warning("could not remove temp shard %d: %s", j, exc)

        return self._executor.submit(discard)
