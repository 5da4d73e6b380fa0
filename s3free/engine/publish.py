"""Making a written version visible: its manifest next to every surviving shard, then the index
switch under the key's lock (docs/architecture.md, "Write path"). PUT, COPY and a multipart
complete all end here; the version they replace is handed to the reaper."""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from s3free.engine.buckets import Buckets
from s3free.engine.fanout import RunIO, disk_failures, gather_disk_failures, on_disks
from s3free.engine.groupsync import Syncer
from s3free.engine.locks import BucketGates, KeyLocks
from s3free.engine.manifestcache import Manifests
from s3free.engine.names import validate_key
from s3free.engine.reaper import VersionReaper
from s3free.engine.types import ObjectInfo, ShardFault, missed_kind, now_ms
from s3free.engine.writer import is_full, quorum_error
from s3free.errors import InsufficientWriteQuorum, NoSuchBucket
from s3free.format.errors import FormatError
from s3free.format.manifest import Manifest, PartEntry, envelope_length
from s3free.format.merkle import merkle_root
from s3free.meta.index import Index, JournalEntry, ListingEntry
from s3free.storage.batch import create_files
from s3free.storage.disk import Disk
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import manifest_file

Precondition = Callable[[ObjectInfo | None], None]


class Publisher:
    def __init__(
        self,
        diskset: DiskSet,
        index: Index,
        run_io: RunIO,
        *,
        syncer: Syncer,
        manifests: Manifests,
        gates: BucketGates,
        key_locks: KeyLocks,
        buckets: Buckets,
        reaper: VersionReaper,
        report: Callable[[ShardFault], None],
    ) -> None:
        self.diskset = diskset
        self.index = index
        self.run_io = run_io
        self.syncer = syncer
        self.manifests = manifests
        self.gates = gates
        self.key_locks = key_locks
        self.buckets = buckets
        self.reaper = reaper
        self.report = report
        self.degraded_writes = 0  # committed with some shard not written (for the metrics)

    def new_manifest(
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
        tags: dict[str, str] | None = None,
    ) -> Manifest:
        """The manifest of a new version of this set's layout, checked."""
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
            tags=dict(tags or {}),
        )
        manifest.validate()
        return manifest

    async def publish(
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
        mpath = manifest_file(manifest.object_id, manifest.version_hex, manifest.inline)

        def encode_and_journal() -> bytes:
            # Journal the version before any manifest of it exists: a crash before the switch
            # then removes it at start-up instead of leaving it for a rebuild to publish.
            blob = manifest.encode()
            self.index.put_journal(
                manifest.version_id, JournalEntry.of(manifest, upload_id=upload_id)
            )
            return blob

        targets = [j for j in range(len(placement)) if j not in failed]
        if inline is None:
            blob = await self.run_io(encode_and_journal)
            written = await gather_disk_failures(
                targets,
                (
                    self.run_io(lambda d=placement[j].disk: d.write_file(mpath, blob, sync=False))
                    for j in targets
                ),
            )
        else:
            records = inline

            def journal_and_create() -> tuple[bytes, list[BaseException | None]]:
                # One pool call for the whole small write: the files are a few KiB each and
                # land in the page cache (the group commit below makes them durable), so a
                # hop per disk would cost more than the writes themselves; and the files are
                # created in one batch (storage/batch.py), one GIL release for them all.
                blob = encode_and_journal()
                outcomes = create_files(
                    [(placement[j].disk, mpath, [blob, *records[j]]) for j in targets]
                )
                return blob, list(outcomes)

            blob, outcomes = await self.run_io(journal_and_create)
            written = disk_failures(targets, outcomes)
        full = {j for j in failed if is_full(placement[j])}
        for j, error in written.items():
            failed[j] = f"manifest write: {error}"
            if is_full(placement[j], error):
                full.add(j)
        # One group commit per disk makes the manifests durable before the index switch.
        synced = [j for j in targets if j not in failed]
        unsynced = disk_failures(synced, await self.syncer.sync([placement[j] for j in synced]))
        for j, error in unsynced.items():
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
            # upload (MultipartUploads.forget_completed): a crash in between is finished at
            # start-up.
            old = await self.switch(
                manifest, blob, precondition, keep_journal=upload_id is not None
            )
        except BaseException:
            if undo is not None:
                await undo()
            await self.reaper.remove_version(manifest)
            raise
        if failed:
            self.degraded_writes += 1
        for j, why in failed.items():
            for part in manifest.parts:
                self.report(
                    ShardFault(
                        manifest.bucket,
                        manifest.key,
                        manifest.version_id,
                        part.number,
                        j,
                        manifest.placement[j],
                        f"not written: {why}",
                        missed_kind(why),
                        object_size=manifest.size,
                    )
                )
        if old is not None and old.version_id != manifest.version_id:
            self.reaper.retire(old)
        return ObjectInfo.from_manifest(manifest)

    async def switch(
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
            self.gates.shared(manifest.bucket),
            self.key_locks.hold((manifest.bucket, manifest.key)),
        ):
            if manifest.bucket not in self.buckets:
                raise NoSuchBucket(f"bucket {manifest.bucket} was deleted during the write")

            def switch(old: Manifest | None) -> None:
                journal: dict[str, JournalEntry | None] = (
                    {} if keep_journal else {manifest.version_id: None}
                )
                if old is not None and old.version_id != manifest.version_id:
                    # removed by the reaper's retire, or at start-up
                    journal[old.version_id] = JournalEntry.of(old)
                self.index.put_object(
                    manifest.bucket,
                    manifest.key,
                    ListingEntry.from_manifest(manifest),
                    blob,
                    journal,
                )
                self.manifests.remember(blob, manifest)

            def load_and_switch() -> Manifest | None:
                old = self.manifests.load(manifest.bucket, manifest.key)
                switch(old)
                return old

            if precondition is None:  # one trip to the pool for the common, unconditional write
                return await self.run_io(load_and_switch)
            # The precondition runs on the loop, between reading the current version and the
            # switch, both under the key's lock.
            old = await self.run_io(self.manifests.load, manifest.bucket, manifest.key)
            precondition(ObjectInfo.from_manifest(old) if old else None)
            await self.run_io(switch, old)
            return old

    async def rewrite(
        self,
        bucket: str,
        key: str,
        change: Callable[[Manifest], Manifest],
        current: Callable[[str, str], Awaitable[Manifest]],
    ) -> ObjectInfo:
        """The current version's manifest (from `current`, which raises when there is none),
        changed and rewritten with the next generation on its disks (a write quorum of them),
        then indexed, all under the key's lock: headers and tags change without the data."""
        validate_key(key)
        async with self.gates.shared(bucket), self.key_locks.hold((bucket, key)):
            manifest = await current(bucket, key)
            updated = replace(change(manifest), generation=manifest.generation + 1)
            blob = await self.run_io(updated.encode)
            mpath = manifest_file(updated.object_id, updated.version_hex, updated.inline)
            results = await on_disks(
                self.run_io,
                self.diskset.online_slots_of(updated.placement),
                lambda s: rewrite_manifest_copy(s.disk, mpath, blob),
            )
            if sum(not isinstance(r, BaseException) for r in results) < self.diskset.write_quorum:
                raise InsufficientWriteQuorum(f"manifest of {bucket}/{key}: too few disks")
            entry = ListingEntry.from_manifest(updated)
            await self.run_io(self.index.put_object, bucket, key, entry, blob)
        return ObjectInfo.from_manifest(updated)


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
