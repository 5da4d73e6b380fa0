"""The scrubber's walk (every object in the index, verified and repaired, resumable) and its
orphan pass, both paced by a Pacer and run in the store's thread pool in small slices."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from s3free.errors import StorageError
from s3free.heal.files import clean_quarantine
from s3free.heal.model import Job
from s3free.heal.orphans import (
    VersionDir,
    old_enough,
    remove_path,
    scan_prefix,
    stale_temp_entries,
    stale_uploads,
)
from s3free.heal.pacer import Pacer
from s3free.heal.queue import now_ms
from s3free.storage.layout import OBJECTS_DIR

if TYPE_CHECKING:
    from s3free.heal.service import HealService

log = logging.getLogger(__name__)

PAGE = 64  # index entries fetched per thread-pool call
WALK_CONCURRENCY = 4  # objects verified (and repaired) at once by a pass


async def walk(
    service: HealService,
    job: Job,
    pacer: Pacer,
    *,
    bucket: str | None,
    key: str | None,
    checkpoint: bool,
    resume: bool,
) -> None:
    """Verify (and repair) every object in scope, in index order. With `checkpoint`, the last
    (bucket, key) done is persisted every few objects and at the end (also when cancelled),
    and `resume` starts after the persisted one when the last pass did not finish."""
    store, state = service.store, service.state
    after: tuple[str, str] | None = None
    record: dict = {}
    if checkpoint:
        saved = await store.run_io(state.checkpoint)
        record = saved or {}
        if resume and record.get("in_progress") and record.get("after"):
            after = (record["after"][0], record["after"][1])
            previous = record.get("job") or {}
            for name in ("objects_checked", "shards_bad", "repaired", "unrepairable"):
                setattr(job, name, int(previous.get(name, 0)))
            job.bytes_checked = int(previous.get("bytes_checked", 0))
            service.resumed_bytes[job.id] = job.bytes_checked
        record.update(in_progress=True, pass_started_ms=record.get("pass_started_ms") or now_ms())
        if after is None:
            record["pass_started_ms"] = now_ms()
    if key is not None:
        job.objects_total = 1
        if await service.check_key(bucket or "", key, pacer, job):
            job.objects_checked += 1
        else:
            job.error = f"{bucket}/{key} does not exist"
        return
    job.objects_total = await store.run_io(state.count_objects, bucket)
    since = 0

    async def save(done: bool) -> None:
        record.update(after=list(after) if after else None, job=job.to_json())
        if done:
            record.update(in_progress=False, after=None, last_completed_ms=now_ms())
        await store.run_io(state.set_checkpoint, dict(record))

    try:
        while True:
            page = await store.run_io(state.manifests_after, bucket, after, PAGE)
            if not page:
                break
            for i in range(0, len(page), WALK_CONCURRENCY):
                if service.stopping:
                    raise asyncio.CancelledError
                # A few objects at once: one object's work is mostly waiting (file opens,
                # fsyncs, thread hops), so this keeps both the disks and the cores busy. The
                # pacer's clocks are shared, so the caps hold for the whole pass.
                chunk = page[i : i + WALK_CONCURRENCY]
                await asyncio.gather(*(service.check_key(b, k, pacer, job) for b, k, _ in chunk))
                job.objects_checked += len(chunk)
                after = (chunk[-1][0], chunk[-1][1])  # every key up to here is done
                since += len(chunk)
                if checkpoint and since >= service.config.checkpoint_every:
                    since = 0
                    await save(False)
        if checkpoint:
            await save(True)
    except BaseException:
        if checkpoint:
            try:
                await save(False)
            except Exception:
                log.exception("could not save the scrub checkpoint")
        raise


async def collect_orphans(service: HealService, job: Job, pacer: Pacer) -> None:
    """One pass over every online disk; see s3free/heal/orphans.py for what is collected."""
    store, state, cfg = service.store, service.state, service.config
    grace = cfg.orphan_grace_s
    journal = await store.run_io(state.journal_versions)
    uploads, upload_versions = await store.run_io(state.upload_references)
    unknown: list[VersionDir] = []
    for slot in store.diskset.online_slots():
        removed = await store.run_io(
            clean_quarantine, slot.disk, cfg.quarantine_max_age_s, cfg.quarantine_max_files
        )
        if removed:
            log.info("removed %d old quarantined files on %s", removed, slot.disk.root)
        for rel in await store.run_io(stale_temp_entries, slot, grace):
            await _remove(service, job, slot, rel)
        for rel in await store.run_io(stale_uploads, slot, uploads, grace):
            await _remove(service, job, slot, rel)
        for a in await store.run_io(slot.disk.list_dir, OBJECTS_DIR):
            found, opened = await store.run_io(scan_prefix, slot, a)
            await pacer.pace(0, opened + 1)
            for vd in found:
                if vd.version_id in journal or vd.version_id in upload_versions:
                    continue
                if vd.manifest is None:
                    unknown.append(vd)
                    continue
                await _settle(service, job, vd, grace)
    if unknown:
        referenced = await store.run_io(
            state.referenced_versions, {vd.version_id for vd in unknown}
        )
        for vd in unknown:
            if (
                vd.version_id not in referenced
                and not store.healing.version_in_use(vd.version_id)
                and await store.run_io(old_enough, vd.slot, vd.rel, grace)
            ):
                await _remove(service, job, vd.slot, vd.rel)


async def _settle(service: HealService, job: Job, vd: VersionDir, grace: float) -> None:
    """A version directory with a readable manifest copy: keep, trim or collect it."""
    store = service.store
    assert vd.manifest is not None
    try:
        current = await store.healing.current_manifest(vd.manifest.bucket, vd.manifest.key)
    except StorageError:
        current = None
    if current is not None and current.version_id == vd.version_id:
        if vd.slot.disk_id not in current.placement:
            if await store.run_io(old_enough, vd.slot, vd.rel, grace):
                await _remove(service, job, vd.slot, vd.rel)
            return
        listed = {p.number for p in current.parts}
        for number in vd.parts:
            if number not in listed:
                rel = f"{vd.rel}/part.{number:05d}"
                if await store.run_io(old_enough, vd.slot, rel, grace):
                    await _remove(service, job, vd.slot, rel)
        return
    if store.healing.version_in_use(vd.version_id):
        return
    if await store.run_io(old_enough, vd.slot, vd.rel, grace):
        await _remove(service, job, vd.slot, vd.rel)


async def _remove(service: HealService, job: Job, slot, rel: str) -> None:
    try:
        await service.store.run_io(remove_path, slot, rel)
    except OSError as exc:
        log.warning("orphan %s on %s not removed: %s", rel, slot.disk.root, exc)
        job.error = f"orphan {rel} on {slot.disk.root}: {exc}"
        return
    log.info("removed orphan %s on %s", rel, slot.disk.root)
    job.orphans_removed += 1
