"""The bucket table: bucket records on every disk (the truth), in the index, and in memory.

Buckets are few and change only through this store: kept in memory (from the index), so that
no request pays a thread hop to learn that its bucket exists. A deleted bucket's record becomes
a tombstone with a higher generation (format/records.py), so a copy on a disk away loses to it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from s3free.engine.fanout import RunIO, disk_failures, on_disks
from s3free.engine.locks import BucketGates
from s3free.engine.names import validate_bucket_name
from s3free.engine.types import BucketInfo, now_ms
from s3free.engine.writer import is_full, quorum_error
from s3free.errors import BucketAlreadyExists, BucketNotEmpty, InvalidArgument, NoSuchBucket
from s3free.format import records
from s3free.format.errors import FormatError
from s3free.format.manifest import check_tags
from s3free.meta.index import Index
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import BUCKETS_DIR, bucket_record_path

log = logging.getLogger(__name__)

CANNED_ACLS = ("private", "public-read")
MAX_BUCKET_TAGS = 50  # S3's limit (an object has at most 10)


class Buckets:
    def __init__(self, diskset: DiskSet, index: Index, run_io: RunIO, gates: BucketGates) -> None:
        self.diskset = diskset
        self.index = index
        self.run_io = run_io
        self.gates = gates
        # Held by every change to a bucket record (and by a reload of the table).
        self.lock = asyncio.Lock()
        self._table: dict[str, BucketInfo] = {}

    # -- reading -----------------------------------------------------------------------------

    def get(self, name: str) -> BucketInfo | None:
        return self._table.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._table

    def head(self, name: str) -> BucketInfo:
        info = self._table.get(name)
        if info is None:
            raise NoSuchBucket(f"bucket {name} does not exist")
        return info

    def all(self) -> list[BucketInfo]:
        """Every bucket, by name."""
        return sorted(self._table.values(), key=lambda b: b.name)

    async def reload(self) -> None:
        """Refill the table from the index (at open, after a rebuild)."""
        async with self.lock:
            rows = await self.run_io(self.index.list_buckets)
            self._table = {r["name"]: BucketInfo.from_record(r) for r in rows}

    # -- changing ----------------------------------------------------------------------------

    async def create(self, name: str, owner: str = "", acl: str = "private") -> BucketInfo:
        """Create atomically: of two racing creators exactly one wins, the other gets
        BucketAlreadyExists (with .owner set to the winner's owner)."""
        validate_bucket_name(name)
        check_acl(acl)
        async with self.lock:
            existing = self._table.get(name)
            if existing is not None:
                err = BucketAlreadyExists(f"bucket {name} already exists")
                err.owner = existing.owner  # type: ignore[attr-defined]  # read by the S3 layer
                raise err
            before = await self.run_io(self.record_copies, name)
            info = BucketInfo(name, now_ms(), owner, acl, next_generation(before, 0))
            await self._save(info, new=before)
        return info

    async def set_acl(self, name: str, acl: str) -> BucketInfo:
        check_acl(acl)
        async with self.lock:
            info = self.head(name)
            copies = await self.run_io(self.record_copies, name)
            generation = next_generation(copies, info.generation)
            info = replace(info, acl=acl, generation=generation)
            await self._save(info)
        return info

    async def set_tags(self, name: str, tags: dict[str, str]) -> BucketInfo:
        """Replace a bucket's tags ({} removes them): a new generation of its record, written
        like an ACL change, so a lost index is rebuilt with them."""
        try:
            check_tags(tags, MAX_BUCKET_TAGS)
        except FormatError as exc:
            raise InvalidArgument(f"bucket tags: {exc}") from None
        async with self.lock:
            info = self.head(name)
            copies = await self.run_io(self.record_copies, name)
            generation = next_generation(copies, info.generation)
            info = replace(info, tags=dict(tags), generation=generation)
            await self._save(info)
        return info

    async def delete(self, name: str, drop_upload: Callable[[str], Awaitable[None]]) -> None:
        """Refuse while objects remain; uploads in progress are aborted (drop_upload) with the
        bucket. The record becomes a tombstone (kept)."""
        async with self.lock, self.gates.exclusive(name):
            info = self.head(name)
            if await self.run_io(self.index.bucket_has_objects, name):
                raise BucketNotEmpty(f"bucket {name} is not empty")
            for upload_id in await self.run_io(self.index.uploads_in_bucket, name):
                await drop_upload(upload_id)
            copies = await self.run_io(self.record_copies, name)
            tomb = record_bytes(records.tombstone(name, next_generation(copies, info.generation)))
            await on_disks(
                self.run_io,
                self.diskset.online_slots(),
                lambda s: s.disk.write_file(bucket_record_path(name), tomb),
            )
            await self.run_io(self.index.delete_bucket, name)
            self._table.pop(name, None)

    def record_copies(self, name: str) -> dict[int, bytes | None]:
        """Each online disk's copy of a bucket's record (None: none there, or unreadable)."""
        out: dict[int, bytes | None] = {}
        for slot in self.diskset.online_slots():
            try:
                out[slot.position] = slot.disk.read_file(bucket_record_path(name))
            except OSError:
                out[slot.position] = None
        return out

    async def _save(self, info: BucketInfo, *, new: dict[int, bytes | None] | None = None) -> None:
        """The bucket record on every online disk (a write quorum of them), then the index.
        A new bucket (`new`: the copies there were before, a tombstone or none) that misses
        the quorum puts those back on the disks that got it."""
        path = bucket_record_path(info.name)
        record = record_bytes(info.to_record())
        slots = self.diskset.online_slots()
        results = await on_disks(self.run_io, slots, lambda s: s.disk.write_file(path, record))
        if sum(not isinstance(r, BaseException) for r in results) < self.diskset.write_quorum:
            if new is not None:
                before = new

                def undo(slot: DiskSlot) -> None:
                    old = before.get(slot.position)
                    if old is None:
                        slot.disk.remove(path)
                    else:
                        slot.disk.write_file(path, old)

                await on_disks(self.run_io, self.diskset.online_slots(), undo)
            failed = {j: str(r) for j, r in enumerate(results) if isinstance(r, BaseException)}
            full = {
                j
                for j, r in enumerate(results)
                if isinstance(r, BaseException) and is_full(slots[j], r)
            }
            raise quorum_error(
                f"copies of bucket {info.name}'s record",
                slots,
                failed,
                full,
                self.diskset.write_quorum,
            )
        await self.run_io(self.index.put_bucket, info.name, info.to_record())
        self._table[info.name] = info

    # -- keeping the disks' copies current (the heal service) --------------------------------

    async def restore_records(self) -> int:
        """Bring every online disk's copy of every bucket record (tombstones included) to the
        newest one, of the disks' copies and the index's: a disk that was away holds stale
        ones, and the records are what a lost index is rebuilt from, so they must not rot
        away one disk at a time either. Where a disk holds a newer record than the index (a
        write that reached the disks but not the index), the index takes it. Returns how many
        copies were rewritten; a disk that refuses is left for the next pass."""

        def names() -> set[str]:
            found: set[str] = set()
            for slot in self.diskset.online_slots():
                found.update(e[:-5] for e in slot.disk.list_dir(BUCKETS_DIR) if e.endswith(".json"))
            return found

        rewritten = 0
        for name in sorted(await self.run_io(names) | set(self._table)):
            async with self.lock:
                rewritten += await self._restore_record(name)
        return rewritten

    async def _restore_record(self, name: str) -> int:
        path = bucket_record_path(name)
        copies = await self.run_io(self.record_copies, name)
        good: list[tuple[dict, bytes]] = []
        for blob in copies.values():
            try:
                if blob is not None:
                    good.append((parse_bucket_record(name, blob), blob))
            except ValueError:
                pass  # rewritten below
        info = self._table.get(name)
        mine = None if info is None else record_bytes(info.to_record())
        if info is not None and mine is not None:
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
                        info = replace(info, generation=gen)
                        best = record_bytes(info.to_record())
                        await self.run_io(self.index.put_bucket, name, info.to_record())
                        self._table[name] = info
                    else:
                        log.warning("bucket %s: a newer tombstone on the disks, dropped", name)
                        await self.run_io(self.index.delete_bucket, name)
                        self._table.pop(name, None)
            else:
                info = BucketInfo.from_record(record)
                log.warning("bucket %s: a newer record on the disks than the index's", name)
                await self.run_io(self.index.put_bucket, name, info.to_record())
                self._table[name] = info

        def restore(slot: DiskSlot) -> bool:
            if copies.get(slot.position) == best:
                return False
            slot.disk.write_file(path, best)
            return True

        slots = self.diskset.online_slots()
        outcomes = await on_disks(self.run_io, slots, restore)
        disk_failures(range(len(slots)), outcomes)  # one that refuses: left for the next pass
        return sum(outcome is True for outcome in outcomes)


def parse_bucket_record(name: str, blob: bytes) -> dict:
    """A bucket record copy, checked: a JSON object naming its bucket, with a generation if
    any (format/records.py) and, unless a tombstone, a creation time."""
    record = json.loads(blob)
    if not isinstance(record, dict) or record.get("name") != name:
        raise ValueError("record does not name its bucket")
    records.generation_of(record)
    if records.is_tombstone(record):
        if not isinstance(record.get("deleted_ms"), int):
            raise ValueError("tombstone has no deletion time")
    elif not isinstance(record.get("created_ms"), int):
        raise ValueError("record has no creation time")
    if "tags" in record:
        try:
            check_tags(record["tags"], MAX_BUCKET_TAGS)
        except FormatError as exc:
            raise ValueError(f"bad tags: {exc}") from None
    return record


def check_acl(acl: str) -> None:
    if acl not in CANNED_ACLS:
        allowed = ", ".join(CANNED_ACLS)
        raise InvalidArgument(f"canned ACL {acl!r} is not supported (only {allowed})")


def record_bytes(record: dict) -> bytes:
    return records.encode(record)


def next_generation(copies: dict[int, bytes | None], known: int) -> int:
    """A generation above `known` and above every generation the disks' copies carry."""
    found = [known]
    for blob in copies.values():
        try:
            found.append(records.generation_of(json.loads(blob)) if blob else 0)
        except (ValueError, AttributeError, TypeError):
            continue  # an unreadable copy: the restore rewrites it
    return records.next_generation(*found)
