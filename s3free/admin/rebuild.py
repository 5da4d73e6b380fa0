"""`admin rebuild-index` on a running server: a fresh index from the disks, swapped in.

How it stays safe while clients write (the index is a cache of the disks; the disks are the
truth for what was there before the rebuild began, the live index for what changed since):

1. Tracking starts (s3free/admin/swapdb.py records every key the live index writes), and the
   objects named by journal entries already present are marked as changed too (writes in
   flight, replaced versions not yet removed).
2. The disks are walked one objects/<aa>/<bb>/ directory at a time (all versions of a key
   live under one such directory, so the newest-wins choice of the start-up rebuild is made
   there exactly, with memory for one directory), into a side index <meta>.rebuild; then
   buckets and uploads in progress, as the start-up rebuild restores them.
3. The swap, with every index call paused (the gate waits for calls in flight): for every
   object, bucket and upload written since step 1 the live index's state replaces what the
   walk found (so a write during the walk is never lost, and a version deleted or replaced
   during the walk never comes back); the journal and the healer's records are copied; the
   live index is closed and moved to <meta>.previous (the one before is removed), the side
   index takes its place and is opened. Clients wait for the swap (a copy of what changed,
   two renames, an open), not for the walk.

Versions the walk skips, and why, are counted in the job: older versions of a key (orphans
for the scrubber), versions with shards but no manifest anywhere (unacknowledged writes; see
`s3free disk recover`), unreadable manifests and bucket records (listed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import plyvel

from s3free.admin.swapdb import SwappableDB, install
from s3free.engine.recovery import (
    RebuildReport,
    ScannedVersion,
    pick_current,
    restore_upload_parts,
    scan_buckets,
    scan_object_dir,
    scan_uploads,
)
from s3free.engine.store import ObjectStore, now_ms
from s3free.errors import DataUnavailable, StorageError
from s3free.format.errors import FormatError
from s3free.meta.index import Index, ListingEntry
from s3free.states import JobState
from s3free.storage.diskset import DiskSet
from s3free.storage.layout import OBJECTS_DIR

log = logging.getLogger(__name__)

PROBLEMS_SHOWN = 100  # problems listed in a job (all are counted and logged)


class RebuildRefused(StorageError):
    """A rebuild cannot start now (one is running, too many disks are offline)."""


@dataclass
class RebuildJob:
    """Progress and result of one rebuild; field names are the JSON contract."""

    id: str
    state: JobState = JobState.RUNNING  # running | done | failed
    phase: str = "starting"  # scanning | uploads | swapping | done
    started_ms: int = 0
    finished_ms: int | None = None
    prefixes_done: int = 0  # objects/<aa>/ directories walked
    prefixes_total: int = 0
    versions_seen: int = 0
    objects: int = 0  # objects in the new index
    buckets: int = 0
    buckets_recreated: int = 0  # bucket records lost but named by manifests
    uploads: int = 0
    skipped_older: int = 0  # older versions of a key (left for the scrubber)
    skipped_no_manifest: int = 0  # shards with no manifest anywhere (`disk recover`)
    unreadable: int = 0
    problems: list[str] = field(default_factory=list)
    changed_during: dict = field(default_factory=dict)  # taken from the live index at the swap
    previous_index: str = ""
    error: str = ""

    def to_json(self) -> dict:
        return {**asdict(self), "state": str(self.state)}  # the plain string, as shown

    def problem(self, text: str) -> None:
        self.unreadable += 1
        log.warning("rebuild-index: %s", text)
        if len(self.problems) < PROBLEMS_SHOWN:
            self.problems.append(text)


class IndexRebuilder:
    """Runs at most one rebuild at a time for one open store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.db: SwappableDB = install(store.index)
        self.jobs: dict[str, RebuildJob] = {}
        self._task: asyncio.Task | None = None
        self._running: RebuildJob | None = None

    def start(self) -> RebuildJob:
        if self._running is not None and self._running.state == JobState.RUNNING:
            raise RebuildRefused(f"a rebuild is already running (job {self._running.id})")
        ds = self.store.diskset
        online = len(ds.online_slots())
        if online < ds.n - ds.m:
            raise RebuildRefused(
                f"only {online} of {ds.n} disks are online: with more than {ds.m} away some "
                "objects may have no manifest copy to rebuild from"
            )
        job = RebuildJob(uuid.uuid4().hex[:16], started_ms=now_ms())
        self.jobs[job.id] = job
        self._running = job
        self._task = asyncio.ensure_future(self._run(job))
        return job

    def job(self, job_id: str) -> RebuildJob | None:
        return self.jobs.get(job_id)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, job: RebuildJob) -> None:
        store = self.store
        side_path = _side_path(store.index.path)
        dirty = self.db.start_tracking()
        try:
            for record in (rec for _, rec in await store.run_io(store.index.journal)):
                dirty.objects.add((record.bucket, record.key))
            side = await store.run_io(_fresh_index, side_path)
            try:
                job.phase = "scanning"
                await store.run_io(_walk, store.diskset, side, job, lambda: self.db.closed)
                job.phase = "uploads"
                await store.run_io(_uploads, store.diskset, side, job)
                job.phase = "swapping"
                await store.run_io(self._swap, side, job)
            except BaseException:
                if not side.db.closed:
                    side.close()
                shutil.rmtree(side_path, ignore_errors=True)
                raise
            await store.reload_buckets()  # under the store's bucket lock
            job.buckets = len(await store.list_buckets())
            job.objects = await store.run_io(_count, self.db, b"O")
            job.uploads = await store.run_io(_count, self.db, b"U")
            job.phase, job.state = "done", JobState.DONE
            log.info("rebuild-index: done: %s", {k: v for k, v in job.to_json().items()})
        except Exception as exc:
            log.exception("rebuild-index failed")
            job.state = JobState.FAILED
            job.error = str(exc) or type(exc).__name__
        finally:
            self.db.stop_tracking()
            job.finished_ms = now_ms()

    def _swap(self, side: Index, job: RebuildJob) -> None:
        """In a pool thread: bring the live changes over and swap, with every call paused."""
        live_path = self.store.index.path
        previous = live_path.with_name(live_path.name + ".previous")
        failure: list[BaseException] = []

        def replace(live: plyvel.DB) -> plyvel.DB:
            dirty = self.db._dirty
            assert dirty is not None
            _copy_changes(live, side.db, dirty)
            job.changed_during = {
                "objects": len(dirty.objects),
                "buckets": len(dirty.buckets),
                "uploads": len(dirty.uploads),
            }
            side.set_meta({"complete": True, "set_id": self.store.diskset.set_id})
            side.close()
            live.close()
            try:
                if previous.exists():
                    shutil.rmtree(previous)
                live_path.rename(previous)
                try:
                    side.path.rename(live_path)
                except OSError:
                    previous.rename(live_path)
                    raise
                _fsync_dir(live_path.parent)
                fresh = _open_db(live_path)
            except BaseException as exc:
                failure.append(exc)
                if not live_path.exists() and previous.exists():
                    previous.rename(live_path)
                return _open_db(live_path)  # the old index, as it was
            job.previous_index = str(previous)
            return fresh

        self.db.swap(replace)
        if failure:
            raise failure[0]


def _side_path(live: Path) -> Path:
    return live.with_name(live.name + ".rebuild")


def _open_db(path: Path) -> plyvel.DB:
    return plyvel.DB(str(path), create_if_missing=False, paranoid_checks=True)


def _fresh_index(path: Path) -> Index:
    if path.exists():
        shutil.rmtree(path)  # a side index left by a rebuild that crashed
    return Index(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _count(db, tag: bytes) -> int:
    from s3free.admin.usage import _records

    return sum(1 for _ in _records(db, tag))


def _union(diskset: DiskSet, rel: str) -> list[str]:
    names: set[str] = set()
    for slot in diskset.online_slots():
        names.update(slot.disk.list_dir(rel))
    return sorted(names)


def _walk(diskset: DiskSet, side: Index, job: RebuildJob, stopping: Callable[[], bool]) -> None:
    """Every objects/<aa>/<bb>/ directory: the newest version of each key, into the side
    index (unsynced batches; the synced meta record at the swap makes them durable)."""
    report = RebuildReport()
    tombstones: dict[str, dict] = {}
    buckets = scan_buckets(diskset, report, tombstones)
    for text in report.unreadable:
        job.problem(text)
    tops = [a for a in _union(diskset, OBJECTS_DIR) if len(a) == 2]
    job.prefixes_total = len(tops)
    for a in tops:
        if stopping():
            raise RuntimeError("stopped: the store is closing")
        for b in _union(diskset, f"{OBJECTS_DIR}/{a}"):
            report = RebuildReport()
            versions = _scan_dir(diskset, f"{OBJECTS_DIR}/{a}/{b}", report)
            for text in report.unreadable:
                job.problem(text)
            job.versions_seen += len(versions)
            picked = pick_current(versions, buckets, tombstones)
            job.skipped_no_manifest += len(picked.headerless)
            job.buckets_recreated += picked.buckets_recreated
            job.skipped_older += picked.older + picked.deleted
            chosen = picked.chosen
            if chosen:
                side.load(
                    {},
                    (
                        (bucket, key, ListingEntry.from_manifest(m), m.encode())
                        for (bucket, key), m in chosen.items()
                    ),
                )
        job.prefixes_done += 1
    side.load(buckets, iter(()))


def _scan_dir(diskset: DiskSet, rel: str, report: RebuildReport) -> dict:
    """The versions under one objects/<aa>/<bb> directory, on every online disk (as
    recovery._scan_versions reads them for the whole store)."""
    versions: dict[tuple[str, str], ScannedVersion] = {}
    for slot in diskset.online_slots():
        scan_object_dir(slot, rel, versions, report)
    return versions


def _uploads(diskset: DiskSet, side: Index, job: RebuildJob) -> None:
    """Uploads in progress, from their records and staged parts (recovery rule 6)."""
    report = RebuildReport()
    known = {b["name"] for b in side.list_buckets()}
    for record, files in scan_uploads(diskset, report):
        if record.bucket not in known:
            report.unreadable.append(f"upload {record.upload_id}: bucket is gone")
            continue
        try:
            parts = restore_upload_parts(diskset, record, files) if files else []
        except (FormatError, OSError, ValueError, DataUnavailable) as exc:
            report.unreadable.append(f"upload {record.upload_id}: {exc}")
            parts = []
        side.put_upload(record.upload_id, record)
        for part in parts:
            side.put_part(record.upload_id, part)
    for text in report.unreadable:
        job.problem(text)


def _copy_changes(live: plyvel.DB, side: plyvel.DB, dirty) -> None:
    """The live index's state of everything written since tracking began, over the side
    index's; then the journal and the healer's records, which only the live index has."""
    with side.write_batch() as batch:
        for bucket, key in dirty.objects:
            for tag in (b"O", b"M"):
                k = tag + bucket.encode() + b"\x00" + key.encode()
                value = live.get(k)
                if value is None:
                    batch.delete(k)
                else:
                    batch.put(k, value)
        for name in dirty.buckets:
            k = b"B" + name.encode()
            value = live.get(k)
            if value is None:
                batch.delete(k)
            else:
                batch.put(k, value)
    with side.write_batch() as batch:
        for upload_id in dirty.uploads:
            for k in _upload_records(side, upload_id):
                batch.delete(k)
            for k in _upload_records(live, upload_id):
                batch.put(k, live.get(k, b""))
    with side.write_batch() as batch:
        for tag in (b"J", b"H"):
            for k, v in live.iterator(prefix=tag):
                batch.put(k, v)


def _upload_records(db: plyvel.DB, upload_id: str) -> list[bytes]:
    """The keys of one upload: its record, its listing entry, its parts."""
    uid = upload_id.encode()
    raw = db.get(b"U" + uid)
    if raw is None:
        return []
    record = json.loads(raw)
    keys = [b"U" + uid, b"u" + record["bucket"].encode() + b"\x00" + record["key"].encode()]
    keys[1] += b"\x00" + uid
    keys += list(db.iterator(prefix=b"P" + uid + b"\x00", include_value=False))
    return keys
