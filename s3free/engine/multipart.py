"""Multipart uploads: parts are written once, as shard files under multipart/<upload>/, with the
final object's identity already in their headers; completing renames them into the object's
version directory and writes the manifest. No part byte is copied or buffered, and nothing of
an upload in progress shows in object listings (uploads live in their own index key space).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence

from s3free.engine.buckets import Buckets, record_bytes
from s3free.engine.fanout import RunIO, gather_disk_failures, on_disks
from s3free.engine.groupsync import Syncer
from s3free.engine.locks import BucketGates, KeyLocks
from s3free.engine.manifestcache import Manifests
from s3free.engine.names import validate_key
from s3free.engine.publish import Precondition, Publisher
from s3free.engine.reader import BlockReader, ObjectReader
from s3free.engine.types import (
    FaultKind,
    ObjectInfo,
    PartInfo,
    ShardFault,
    UploadInfo,
    WriteMiss,
    now_ms,
)
from s3free.engine.writer import PartWriter, ShardIdentity
from s3free.erasure import ReedSolomon
from s3free.errors import (
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    NoSuchUpload,
)
from s3free.format.header import MAX_PART_NUMBER
from s3free.format.ids import bucket_hash, object_id, uuid7, version_hex
from s3free.format.manifest import Manifest, PartEntry
from s3free.meta.index import Index, PartRecord, UploadRecord
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import UPLOAD_RECORD, part_path, upload_dir, upload_part_path

log = logging.getLogger(__name__)

# Reads the assembled object (its bytes, then its part sizes) before it becomes visible; raises
# to refuse it, or returns checksums (algorithm -> value) to store with the object.
Verify = Callable[
    [AsyncIterable[bytes | memoryview], Sequence[int]], Awaitable[Mapping[str, str] | None]
]


class MultipartUploads:
    def __init__(
        self,
        diskset: DiskSet,
        index: Index,
        run_io: RunIO,
        *,
        executor: concurrent.futures.Executor,
        codec: ReedSolomon,
        syncer: Syncer,
        manifests: Manifests,
        gates: BucketGates,
        key_locks: KeyLocks,
        buckets: Buckets,
        publisher: Publisher,
        report: Callable[[ShardFault], None],
        min_part_size: int,
    ) -> None:
        self.diskset = diskset
        self.index = index
        self.run_io = run_io
        self.executor = executor
        self.codec = codec
        self.syncer = syncer
        self.manifests = manifests
        self.gates = gates
        self.key_locks = key_locks
        self.buckets = buckets
        self.publisher = publisher
        self.report = report
        self.min_part_size = min_part_size

    def _placement(self, record: UploadRecord) -> list[DiskSlot]:
        slots = [self.diskset.slot_for(d) for d in record.placement]
        found = [s for s in slots if s is not None]
        if len(found) != len(slots):
            raise NoSuchUpload(f"upload {record.upload_id} names disks that are not in this set")
        return found

    async def create(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str = "",
        user_metadata: dict[str, str] | None = None,
        http_headers: dict[str, str] | None = None,
        checksums: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        validate_key(key)
        self.buckets.head(bucket)
        # The upload id is the hex of the version it will publish, so a complete repeated
        # after the upload is forgotten can still be recognised (see _completed_already).
        vid = uuid7()
        upload_id = vid.hex
        oid = object_id(bucket, key)
        placement = self.diskset.placement(oid)
        record = UploadRecord(
            bucket=bucket,
            key=key,
            upload_id=upload_id,
            object_id=oid.hex(),
            version_id=str(vid),
            placement=[s.disk_id for s in placement],
            initiated_ms=now_ms(),
            content_type=content_type,
            user_metadata=user_metadata or {},
            http_headers=http_headers or {},
            checksums=checksums or {},
            tags=tags or {},
        )
        blob = record_bytes(record.to_json())
        rel = f"{upload_dir(upload_id)}/{UPLOAD_RECORD}"
        await on_disks(
            self.run_io, [s for s in placement if s.online], lambda s: s.disk.write_file(rel, blob)
        )
        async with self.gates.shared(bucket):
            self.buckets.head(bucket)
            await self.run_io(self.index.put_upload, upload_id, record)
        return upload_id

    async def _upload(self, bucket: str, key: str, upload_id: str) -> UploadRecord:
        record = await self.run_io(self.index.get_upload, upload_id)
        if record is None or record.bucket != bucket or record.key != key:
            self.buckets.head(bucket)
            raise NoSuchUpload(f"upload {upload_id} does not exist for {bucket}/{key}")
        return record

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        stream: AsyncIterable[bytes],
        *,
        expected_size: int | None = None,
        expected_md5: bytes | None = None,
    ) -> PartInfo:
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise InvalidArgument(f"part number must be 1..{MAX_PART_NUMBER}, got {part_number}")
        record = await self._upload(bucket, key, upload_id)
        placement = self._placement(record)
        vid = uuid.UUID(record.version_id)
        writer = PartWriter(
            placement=placement,
            codec=self.codec,
            identity=ShardIdentity(
                bytes.fromhex(record.object_id), bucket_hash(bucket), vid.bytes, part_number
            ),
            block_size=self.diskset.block_size,
            write_quorum=self.diskset.write_quorum,
            executor=self.executor,
        )
        result = await writer.write(stream, expected_size=expected_size, expected_md5=expected_md5)

        async def finish() -> PartInfo:
            async with self.key_locks.hold(("upload", upload_id)):
                if await self.run_io(self.index.get_upload, upload_id) is None:
                    await asyncio.wrap_future(writer.abandon())
                    raise NoSuchUpload(f"upload {upload_id} was completed or aborted meanwhile")
                rel = upload_part_path(upload_id, part_number)
                failed = await writer.commit(lambda j: rel, self.syncer)
                # A shard that failed now must not leave an earlier attempt's file behind.
                await on_disks(
                    self.run_io,
                    [placement[j] for j in failed if placement[j].online],
                    lambda s: s.disk.remove(rel),
                )
                part = PartRecord(
                    number=part_number,
                    size=result.size,
                    etag=result.etag,
                    md5=result.md5.hex(),
                    blocks=len(result.block_hashes),
                    merkle_root=result.merkle_root,
                    mtime=now_ms(),
                    failed=sorted(failed),
                )
                await self.run_io(self.index.put_part, upload_id, part)
                return PartInfo(part_number, result.size, result.etag, part.mtime)

        return await asyncio.shield(finish())

    async def complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        precondition: Precondition | None = None,
        verify: Verify | None = None,
    ) -> ObjectInfo:
        """Assemble the listed (part number, ETag) pairs into the object, ETag
        "<md5 of the parts' md5s>-<count>" as S3 computes it.

        `verify`, if given, reads the assembled object (every block checked as in any read)
        before it becomes visible, and raises to refuse it (e.g. a full-object checksum that
        does not match); the upload is then left as it was, so it can be retried. The
        checksums it returns are stored with the object."""
        return await asyncio.shield(
            self._complete(bucket, key, upload_id, parts, precondition, verify)
        )

    async def _complete(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        precondition: Precondition | None,
        verify: Verify | None = None,
    ) -> ObjectInfo:
        async with self.key_locks.hold(("upload", upload_id)):
            done = await self._completed_already(bucket, key, upload_id, parts)
            if done is not None:
                return done
            record = await self._upload(bucket, key, upload_id)
            if not parts:
                raise InvalidPart("CompleteMultipartUpload needs at least one part")
            numbers = [n for n, _ in parts]
            if any(b <= a for a, b in itertools.pairwise(numbers)):
                raise InvalidPartOrder("parts must be listed in ascending part-number order")
            stored: list[PartRecord] = []
            for number, etag in parts:
                part = await self.run_io(self.index.get_part, upload_id, number)
                if part is None or part.etag != etag.strip('"'):
                    raise InvalidPart(f"part {number} was not uploaded or its ETag differs")
                stored.append(part)
            for part in stored[:-1]:
                if part.size < self.min_part_size:
                    raise EntityTooSmall(
                        f"part {part.number} is {part.size} bytes; every part but the "
                        f"last must be at least {self.min_part_size}"
                    )
            placement = self._placement(record)
            oid, vid = record.object_id, record.version_id
            vhex = version_hex(vid)
            failed: dict[int, str] = {}
            for j, slot in enumerate(placement):
                if not slot.online:
                    failed[j] = WriteMiss(
                        FaultKind.NOT_WRITTEN_OFFLINE, f"disk offline: {slot.problem}"
                    )
                elif any(j in p.failed for p in stored):
                    failed[j] = "a part's shard was not written"

            def move(j: int) -> None:
                pairs = [
                    (upload_part_path(upload_id, p.number), part_path(oid, vhex, p.number))
                    for p in stored
                ]
                placement[j].disk.move_files(pairs)

            live = [j for j in range(len(placement)) if j not in failed]
            not_moved = await gather_disk_failures(live, (self.run_io(move, j) for j in live))
            for j, error in not_moved.items():
                failed[j] = f"moving parts: {error}"
            md5s = b"".join(bytes.fromhex(p.md5) for p in stored)
            etag = f"{hashlib.md5(md5s).hexdigest()}-{len(stored)}"
            entries = [PartEntry(p.number, p.size, p.etag, p.blocks, p.merkle_root) for p in stored]
            manifest = self.publisher.new_manifest(
                bucket,
                key,
                oid,
                vid,
                entries,
                etag,
                placement,
                content_type=record.content_type,
                user_metadata=record.user_metadata,
                http_headers=record.http_headers,
                checksums=record.checksums,
                tags=record.tags,
            )
            moved = [j for j in live if j not in failed]

            def move_back(j: int) -> None:
                pairs = [
                    (part_path(oid, vhex, p.number), upload_part_path(upload_id, p.number))
                    for p in stored
                ]
                placement[j].disk.move_files(pairs)

            async def undo() -> None:
                results = await asyncio.gather(
                    *(self.run_io(move_back, j) for j in moved), return_exceptions=True
                )
                for j, outcome in zip(moved, results, strict=True):
                    if isinstance(outcome, BaseException):
                        log.warning(
                            "upload %s: shard %d parts not returned: %s", upload_id, j, outcome
                        )

            if verify is not None:
                try:
                    found = await verify(
                        self._draft_reader(manifest), [p.size for p in manifest.parts]
                    )
                except BaseException:
                    await undo()
                    raise
                if found:
                    checksums = {**manifest.checksums, **found}
                    manifest = dataclasses.replace(manifest, checksums=checksums)
            info = await self.publisher.publish(
                manifest, placement, failed, precondition, undo=undo, upload_id=upload_id
            )
            await self.forget_completed(upload_id, bucket, key, vid)
            return info

    async def _completed_already(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> ObjectInfo | None:
        """The object a repeated complete of an already completed upload made (as S3 answers a
        retried CompleteMultipartUpload: success, same ETag), or None. Recognised when the
        upload is gone, the key's current version is the one the upload published (its id is
        the upload id) and the listed parts are exactly that version's parts."""
        if await self.run_io(self.index.get_upload, upload_id) is not None:
            return None
        manifest = await self.run_io(self.manifests.load, bucket, key)
        if manifest is None or manifest.version_hex != upload_id:
            return None
        listed = [(n, etag.strip('"')) for n, etag in parts]
        if listed != [(p.number, p.etag) for p in manifest.parts]:
            return None
        return ObjectInfo.from_manifest(manifest)

    def _draft_reader(self, manifest: Manifest) -> ObjectReader:
        """A reader over a version that is not visible yet (its files are already in place)."""
        return ObjectReader(
            info=ObjectInfo.from_manifest(manifest),
            manifest=manifest,
            start=0,
            end=manifest.size - 1,
            blocks=BlockReader(manifest, self.diskset, self.codec, self.report),
            executor=self.executor,
            release=lambda: None,
            faults=[],
        )

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        async with self.key_locks.hold(("upload", upload_id)):
            await self._upload(bucket, key, upload_id)
            await self.drop(upload_id)

    async def drop(self, upload_id: str) -> None:
        """Forget the upload in the index, then remove its staging directory everywhere."""
        await self.run_io(self.index.delete_upload, upload_id)
        await self._remove_upload_dir(upload_id)

    async def forget_completed(
        self, upload_id: str, bucket: str, key: str, version_id: str
    ) -> None:
        """After a complete's switch: forget the upload, then drop the version's journal entry
        (kept past the switch so a crash before this is finished at start-up), unless a later
        write or delete of the key has taken that entry over for its own cleanup."""
        await self.forget(upload_id)
        async with self.key_locks.hold((bucket, key)):
            current = await self.run_io(self.manifests.load, bucket, key)
            if current is not None and current.version_id == version_id:
                await self.run_io(self.index.drop_journal, version_id)

    async def forget(self, upload_id: str) -> None:
        """A completed upload: its staging files (their upload record included, which a
        rebuild from the disks would read) first, then its index record. Idempotent, so
        start-up can redo it after a crash anywhere in between."""
        await self._remove_upload_dir(upload_id)
        await self.run_io(self.index.delete_upload, upload_id)

    async def _remove_upload_dir(self, upload_id: str) -> None:
        rel = upload_dir(upload_id)
        results = await on_disks(
            self.run_io, self.diskset.online_slots(), lambda s: s.disk.remove_tree(rel)
        )
        for outcome in results:
            if isinstance(outcome, BaseException):
                log.warning("could not remove %s: %s", rel, outcome)

    async def list_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        *,
        part_number_marker: int = 0,
        max_parts: int = 1000,
    ) -> tuple[list[PartInfo], bool, int]:
        """(parts, is_truncated, next part number marker)."""
        await self._upload(bucket, key, upload_id)

        def page() -> tuple[list[PartInfo], bool]:
            out: list[PartInfo] = []
            for p in self.index.list_parts(upload_id, part_number_marker):
                if len(out) >= max_parts:
                    return out, True
                out.append(PartInfo(p.number, p.size, p.etag, p.mtime))
            return out, False

        parts, truncated = await self.run_io(page)
        return parts, truncated, parts[-1].number if parts else 0

    async def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> tuple[list[UploadInfo], bool]:
        self.buckets.head(bucket)

        def page() -> tuple[list[UploadInfo], bool]:
            out: list[UploadInfo] = []
            for key, upload_id in self.index.list_uploads(
                bucket, prefix=prefix, key_marker=key_marker, upload_id_marker=upload_id_marker
            ):
                if len(out) >= max_uploads:
                    return out, True
                record = self.index.get_upload(upload_id)
                if record is not None:
                    out.append(UploadInfo(bucket, key, upload_id, record.initiated_ms))
            return out, False

        return await self.run_io(page)
