"""Repairing one object version: rebuild bad shard files from any k good ones, then publish.

Order (and why a reader holding the old manifest, generation g, never gets wrong bytes):

1. Each bad shard file of a part is rebuilt block by block: the block is read and verified
   through the engine's BlockReader (k good shards, BLAKE3 against the content hash), encoded,
   and the record for each target shard index is appended to a temp file on the target disk,
   with generation G = (highest generation seen in any record or manifest copy) + 1. One block
   (and its shards) is in memory at a time. Before anything is committed, the Merkle root of
   the block hashes must equal the manifest's part root.
2. Commit, per shard file: the bad file is moved to the disk's quarantine (never deleted),
   then the temp file is fsynced, renamed into place and its directory fsynced (spec 11.1).
   A reader with manifest g that opens the file now sees records of generation G > g and
   rejects them (spec 12) exactly as it rejected the bad file before: it decodes from other
   shards. A reader that already had the bad file open keeps its old inode and keeps rejecting
   it. So no reader's outcome changes during the repair.
3. Under the key's lock (the one PUT and DELETE take at their switch): if the index still
   points at this version, the manifest (the index's current one, so a concurrent header
   update is kept) is written with generation max(current + 1, G) to every online placement
   disk that now holds a good shard of every part (temp, fsync, rename, fsync dir), then the
   index is switched to it. Readers opening the object from then on accept the new shards.
   If the version was overwritten or deleted meanwhile, no manifest is written (a delete has
   removed the old ones; writing one would resurrect the object at the next index rebuild);
   the shard files just written are removed, and anything a crash leaves behind is an orphan
   (a version directory no manifest in the index references) for the scrubber.
A crash between 2 and 3 leaves shards newer than every manifest: readers reject them, the next
verify reports them, and the next repair rebuilds them with a still higher generation.

Only shard files that are *missing* (a wiped or replaced disk, a deleted file) and lost or stale
manifest copies: nothing on disk disagrees with the manifest, so no new generation is needed.
The missing files are rebuilt with the manifest's own generation (their records are exactly the
ones the write made: encoding is deterministic), committed the same way, and only the manifest
copies that are missing, corrupt or stale are written, with the index's current manifest,
unchanged; the index is not touched. Healing a
wiped disk so costs two durable files per object on that disk, not one on every disk.

Nothing is written for a version with fewer than k good shards in some block (unrepairable).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING

import blake3

from s3free.engine.fanout import gather_disk_failures
from s3free.engine.reader import BlockReader
from s3free.engine.store import rewrite_manifest_copy
from s3free.erasure import ReedSolomon
from s3free.format.header import CODEC_ZFEC_RS, ShardHeader
from s3free.format.manifest import Manifest, PartEntry
from s3free.format.merkle import merkle_root
from s3free.format.record import encode_record
from s3free.heal.files import manifest_file_path, quarantine, shard_file_path
from s3free.heal.model import ObjectHealth, ShardState
from s3free.heal.verify import SLICE_BYTES
from s3free.storage.disk import TempFile
from s3free.storage.diskset import DiskSet, DiskSlot

if TYPE_CHECKING:
    from s3free.engine.store import ObjectStore

log = logging.getLogger(__name__)

# Shard files rebuilt (those offline are left for their disk's return or heal).
REBUILD_STATES = (ShardState.MISSING, ShardState.CORRUPT, ShardState.MISPLACED, ShardState.STALE)
# Shard files that disagree with the manifest: their rebuild takes a new generation.
DISAGREEING_STATES = (ShardState.CORRUPT, ShardState.MISPLACED, ShardState.STALE)
# Manifest copies a repair writes again.
LOST_COPY_STATES = (ShardState.MISSING, ShardState.CORRUPT, ShardState.STALE)


class RepairAborted(Exception):
    """A part could not be rebuilt consistently (its data changed or failed mid-way)."""


class RepairStatus(StrEnum):
    """How a repair (or the check before it) ended; the metric's and status's outcome label."""

    CLEAN = "clean"  # nothing needed repair
    REPAIRED = "repaired"
    PARTIAL = "partial"  # some shards or copies could not be written (tried again later)
    UNREPAIRABLE = "unrepairable"  # fewer than k good shards somewhere: left untouched
    SUPERSEDED = "superseded"  # the version was replaced or deleted meanwhile
    WAITING = "waiting"  # what is bad is on offline disks: waits for them

    @property
    def rewrote(self) -> bool:
        """Whether the repair wrote shards or manifest copies (the version changed on disk)."""
        return self in (RepairStatus.REPAIRED, RepairStatus.PARTIAL)


@dataclass
class RepairOutcome:
    status: RepairStatus
    shards_rebuilt: int = 0
    manifests_written: int = 0
    generation: int = 0
    failures: list[str] = field(default_factory=list)
    message: str = ""


def _superseded() -> RepairOutcome:
    return RepairOutcome(
        RepairStatus.SUPERSEDED, message="the version was replaced or deleted during the repair"
    )


class PartRebuilder:
    """Rebuilds some shard indices of one part into temp files; blocking, for the pool."""

    def __init__(
        self,
        manifest: Manifest,
        diskset: DiskSet,
        codec: ReedSolomon,
        part: PartEntry,
        targets: dict[int, DiskSlot],
        generation: int,
    ) -> None:
        self.m = manifest
        self.part = part
        self.targets = dict(targets)
        self.generation = generation
        self.failures: dict[int, str] = {}
        self._codec = codec
        self._reader = BlockReader(
            manifest, diskset, codec, lambda fault: None, lambda n: shard_file_path(manifest, n)
        )
        self._temps: dict[int, TempFile] = {}
        self._hashes: list[bytes] = []
        self._oid = bytes.fromhex(manifest.object_id)
        self._vid = bytes.fromhex(manifest.version_hex)
        from s3free.format.ids import bucket_hash

        self._bhash = bucket_hash(manifest.bucket)

    def open(self) -> None:
        # An inline version's shard file is its one file: the manifest envelope comes first
        # (this generation's; _publish then writes the new one over it, keeping the records).
        head = self.m.encode() if self.m.inline else b""
        for j, slot in self.targets.items():
            try:
                self._temps[j] = slot.disk.create_temp()
                if head:
                    self._temps[j].write(head)
            except OSError as exc:
                self.failures[j] = f"create temp: {exc}"
                temp = self._temps.pop(j, None)
                if temp is not None:
                    temp.discard()

    def write_slice(self, first: int, count: int) -> int:
        """Rebuild blocks first..first+count-1 into the temp files; returns bytes read."""
        done = 0
        for b in range(first, min(first + count, self.part.blocks)):
            block = self._reader.read_block(self.part, b)  # DataUnavailable if < k good
            digest = blake3.blake3(block).digest()
            self._hashes.append(digest)
            shards = self._codec.encode(block)
            for j, temp in list(self._temps.items()):
                header = ShardHeader(
                    codec_id=CODEC_ZFEC_RS,
                    k=self.m.k,
                    m=self.m.m,
                    shard_index=j,
                    object_id=self._oid,
                    bucket_hash=self._bhash,
                    version_id=self._vid,
                    part_number=self.part.number,
                    block_index=b,
                    block_length=len(block),
                    payload_length=len(shards[j]),
                    generation=self.generation,
                    content_hash=digest,
                )
                try:
                    temp.write(encode_record(header, shards[j]))
                except OSError as exc:
                    self.failures[j] = f"write: {exc}"
                    del self._temps[j]
                    temp.discard()
            done += len(block)
        return done

    def finish(self) -> list[int]:
        """Check the part's Merkle root, then quarantine each bad file and commit its
        replacement durably. Returns the shard indices now in place."""
        self._reader.close()
        if len(self._hashes) != self.part.blocks:
            raise RepairAborted(f"part {self.part.number}: not every block was rebuilt")
        root = merkle_root(self._hashes).hex()
        if root != self.part.merkle_root:
            raise RepairAborted(
                f"part {self.part.number}: rebuilt blocks give Merkle root {root}, the manifest "
                f"says {self.part.merkle_root}; nothing committed"
            )
        rel = shard_file_path(self.m, self.part.number)
        committed = []
        for j, temp in list(self._temps.items()):
            disk = self.targets[j].disk
            del self._temps[j]
            try:
                quarantine(disk, rel, self.m, self.part.number)
                temp.commit(rel, sync=True)
                committed.append(j)
            except OSError as exc:
                temp.discard()
                self.failures[j] = f"commit: {exc}"
        return committed

    def discard(self) -> None:
        self._reader.close()
        for temp in self._temps.values():
            try:
                temp.discard()
            except OSError as exc:
                log.warning("could not remove a repair temp file: %s", exc)
        self._temps = {}


async def repair_version(
    store: ObjectStore,
    manifest: Manifest,
    health: ObjectHealth,
    max_generation: int,
    pace: Callable[[int, int], Awaitable[None]] | None = None,
) -> RepairOutcome:
    """Repair what `health` (a verify of `manifest`) found; see the module docstring."""
    if not health.needs_repair:
        return RepairOutcome(RepairStatus.CLEAN, generation=manifest.generation)
    if not health.repairable:
        why = "; ".join(health.errors) or f"fewer than {health.k} good shards in a block"
        return RepairOutcome(RepairStatus.UNREPAIRABLE, message=f"data left untouched: {why}")
    diskset = store.diskset
    # A new generation only when something on disk disagrees with the manifest (a corrupt or
    # misplaced shard, or records newer than it): missing files come back as they were.
    bump = max_generation > manifest.generation or any(
        s.state in DISAGREEING_STATES for s in health.shards
    )
    generation = max(max_generation, manifest.generation) + 1 if bump else manifest.generation
    good = {(s.part, s.shard) for s in health.shards if s.state == ShardState.OK}
    rebuilt: list[tuple[int, int]] = []
    failures: list[str] = []
    per_slice = max(1, SLICE_BYTES // manifest.block_size)
    for part in manifest.parts:
        targets = {}
        for s in health.shards:
            if s.part == part.number and s.state in REBUILD_STATES:
                slot = diskset.slot_for(s.disk_id)
                if slot is not None and slot.online:
                    targets[s.shard] = slot
        if not targets:
            continue
        builder = PartRebuilder(manifest, diskset, store.codec, part, targets, generation)
        try:
            await store.run_io(builder.open)
            for first in range(0, part.blocks, per_slice):
                done = await store.run_io(builder.write_slice, first, per_slice)
                if pace is not None:
                    await pace(done, 0)
            committed = await store.run_io(builder.finish)
        except BaseException:
            await store.run_io(builder.discard)
            raise
        failures += [f"part {part.number} shard {j}: {why}" for j, why in builder.failures.items()]
        rebuilt += [(part.number, j) for j in committed]
        good.update((part.number, j) for j in committed)
    if not rebuilt and all(
        v in (ShardState.OK, ShardState.OFFLINE) for v in health.manifests.values()
    ):
        return RepairOutcome(
            RepairStatus.WAITING if not failures else RepairStatus.PARTIAL,
            failures=failures,
            message="bad shards are on offline disks" if not failures else "",
        )
    if not bump:
        return await _restore(store, manifest, health, good, rebuilt, failures)
    return await _publish(store, manifest, good, rebuilt, generation, failures)


async def _restore(
    store: ObjectStore,
    manifest: Manifest,
    health: ObjectHealth,
    good: set[tuple[int, int]],
    rebuilt: list[tuple[int, int]],
    failures: list[str],
) -> RepairOutcome:
    """Put back lost manifest copies (and an inline file's copy that a header update made
    outdated) with the index's current manifest, unchanged: see the module docstring."""
    diskset = store.diskset
    rebuilt_on = {manifest.placement[j] for _, j in rebuilt}
    async with store.healing.key_locked(manifest.bucket, manifest.key):
        current = await _still_current(store, manifest, rebuilt)
        if current is None:
            return _superseded()
        blob = await store.run_io(current.encode)
        targets = []
        for slot in _holders(diskset, current, good):
            disk_id = slot.disk_id
            lost = health.manifests.get(disk_id) in LOST_COPY_STATES
            # a rebuilt inline file carries the manifest it was verified against: only a
            # header update since then makes that copy differ
            outdated = current.inline and disk_id in rebuilt_on and current != manifest
            if lost or outdated:
                targets.append(slot)
        rel = manifest_file_path(current)
        written = await _write_copies(store, targets, rel, blob, failures)
    return RepairOutcome(
        RepairStatus.PARTIAL if failures else RepairStatus.REPAIRED,
        shards_rebuilt=len(rebuilt),
        manifests_written=written,
        generation=current.generation,
        failures=failures,
    )


def _holders(diskset: DiskSet, manifest: Manifest, good: set[tuple[int, int]]) -> list[DiskSlot]:
    """The online placement disks holding a good shard of every part: those that may carry a
    manifest copy (a copy is a claim that its disk's shards are there)."""
    out = []
    for j, disk_id in enumerate(manifest.placement):
        slot = diskset.slot_for(disk_id)
        if slot is not None and slot.online and all((p.number, j) in good for p in manifest.parts):
            out.append(slot)
    return out


async def _write_copies(
    store: ObjectStore, slots: list[DiskSlot], rel: str, blob: bytes, failures: list[str]
) -> int:
    """Write a manifest copy durably on each disk (keeping an inline file's records); returns
    how many were written, recording the others in failures."""
    failed = await gather_disk_failures(
        range(len(slots)), (store.run_io(rewrite_manifest_copy, s.disk, rel, blob) for s in slots)
    )
    for j, error in failed.items():
        failures.append(f"manifest on {slots[j].disk_id}: {error}")
    return len(slots) - len(failed)


async def _still_current(
    store: ObjectStore, manifest: Manifest, rebuilt: list[tuple[int, int]]
) -> Manifest | None:
    """Under the key's lock: the index's manifest if it is still the repaired version's;
    else None, once the shard files the repair wrote are removed (an overwrite or delete
    meanwhile wins)."""
    current = await store.healing.current_manifest(manifest.bucket, manifest.key)
    if current is not None and current.version_id == manifest.version_id:
        return current
    for number, j in rebuilt:
        slot = store.diskset.slot_for(manifest.placement[j])
        if slot is not None and slot.online:
            await store.run_io(slot.disk.remove, shard_file_path(manifest, number))
    return None


async def _publish(
    store: ObjectStore,
    manifest: Manifest,
    good: set[tuple[int, int]],
    rebuilt: list[tuple[int, int]],
    generation: int,
    failures: list[str],
) -> RepairOutcome:
    diskset = store.diskset
    async with store.healing.key_locked(manifest.bucket, manifest.key):
        current = await _still_current(store, manifest, rebuilt)
        if current is None:
            return _superseded()
        final = replace(current, generation=max(current.generation + 1, generation))
        blob = await store.run_io(final.encode)
        holders = _holders(diskset, final, good)
        written = await _write_copies(store, holders, manifest_file_path(final), blob, failures)
        if written == 0:
            raise OSError(f"{manifest.bucket}/{manifest.key}: no manifest copy could be written")
        await store.healing.index_repaired(final)
    return RepairOutcome(
        RepairStatus.PARTIAL if failures else RepairStatus.REPAIRED,
        shards_rebuilt=len(rebuilt),
        manifests_written=written,
        generation=final.generation,
        failures=failures,
    )
