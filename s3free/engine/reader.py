"""Streams an object (or a byte range of it) back, checking every shard it touches.

For each block a range needs, the reader fetches records from the data shards first (no
decoding needed when they are all good), then from parity shards in place of any that fail a
check: missing file, I/O error, CRC32C, length, magic/version, identity (object, version, part,
block, shard index, k, m, block length) or a generation newer than the manifest's. The block is
decoded from any k good shards and its BLAKE3 compared with the content hash the headers carry;
a mismatch makes the reader prove each shard against its footer leaf and try other shards. If
no k shards give the right block, it raises DataUnavailable: wrong bytes are never returned.

Every shard found bad is reported in `faults` (and to the store's listeners) for the healer.
Blocks are read ahead in the thread pool (`READ_AHEAD` at a time) while the caller sends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import blake3

from s3free.engine.shardfile import (
    INLINE_READ,
    InlineRecords,
    InlineShardHandle,
    ShardBad,
    ShardProblem,
    ShardUnusable,
    shard_file_path,
)
from s3free.engine.types import FaultKind, ObjectInfo, ShardFault
from s3free.erasure import ReedSolomon
from s3free.errors import DataUnavailable
from s3free.format.errors import FormatError
from s3free.format.header import identity_prefix
from s3free.format.ids import bucket_hash
from s3free.format.manifest import Manifest, PartEntry, envelope_length
from s3free.format.record import RECORD_OVERHEAD, ShardRecord, checked_payload, decode_record
from s3free.obs.stage import ERASURE_DECODE, ERASURE_ENCODE, stage
from s3free.storage.batch import read_heads, read_heads_cached
from s3free.storage.disk import Disk, ReadHandle
from s3free.storage.diskset import DiskSet

READ_AHEAD = 3
# What a fault says of a record that passed its own checks but not the block's.
_LEAF_MISMATCH = "payload does not match its Merkle leaf"
_DISAGREES = "shard disagrees with the verified block"


@dataclass(frozen=True)
class Prefetched:
    """One block read ahead of the reader (with the lookup): its pieces, or why it failed."""

    part_number: int
    block_index: int
    outcome: list[bytes | memoryview] | Exception


@dataclass(frozen=True)
class BlockSlice:
    part: PartEntry
    block_index: int
    lo: int  # slice of the block to send
    hi: int


def plan_blocks(manifest: Manifest, start: int, end: int) -> list[BlockSlice]:
    """The blocks covering bytes start..end (inclusive) and the slice of each to send."""
    out: list[BlockSlice] = []
    bs = manifest.block_size
    offset = 0
    for part in manifest.parts:
        p_lo, p_hi = offset, offset + part.size - 1
        offset += part.size
        if part.size == 0:
            continue
        if p_hi < start or p_lo > end:
            continue
        lo = max(start, p_lo) - p_lo
        hi = min(end, p_hi) - p_lo
        for b in range(lo // bs, hi // bs + 1):
            b_lo = b * bs
            out.append(BlockSlice(part, b, max(lo, b_lo) - b_lo, min(hi, b_lo + bs - 1) - b_lo + 1))
    return out


class BlockReader:
    """Reads and verifies single blocks of one object version; safe to call from threads."""

    def __init__(
        self,
        manifest: Manifest,
        diskset: DiskSet,
        codec: ReedSolomon,
        on_fault: Callable[[ShardFault], None],
        path_for: Callable[[int], str] | None = None,
    ) -> None:
        self.m = manifest
        self._set = diskset
        self._codec = codec
        self._on_fault = on_fault
        self._oid = bytes.fromhex(manifest.object_id)
        self._vid = bytes.fromhex(manifest.version_hex)
        self._bhash = bucket_hash(manifest.bucket)
        self._vhex = manifest.version_hex
        self._handles: dict[tuple[int, int], ReadHandle] = {}
        # (part, shard) whose file is unusable -> whether only because its disk is offline
        self._dead: dict[tuple[int, int], bool] = {}
        # (part, shard) -> an inline file read in a batch, or the error reading it gave
        self._preloaded: dict[tuple[int, int], bytes | OSError] = {}
        self._lock = threading.Lock()
        self.full_payload = -(-manifest.block_size // manifest.k)
        # Where part N's shard file is: the version directory, or an upload's staging area.
        self._path_for = path_for or (lambda part: shard_file_path(manifest, part))

    def close(self) -> None:
        with self._lock:
            handles, self._handles = self._handles, {}
        for handle in handles.values():
            handle.close()

    def _fault(
        self, part: int, shard: int, kind: FaultKind, reason: str, block: int | None
    ) -> None:
        self._on_fault(
            ShardFault(
                bucket=self.m.bucket,
                key=self.m.key,
                version_id=self.m.version_id,
                part_number=part,
                shard_index=shard,
                disk_id=self.m.placement[shard],
                reason=reason,
                kind=kind,
                block_index=block,
                object_size=self.m.size,
            )
        )

    def _handle(self, part: int, shard: int) -> ReadHandle:
        key = (part, shard)
        with self._lock:
            handle = self._handles.get(key)
        if handle is not None:
            return handle
        slot = self._set.slot_for(self.m.placement[shard])
        if slot is None:
            raise ShardUnusable(FaultKind.NOT_IN_SET, "disk is not part of this set")
        if not slot.online:
            raise ShardUnusable(
                FaultKind.DISK_OFFLINE, f"disk offline: {slot.problem}", offline=True
            )
        if self.m.inline:
            handle = self._inline_records(slot.disk, self._path_for(part), key)
        else:
            handle = self._open(slot.disk, self._path_for(part))
        with self._lock:
            existing = self._handles.setdefault(key, handle)
        if existing is not handle:
            handle.close()
        return existing

    @staticmethod
    def _open(disk: Disk, path: str) -> ReadHandle:
        try:
            return disk.open_read(path)
        except FileNotFoundError:
            raise ShardUnusable(FaultKind.MISSING, "shard file missing") from None
        except OSError as exc:
            raise ShardUnusable(FaultKind.IO_ERROR, f"open failed: {exc}") from None

    def read_cached(self, part: PartEntry, block: int) -> list[bytes | memoryview] | None:
        """The block as `read_pieces` gives it, from memory alone and so safe to call on the
        event loop, or None: when a data shard's file is not in the page cache, or anything
        at all is wrong with one. The caller then calls `read_pieces` in a thread, which
        reads what is missing, judges and reports faults and decodes from parity as always
        (reusing the files read here). Only inline versions: their files are small and read
        whole. The checks are `checked_payload`'s: the same as `_fetch` makes, lean."""
        if not self.m.inline:
            return None
        k = self.m.k
        disks = []
        for shard in range(k):
            slot = self._set.slot_for(self.m.placement[shard])
            if slot is None or not slot.online:
                return None
            disks.append(slot.disk)
        path = self._path_for(part.number)
        outcomes = read_heads_cached([(disk, path) for disk in disks], INLINE_READ)
        block_length = min(self.m.block_size, part.size - block * self.m.block_size)
        offset = block * (RECORD_OVERHEAD + self.full_payload)
        size = RECORD_OVERHEAD + -(-block_length // k)
        pieces: list[bytes | memoryview] = []
        content: bytes | None = None
        left = block_length  # padding may fill the last shards wholly when the block is tiny
        for shard, data in enumerate(outcomes):
            if not isinstance(data, bytes) or len(data) >= INLINE_READ:
                break
            try:
                start = envelope_length(data) + offset
            except FormatError:
                break
            checked = checked_payload(
                memoryview(data)[start : start + size],
                self._identity(part.number, block, shard, block_length),
                self.m.generation,
            )
            if checked is None or (content is not None and checked[1] != content):
                break
            payload, content = checked
            if left > 0:
                pieces.append(payload[:left])
                left -= len(pieces[-1])
        else:
            hasher = blake3.blake3()
            for piece in pieces:
                hasher.update(piece)
            if hasher.digest() == content:
                return pieces
        with self._lock:  # for read_pieces, which judges them
            for shard, outcome in enumerate(outcomes):
                if not isinstance(outcome, BlockingIOError):
                    self._preloaded.setdefault((part.number, shard), outcome)
        return None

    def _identity(self, part: int, block: int, shard: int, block_length: int) -> bytes:
        return identity_prefix(
            k=self.m.k,
            m=self.m.m,
            shard_index=shard,
            object_id=self._oid,
            bucket_hash=self._bhash,
            version_id=self._vid,
            part_number=part,
            block_index=block,
            block_length=block_length,
        )

    def _preload_inline(self, part: int, shards: list[int]) -> None:
        """Read these shards' inline files in one batch (one GIL release for them all, see
        storage/batch.py) for `_inline_records` to find: a small GET reads k files."""
        items = []
        with self._lock:
            for shard in shards:
                key = (part, shard)
                if key in self._handles or key in self._dead or key in self._preloaded:
                    continue
                slot = self._set.slot_for(self.m.placement[shard])
                if slot is not None and slot.online:  # else _handle says why it is unusable
                    items.append((key, slot.disk))
        if len(items) < 2:
            return
        path = self._path_for(part)
        outcomes = read_heads([(disk, path) for _, disk in items], INLINE_READ)
        with self._lock:
            for (key, _), outcome in zip(items, outcomes, strict=True):
                self._preloaded[key] = outcome

    def _inline_records(self, disk: Disk, path: str, key: tuple[int, int]) -> ReadHandle:
        """An inline version's file: read whole when it is small (the usual case), else
        opened and read on demand."""
        with self._lock:
            data = self._preloaded.pop(key, None)
        try:
            if data is None:
                data = disk.read_head(path, INLINE_READ)
            elif isinstance(data, OSError):
                raise data
        except FileNotFoundError:
            raise ShardUnusable(FaultKind.MISSING, "shard file missing") from None
        except OSError as exc:
            raise ShardUnusable(FaultKind.IO_ERROR, f"read failed: {exc}") from None
        if len(data) < INLINE_READ:
            try:
                return InlineRecords(data)
            except FormatError as exc:
                raise ShardUnusable(
                    FaultKind.CORRUPT, f"inline manifest unreadable: {exc}"
                ) from None
        handle = self._open(disk, path)
        try:
            return InlineShardHandle(handle)
        except (OSError, FormatError) as exc:
            handle.close()
            raise ShardUnusable(FaultKind.CORRUPT, f"inline manifest unreadable: {exc}") from None

    def _fetch(self, part: PartEntry, block: int, shard: int) -> ShardRecord:
        """One checked record, or ShardBad/ShardUnusable saying why not."""
        if (part.number, shard) in self._dead:
            raise ShardUnusable(
                FaultKind.UNUSABLE, "shard file unusable", offline=self._dead[(part.number, shard)]
            )
        try:
            handle = self._handle(part.number, shard)
        except ShardUnusable as exc:
            self._dead[(part.number, shard)] = exc.offline
            raise
        block_length = min(self.m.block_size, part.size - block * self.m.block_size)
        payload = -(-block_length // self.m.k)
        offset = block * (RECORD_OVERHEAD + self.full_payload)
        try:
            data = handle.read_at(offset, RECORD_OVERHEAD + payload)
        except OSError as exc:
            raise ShardBad(FaultKind.IO_ERROR, f"read failed: {exc}") from None
        try:
            record = decode_record(data)
        except FormatError as exc:
            raise ShardBad(FaultKind.CORRUPT, str(exc)) from None
        h = record.header
        expected = (
            self._oid,
            self._bhash,
            self._vid,
            part.number,
            block,
            shard,
            self.m.k,
            self.m.m,
            block_length,
        )
        actual = (
            h.object_id,
            h.bucket_hash,
            h.version_id,
            h.part_number,
            h.block_index,
            h.shard_index,
            h.k,
            h.m,
            h.block_length,
        )
        if actual != expected:
            raise ShardBad(
                FaultKind.MISPLACED,
                "header identity does not match the manifest (misplaced shard)",
            )
        if h.generation > self.m.generation:
            raise ShardBad(
                FaultKind.NEWER_GENERATION, "shard generation is newer than the manifest"
            )
        return record

    def read_block(self, part: PartEntry, block: int) -> bytes:
        """The verified block as one bytes object."""
        pieces = self.read_pieces(part, block)
        if len(pieces) == 1 and isinstance(pieces[0], bytes):
            return pieces[0]
        return b"".join(pieces)

    def read_pieces(self, part: PartEntry, block: int) -> list[bytes | memoryview]:
        """The verified block as a list of buffers that concatenate to it: views of the data
        shards' payloads when no decoding was needed (no copy, no GIL held for a join), else
        the one decoded block."""
        n = self.m.k + self.m.m
        k = self.m.k
        good: dict[int, ShardRecord] = {}
        offline: list[int] = []  # shards unread only because their disk is offline
        remaining = list(range(n))  # data shards first: no decode needed when they are good
        if self.m.inline:
            self._preload_inline(part.number, remaining[:k])
        while len(good) < k and remaining:
            shard = remaining.pop(0)
            try:
                good[shard] = self._fetch(part, block, shard)
            except ShardUnusable as exc:
                self._fault(part.number, shard, exc.kind, str(exc), None)
                if exc.offline:
                    offline.append(shard)
            except ShardBad as exc:
                self._fault(part.number, shard, exc.kind, str(exc), block)
        if len(good) < k:
            raise self._unavailable(part, block, len(good), offline)
        data = self._decode_checked(good)
        if data is not None:
            return data
        # A block hash mismatch with every CRC good: prove each shard by its footer leaf.
        for shard, record in list(good.items()):
            if not record.leaf_ok():
                del good[shard]
                self._fault(part.number, shard, FaultKind.CORRUPT, _LEAF_MISMATCH, block)
        while remaining:
            shard = remaining.pop(0)
            try:
                record = self._fetch(part, block, shard)
            except ShardProblem as exc:
                self._fault(part.number, shard, exc.kind, str(exc), block)
                if isinstance(exc, ShardUnusable) and exc.offline:
                    offline.append(shard)
                continue
            if record.leaf_ok():
                good[shard] = record
            else:
                self._fault(part.number, shard, FaultKind.CORRUPT, _LEAF_MISMATCH, block)
        for combo in itertools.combinations(sorted(good), k):
            data = self._decode_checked({s: good[s] for s in combo})
            if data is not None:
                joined = data[0] if len(data) == 1 else b"".join(data)
                self._report_disagreeing(part, block, good, joined)
                return [joined]
        raise self._unavailable(part, block, 0, offline)

    def _report_disagreeing(
        self, part: PartEntry, block: int, good: dict[int, ShardRecord], data: bytes | memoryview
    ) -> None:
        """Records that passed their own checks (CRC, leaf) but disagree with the block just
        proven by its hash went wrong before their checksums were made: bad all the same."""
        with stage(ERASURE_ENCODE):
            expected = self._codec.encode(data)
        digest = blake3.blake3(data).digest()
        for shard, record in good.items():
            if record.payload != expected[shard] or record.header.content_hash != digest:
                self._fault(part.number, shard, FaultKind.DISAGREES, _DISAGREES, block)

    def _decode_checked(self, records: dict[int, ShardRecord]) -> list[bytes | memoryview] | None:
        any_record = next(iter(records.values()))
        chosen = dict(sorted(records.items())[: self.m.k])
        hashes = {r.header.content_hash for r in chosen.values()}
        if len(hashes) != 1:
            return None
        length = any_record.header.block_length
        if list(chosen) == list(range(self.m.k)):
            # All data shards: the block is their payloads in order, less the padding.
            pieces: list[bytes | memoryview] = []
            left = length  # padding may fill the last shards wholly when the block is tiny
            for record in chosen.values():
                if left <= 0:
                    break
                pieces.append(record.payload[:left])
                left -= len(pieces[-1])
            hasher = blake3.blake3()
            for piece in pieces:
                hasher.update(piece)
            return pieces if hasher.digest() in hashes else None
        with stage(ERASURE_DECODE):
            data = self._codec.decode({s: r.payload for s, r in chosen.items()}, length)
        return [data] if blake3.blake3(data).digest() in hashes else None

    def _unavailable(
        self, part: PartEntry, block: int, good: int, offline: list[int]
    ) -> DataUnavailable:
        """The error for a block that cannot be read, saying why in typed fields: whether
        disks coming back could help (offline shards) or the data is lost."""
        away = tuple(sorted(set(offline)))
        message = (
            f"{self.m.bucket}/{self.m.key} (version {self.m.version_id}): part {part.number} "
            f"block {block} has only {good} good shards of the {self.m.k} needed"
        )
        if away:
            where = ", ".join(self._position(shard) for shard in away)
            message += f"; {len(away)} more are on offline disks ({where})"
        if away and good + len(away) >= self.m.k:
            message += ": readable again when those disks come back"
        else:
            bad = self.m.k + self.m.m - good - len(away)
            message += f"; {bad} are missing or corrupt: the data is lost unless restored"
        return DataUnavailable(
            message + "; refusing to return wrong bytes",
            bucket=self.m.bucket,
            key=self.m.key,
            version_id=self.m.version_id,
            part_number=part.number,
            block_index=block,
            good=good,
            needed=self.m.k,
            offline_shards=away,
        )

    def _position(self, shard: int) -> str:
        slot = self._set.slot_for(self.m.placement[shard])
        return f"disk {slot.position}" if slot is not None else f"disk id {self.m.placement[shard]}"


def _slices(item: BlockSlice, pieces: list[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """The parts of a block's pieces that fall in item.lo..item.hi (no copies)."""
    offset = 0
    for piece in pieces:
        lo, hi = max(item.lo - offset, 0), min(item.hi - offset, len(piece))
        offset += len(piece)
        if lo < hi:
            yield piece if lo == 0 and hi == len(piece) else piece[lo:hi]


class ObjectReader:
    """An object's bytes start..end (inclusive) as an async iterator of chunks.

    Holds a lease on the version so an overwrite or delete does not remove the files while it
    reads; the lease ends when the iteration ends or `aclose` is called."""

    def __init__(
        self,
        *,
        info: ObjectInfo,
        manifest: Manifest,
        start: int,
        end: int,
        blocks: BlockReader,
        executor: concurrent.futures.Executor,
        release: Callable[[], None],
        faults: list[ShardFault],
        prefetched: Prefetched | None = None,
    ) -> None:
        self.info = info
        self.manifest = manifest
        self.start = start
        self.end = end
        self.faults = faults  # filled by the block reader as it finds bad shards
        self._blocks = blocks
        self._executor = executor
        self._release = release
        self._closed = False
        self._iterating = False
        self._outstanding: list[concurrent.futures.Future] = []
        self._prefetched = prefetched

    @property
    def content_length(self) -> int:
        return max(0, self.end - self.start + 1)

    def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        if self._iterating or self._closed:
            raise RuntimeError("an ObjectReader can be iterated once")
        self._iterating = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes | memoryview]:
        plan = plan_blocks(self.manifest, self.start, self.end) if self.content_length else []
        ahead, self._prefetched = self._prefetched, None
        if ahead is not None and [(b.part.number, b.block_index) for b in plan] == [
            (ahead.part_number, ahead.block_index)
        ]:
            try:
                if isinstance(ahead.outcome, Exception):
                    raise ahead.outcome
                for piece in _slices(plan[0], ahead.outcome):
                    yield piece
            finally:
                await self.aclose()
            return
        queue: list[concurrent.futures.Future] = []
        try:
            position = 0
            while position < len(plan) or queue:
                while position < len(plan) and len(queue) < READ_AHEAD:
                    item = plan[position]
                    position += 1
                    queue.append(
                        self._executor.submit(self._blocks.read_pieces, item.part, item.block_index)
                    )
                item = plan[position - len(queue)]
                pieces = await asyncio.wrap_future(queue[0])
                queue.pop(0)
                for piece in _slices(item, pieces):
                    yield piece
        finally:
            for fut in queue:
                fut.cancel()
            self._outstanding = queue
            await self.aclose()

    async def aclose(self) -> None:
        """End the read: wait for blocks still being read (they use the open files), close the
        files, and give up the lease."""
        if self._closed:
            return
        self._closed = True
        outstanding = [f for f in self._outstanding if not f.done()]

        def finish() -> None:
            concurrent.futures.wait(outstanding)
            self._blocks.close()

        try:
            if outstanding:
                await asyncio.get_running_loop().run_in_executor(self._executor, finish)
            else:
                # Nothing reads the files any more, and closing a regular file does not
                # block: spare a thread hop (it is a large share of a small GET).
                self._blocks.close()
        finally:
            self._release()

    async def read_all(self) -> bytes:
        """The whole range in memory: for tests and small objects only."""
        return b"".join([chunk async for chunk in self])
