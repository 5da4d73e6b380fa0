"""Verifying one object version completely: every record of every shard, every manifest copy.

Checks, per part and shard index (spec 7.3, 9, 12): the shard file is on its placement disk;
every record decodes (header magic/version/CRC/ranges, exact length, footer, record CRC); its
identity (object, version, part, block, shard index) names this place, else it is
"misplaced"; bucket hash, k, m and block length match the manifest; its generation is not newer
than the manifest's; its payload hashes to the footer's Merkle leaf. Per block: some k good
records decode to a block whose BLAKE3 is their content hash, and every other good record is
exactly that block's shard (re-encoded and compared). Per part: the Merkle root of the block
hashes equals the manifest's. Every manifest copy must be present and equal to the index's
("stale" when only its generation differs).

The work is cut into slices (a few blocks each) that run in the store's thread pool; between
slices the caller may pace itself. At most one slice of blocks is in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import replace

import blake3

from s3free.erasure import ReedSolomon
from s3free.format.errors import FormatError
from s3free.format.ids import bucket_hash
from s3free.format.manifest import Manifest, PartEntry
from s3free.format.merkle import merkle_root
from s3free.format.record import RECORD_OVERHEAD, ShardRecord, decode_record
from s3free.heal.files import manifest_file_path, open_shard
from s3free.heal.model import DataProblem, ObjectHealth, ShardHealth, ShardState
from s3free.storage.disk import ReadHandle
from s3free.storage.diskset import DiskSet

SLICE_BYTES = 4 * 1024 * 1024  # plaintext bytes verified per thread-pool call
MAX_COMBINATIONS = 256  # decode attempts per block before calling it unrecoverable

# When one shard file fails in several ways, the most telling state is kept.
_RANK = {
    ShardState.OK: 0,
    ShardState.STALE: 1,
    ShardState.CORRUPT: 2,
    ShardState.MISPLACED: 3,
    ShardState.MISSING: 4,
    ShardState.OFFLINE: 5,
}
# A shard file in these states gives no record at all (every block lacks it).
_UNUSABLE = (ShardState.MISSING, ShardState.OFFLINE)


class VersionVerifier:
    """Stateful checker of one version; call check_manifests, then each part's slices."""

    def __init__(self, manifest: Manifest, diskset: DiskSet, codec: ReedSolomon) -> None:
        self.m = manifest
        self._set = diskset
        self._codec = codec
        self._oid = bytes.fromhex(manifest.object_id)
        self._vid = bytes.fromhex(manifest.version_hex)
        self._bhash = bucket_hash(manifest.bucket)
        self.n = manifest.k + manifest.m
        self.full_payload = -(-manifest.block_size // manifest.k)
        self.shards: dict[tuple[int, int], ShardHealth] = {}
        self.manifests: dict[str, ShardState] = {}
        self.errors: list[str] = []
        self.problems: list[DataProblem] = []
        self.block_min_good = self.n
        self.bytes_checked = 0
        self.max_generation = manifest.generation  # highest seen in any record or copy
        self._handles: dict[int, ReadHandle] = {}
        self._hashes: list[bytes] = []
        self._part_broken = False

    # -- manifests -----------------------------------------------------------------------------

    def check_manifests(self) -> int:
        """Each placement disk's manifest copy; returns bytes read."""
        rel = manifest_file_path(self.m)
        read = 0
        for disk_id in self.m.placement:
            slot = self._set.slot_for(disk_id)
            if slot is None or not slot.online:
                self.manifests[disk_id] = ShardState.OFFLINE
                continue
            try:
                raw = slot.disk.read_file(rel)
            except FileNotFoundError:
                self.manifests[disk_id] = ShardState.MISSING
                continue
            except OSError:
                self.manifests[disk_id] = ShardState.CORRUPT
                continue
            read += len(raw)
            try:
                copy, _records = Manifest.decode_file(raw)
            except FormatError:
                self.manifests[disk_id] = ShardState.CORRUPT
                continue
            self.max_generation = max(self.max_generation, copy.generation)
            if copy == self.m:
                self.manifests[disk_id] = ShardState.OK
            elif replace(copy, generation=self.m.generation) == self.m:
                self.manifests[disk_id] = ShardState.STALE
            else:
                self.manifests[disk_id] = ShardState.CORRUPT
        self.bytes_checked += read
        return read

    # -- shard files ---------------------------------------------------------------------------

    def open_part(self, part: PartEntry) -> int:
        """Open the part's shard files; returns how many were opened (for pacing)."""
        self._hashes = []
        self._part_broken = False
        opened = 0
        for j, disk_id in enumerate(self.m.placement):
            health = ShardHealth(part.number, j, disk_id, ShardState.OK)
            self.shards[(part.number, j)] = health
            slot = self._set.slot_for(disk_id)
            if slot is None:
                self._mark(part.number, j, ShardState.OFFLINE, "disk is not part of this set")
                continue
            if not slot.online:
                self._mark(part.number, j, ShardState.OFFLINE, f"disk offline: {slot.problem}")
                continue
            try:
                self._handles[j] = open_shard(slot.disk, self.m, part.number)
                opened += 1
            except FileNotFoundError:
                self._mark(part.number, j, ShardState.MISSING, "shard file missing")
            except (OSError, FormatError) as exc:
                self._mark(part.number, j, ShardState.CORRUPT, f"cannot open: {exc}")
        return opened

    def check_slice(self, part: PartEntry, first: int, count: int) -> int:
        """Check blocks first..first+count-1 of the part; returns bytes read."""
        read = 0
        for b in range(first, min(first + count, part.blocks)):
            read += self._check_block(part, b)
        self.bytes_checked += read
        return read

    def close_part(self, part: PartEntry) -> None:
        """Check file sizes and the part's Merkle root, then close its files."""
        last = part.size - (part.blocks - 1) * self.m.block_size
        size = (part.blocks - 1) * (RECORD_OVERHEAD + self.full_payload)
        size += RECORD_OVERHEAD + -(-last // self.m.k)
        for j, handle in self._handles.items():
            try:
                actual = handle.size()
                if actual > size:
                    self._mark(
                        part.number,
                        j,
                        ShardState.CORRUPT,
                        f"{actual - size} bytes after the last record",
                    )
            except OSError as exc:
                self._mark(part.number, j, ShardState.CORRUPT, f"stat failed: {exc}")
            handle.close()
        self._handles = {}
        if not self._part_broken:
            root = merkle_root(self._hashes).hex()
            if root != part.merkle_root:
                self._lose(
                    DataProblem.PART_ROOT,
                    f"part {part.number}: the Merkle root of its blocks ({root}) does not match "
                    f"the manifest's ({part.merkle_root})",
                )
        self._hashes = []

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def finish(self, bucket: str, key: str) -> ObjectHealth:
        roots = [bytes.fromhex(p.merkle_root) for p in self.m.parts]
        if merkle_root(roots).hex() != self.m.merkle_root:
            self._lose(
                DataProblem.OBJECT_ROOT,
                "the manifest's object Merkle root does not match its part roots",
            )
        return ObjectHealth(
            bucket=bucket,
            key=key,
            version_id=self.m.version_id,
            k=self.m.k,
            m=self.m.m,
            shards=[self.shards[k] for k in sorted(self.shards)],
            manifests=dict(self.manifests),
            bytes_checked=self.bytes_checked,
            generation=self.m.generation,
            block_min_good=self.block_min_good,
            errors=list(self.errors),
            problems=list(self.problems),
        )

    # -- internals -----------------------------------------------------------------------------

    def _lose(self, problem: DataProblem, text: str) -> None:
        self.problems.append(problem)
        self.errors.append(text)

    def _mark(
        self, part: int, shard: int, state: ShardState, detail: str, block: int | None = None
    ) -> None:
        health = self.shards[(part, shard)]
        if block is not None:
            health.bad_blocks += 1
            detail = f"block {block}: {detail}"
        if _RANK[state] > _RANK[health.state]:
            health.state = state
            health.detail = detail
        if state in _UNUSABLE:
            self.block_min_good = min(self.block_min_good, self.n - self._unusable(part))

    def _unusable(self, part: int) -> int:
        return sum(1 for (p, _), h in self.shards.items() if p == part and h.state in _UNUSABLE)

    def _check_block(self, part: PartEntry, b: int) -> int:
        length = min(self.m.block_size, part.size - b * self.m.block_size)
        payload = -(-length // self.m.k)
        offset = b * (RECORD_OVERHEAD + self.full_payload)
        good: dict[int, ShardRecord] = {}
        read = 0
        for j, handle in self._handles.items():
            try:
                data = handle.read_at(offset, RECORD_OVERHEAD + payload)
            except OSError as exc:
                self._mark(part.number, j, ShardState.CORRUPT, f"read failed: {exc}", b)
                continue
            read += len(data)
            record = self._check_record(part, b, j, length, data)
            if record is not None:
                good[j] = record
        found = self._decode_any(good, length)
        if found is None:
            self._part_broken = True
            if len(good) < self.m.k:
                self.block_min_good = min(self.block_min_good, len(good))
                self._lose(
                    DataProblem.SHORT_OF_SHARDS,
                    f"part {part.number} block {b}: only {len(good)} good shards of the "
                    f"{self.m.k} needed",
                )
            else:
                self.block_min_good = 0
                self._lose(
                    DataProblem.UNDECODABLE,
                    f"part {part.number} block {b}: no {self.m.k} of its {len(good)} good "
                    "shards decode to their content hash",
                )
            return read
        block, digest = found
        expected = self._codec.encode(block)
        agreeing = 0
        for j, record in good.items():
            if record.header.content_hash != digest or record.payload != expected[j]:
                self._mark(
                    part.number, j, ShardState.CORRUPT, "shard disagrees with the verified block", b
                )
            else:
                agreeing += 1
        self.block_min_good = min(self.block_min_good, agreeing)
        self._hashes.append(digest)
        return read

    def _check_record(
        self, part: PartEntry, b: int, j: int, length: int, data: bytes
    ) -> ShardRecord | None:
        try:
            record = decode_record(data)
        except FormatError as exc:
            self._mark(part.number, j, ShardState.CORRUPT, str(exc), b)
            return None
        h = record.header
        if (h.object_id, h.version_id, h.part_number, h.block_index, h.shard_index) != (
            self._oid,
            self._vid,
            part.number,
            b,
            j,
        ):
            self._mark(
                part.number,
                j,
                ShardState.MISPLACED,
                f"record names object {h.object_id.hex()} version {h.version_id.hex()} part "
                f"{h.part_number} block {h.block_index} shard {h.shard_index}",
                b,
            )
            return None
        if (h.bucket_hash, h.k, h.m, h.block_length) != (self._bhash, self.m.k, self.m.m, length):
            self._mark(part.number, j, ShardState.CORRUPT, "header does not match the manifest", b)
            return None
        self.max_generation = max(self.max_generation, h.generation)
        if h.generation > self.m.generation:
            self._mark(
                part.number,
                j,
                ShardState.CORRUPT,
                f"generation {h.generation} is newer than the manifest's {self.m.generation}",
                b,
            )
            return None
        if not record.leaf_ok():
            self._mark(
                part.number, j, ShardState.CORRUPT, "payload does not match its Merkle leaf", b
            )
            return None
        return record

    def _decode_any(self, good: dict[int, ShardRecord], length: int) -> tuple[bytes, bytes] | None:
        """(block, content hash) from the first k good records (lowest indices first) that
        agree on a content hash and decode to it; None when no such k exist."""
        attempts = 0
        for combo in itertools.combinations(sorted(good), self.m.k):
            hashes = {good[s].header.content_hash for s in combo}
            if len(hashes) != 1:
                continue
            attempts += 1
            if attempts > MAX_COMBINATIONS:
                return None
            block = self._codec.decode({s: good[s].payload for s in combo}, length)
            digest = blake3.blake3(block).digest()
            if digest in hashes:
                return block, digest
        return None


async def verify_manifest(
    manifest: Manifest,
    diskset: DiskSet,
    codec: ReedSolomon,
    run: Callable[..., Awaitable],
    pace: Callable[[int, int], Awaitable[None]] | None = None,
) -> tuple[ObjectHealth, int]:
    """Verify one version in slices through `run` (the store's thread pool), calling
    `pace(bytes, files)` after each. Returns the health and the highest generation seen."""
    verifier = VersionVerifier(manifest, diskset, codec)
    per_slice = max(1, SLICE_BYTES // manifest.block_size)
    try:
        read = await run(verifier.check_manifests)
        if pace is not None:
            await pace(read, 0)
        for part in manifest.parts:
            opened = await run(verifier.open_part, part)
            if pace is not None:
                await pace(0, opened)
            for first in range(0, part.blocks, per_slice):
                read = await run(verifier.check_slice, part, first, per_slice)
                if pace is not None:
                    await pace(read, 0)
            await run(verifier.close_part, part)
    finally:
        verifier.close()
    return verifier.finish(manifest.bucket, manifest.key), verifier.max_generation
