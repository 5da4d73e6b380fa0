"""Scenarios on an in-process engine: write the dataset, inject, read everything back, and
(with the heal service) run ONE scrub and require k+m healthy shards everywhere.

Each scenario is a few hooks on one flow (`run`):
  write the dataset (`before_write` may break a disk first) -> `inject` -> read back every
  acknowledged object byte for byte and list the bucket -> `before_heal` (e.g. the failing
  disk is fixed) -> plant an old and a young orphan, take a file inventory -> one scrub ->
  every object k+m healthy, read back again, only the old orphan removed.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from chaos import healing
from chaos.data import Profile, Version, dataset
from chaos.faults import corrupt_index, delete_index, wipe_disk
from chaos.report import Row, finish
from chaos.rig import BUCKET, Rig
from chaos.verify import inventory, removed_unexpectedly, verify_engine
from s3free.engine.diskmonitor import DiskMonitor
from s3free.format.ids import version_hex
from s3free.storage.layout import version_dir

Hook = Callable[[Rig], Awaitable[None]]


async def _nothing(rig: Rig) -> None:
    return None


@dataclass(frozen=True)
class EngineScenario:
    name: str
    inject: Hook
    before_write: Hook = _nothing
    before_heal: Hook = _nothing
    expect_write_failures: bool = False
    fast: bool = True


# -- injections -------------------------------------------------------------------------------


async def _each_object(rig: Rig, action: Callable[[object], bool], rounds: int = 1) -> None:
    manifests = await rig.manifests()
    for _ in range(rounds):
        for manifest in manifests.values():
            action(manifest)


async def inject_bitflips(rig: Rig) -> None:
    """Up to m shards per object get a flipped bit in a payload, header or footer."""
    inj = rig.injector()
    await _each_object(rig, inj.bitflip, rounds=rig.profile.m + 1)


async def inject_shard_files(rig: Rig) -> None:
    """Truncated, zero-filled and deleted shard files, one kind after another per object."""
    inj = rig.injector()
    actions = [inj.truncate, inj.zero_fill, inj.delete_shard]
    manifests = await rig.manifests()
    for i, manifest in enumerate(manifests.values()):
        for j in range(rig.profile.m):
            actions[(i + j) % 3](manifest)


async def inject_manifests(rig: Rig) -> None:
    """m manifest copies of every object deleted (the index still has it)."""
    inj = rig.injector()
    await _each_object(rig, lambda man: inj.delete_manifest(man, rig.profile.m))


async def inject_manifests_and_index(rig: Rig) -> None:
    """m manifest copies deleted, then the index lost while stopped: the rebuild must find
    every object from the copies that are left."""
    await inject_manifests(rig)
    await rig.close()
    delete_index(rig.meta, rig.log)
    await rig.open()


async def inject_swaps(rig: Rig) -> None:
    """Shard files exchanged between twin objects of the same size (only ids differ)."""
    inj = rig.injector()
    manifests = await rig.manifests()
    for key, manifest in manifests.items():
        if key.endswith("a"):
            twin = manifests.get(key[:-1] + "b")
            if twin is not None:
                for _ in range(rig.profile.m):
                    inj.swap(manifest, twin)


def _wipe(count: int) -> Hook:
    async def inject(rig: Rig) -> None:
        for path in rig.rng.sample(rig.disk_paths, count):
            wipe_disk(path, rig.log, keep_format=True)

    return inject


async def inject_disk_replaced(rig: Rig) -> None:
    """Stopped; one disk directory emptied entirely (format.json too); restarted: a new
    empty disk in the old one's place."""
    await rig.close()
    wipe_disk(rig.rng.choice(rig.disk_paths), rig.log, keep_format=False)
    await rig.open()


def _run_time(op_errs: list[tuple[str, int]], kind: str) -> Hook:
    async def inject(rig: Rig) -> None:
        victim = rig.rng.randrange(len(rig.disks))
        for op, err in op_errs:
            rig.disks[victim].fail(op, err)
        rig.log.add(kind, f"disk{victim}: {', '.join(op for op, _ in op_errs)}")

    return inject


async def _fix_disks(rig: Rig) -> None:
    """The failing disk is repaired (space freed, remounted read-write, cable replaced)."""
    for disk in rig.disks:
        disk.heal()


def _index(how: str) -> Hook:
    async def inject(rig: Rig) -> None:
        await rig.close()
        if how == "delete":
            delete_index(rig.meta, rig.log)
        else:
            corrupt_index(rig.meta, rig.rng, rig.log, how)
        await rig.open()

    return inject


_WRITE_OPS = ("create_temp", "create_file", "write", "write_file", "commit", "rename", "sync")

SCENARIOS: list[EngineScenario] = [
    EngineScenario("bitflips", inject_bitflips),
    EngineScenario("shard-files", inject_shard_files),
    EngineScenario("manifests-deleted", inject_manifests),
    EngineScenario("manifests-deleted+index-lost", inject_manifests_and_index),
    EngineScenario("swapped-shards", inject_swaps),
    EngineScenario("disk-wiped", _wipe(1)),
    EngineScenario("m-disks-wiped", _wipe(2)),
    EngineScenario("disk-replaced", inject_disk_replaced, fast=False),
    EngineScenario(
        "eio-read",
        _run_time([("read_at", errno.EIO), ("read_file", errno.EIO)], "eio-read"),
        before_heal=_fix_disks,
    ),
    EngineScenario(
        "eio-write",
        _nothing,
        before_write=_run_time([(op, errno.EIO) for op in _WRITE_OPS], "eio-write"),
        before_heal=_fix_disks,
    ),
    EngineScenario(
        "read-only-disk",
        _nothing,
        before_write=_run_time([(op, errno.EROFS) for op in _WRITE_OPS], "erofs"),
        before_heal=_fix_disks,
    ),
    EngineScenario(
        "enospc-one-disk",
        _nothing,
        before_write=_run_time([("write", errno.ENOSPC), ("write_file", errno.ENOSPC)], "enospc"),
        before_heal=_fix_disks,
    ),
    EngineScenario("index-deleted", _index("delete")),
    EngineScenario("index-current-corrupt", _index("current")),
    EngineScenario("index-manifest-truncated", _index("manifest")),
    EngineScenario("index-tables-bitrot", _index("tables")),
]


# -- the flow ---------------------------------------------------------------------------------


async def _plant_orphans(rig: Rig) -> tuple[set[str], set[str]]:
    """Two unreferenced old versions of one key, copied back onto the disks after an
    overwrite: one backdated two days (must be collected), one fresh (inside the grace
    period: must be kept). Returns their inventory prefixes (old, young)."""
    assert rig.store is not None
    key = "orphan/source"
    size = 200_000  # over the inline limit: these versions are directories (spec 3)
    old = Version(key, 1, size, seed=rig.seed)
    await rig.write([old])
    first = await rig.store.get_manifest(BUCKET, key)
    layout = rig.layout()
    vdir = version_dir(first.object_id, first.version_hex)
    saved = rig.root / "orphan-copy"
    for disk_id, root in layout.roots.items():
        if (root / vdir).exists():
            shutil.copytree(root / vdir, saved / disk_id / "v")
    young = Version(key, 2, size, seed=rig.seed)
    await rig.write([young])  # replaces (and removes) version 1
    await rig.store.wait_idle()
    second = await rig.store.get_manifest(BUCKET, key)
    await rig.write([Version(key, 3, size, seed=rig.seed)])
    await rig.store.wait_idle()
    vdir2 = version_dir(second.object_id, second.version_hex)
    prefixes_old, prefixes_young = set(), set()
    day2 = time.time() - 2 * 86400
    for disk_id, root in layout.roots.items():
        src = saved / disk_id / "v"
        if not src.exists():
            continue
        shutil.copytree(src, root / vdir)
        for dirpath, _, files in os.walk(root / vdir, topdown=False):
            for name in files:
                os.utime(os.path.join(dirpath, name), (day2, day2))
            os.utime(dirpath, (day2, day2))  # a directory's mtime counts too
        prefixes_old.add(f"{root.name}/{vdir}")
    # The young orphan: version 2's files, which the overwrite by version 3 removed.
    for disk_id, root in layout.roots.items():
        src = saved / disk_id / "v"
        if src.exists():
            shutil.copytree(src, root / vdir2)
            prefixes_young.add(f"{root.name}/{vdir2}")
    shutil.rmtree(saved)
    return prefixes_old, prefixes_young


async def run_scenario(
    scenario: EngineScenario, profile: Profile, seed: int, heal: bool, workdir: Path | None
) -> Row:
    row = Row(scenario.name)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix=f"chaos-{scenario.name}-", dir=workdir))
    rig = Rig(root, profile, seed, random.Random(f"{seed}/{scenario.name}"))
    try:
        await _flow(rig, scenario, row, heal)
    finally:
        await rig.close()
        finish(row, root, started, rig.log)
    return row


async def _flow(rig: Rig, scenario: EngineScenario, row: Row, heal: bool) -> None:
    store = await rig.open()
    await store.create_bucket(BUCKET)
    await scenario.before_write(rig)
    await rig.write(dataset(rig.profile, rig.seed))
    if rig.acks.failed and not scenario.expect_write_failures:
        row.problems += [f"{k}: write refused: {e}" for k, e in sorted(rig.acks.failed.items())]
    await scenario.inject(rig)
    store = rig.store
    assert store is not None
    store.recent_faults.clear()
    verdict = await verify_engine(store, BUCKET, rig.acks)
    row.problems += [f"after faults: {p}" for p in verdict.problems]
    row.bytes_verified += verdict.bytes_verified
    row.detected = len({(f.version_id, f.part_number, f.shard_index) for f in store.recent_faults})
    if rig.log.shard_damage and not row.detected:
        row.problems.append("faults were injected but no read reported a bad shard")
    if not heal:
        row.notes.append("heal service not available: no scrub, repaired = n/a")
        return
    await scenario.before_heal(rig)
    old, young = await _plant_orphans(rig)
    roots = rig.disk_paths
    before = inventory(roots)
    # Versions the store itself retired while a disk was offline (journalled, spec 13.1): it
    # removes them everywhere once a disk comes back, planted copies included.
    retired = {version_hex(v) for v, _ in await store.run_io(store.index.journal)}
    settled = {p for p in old | young if p.rsplit("/", 1)[1] in retired}
    service = await healing.start_service(store, orphan_grace_s=3600.0)
    # The disk monitor, as the server runs it: two probes in a row find an emptied disk
    # directory fresh and format it back into the set (spec 4.2).
    monitor = DiskMonitor(store)
    try:
        await monitor.start(background=False)
        monitor.attach_healer(service)
        await monitor.check_all()
        await monitor.check_all()
        outcome = await healing.scrub_once(service)
        row.detected, row.repaired = outcome.detected, outcome.repaired
        row.problems += outcome.problems
        if outcome.unrepairable:
            row.problems.append(f"scrub reports {outcome.unrepairable} unrepairable objects")
        row.problems += await healing.check_health(service, store, BUCKET, rig.acks)
    finally:
        await service.stop()
        await monitor.stop()
    after = inventory(roots)
    row.problems += [f"removed but not an orphan: {p}" for p in
                     removed_unexpectedly(before, after, old | settled)]  # fmt: skip
    if settled:
        gone = [p for p in settled if not any(q.startswith(p + "/") for q in after)]
        row.notes.append(
            f"{len(gone)} of {len(settled)} copies of versions retired while a disk was offline "
            "removed by the store when the disk came back"
        )
    # A version replaced while a disk was offline and not settled yet stays in the crash
    # journal, the store's to settle (spec 13.1), never the scrubber's: such a copy is kept.
    journalled = {version_hex(v) for v, _ in await store.run_io(store.index.journal)}
    kept = {o for o in old if o.rsplit("/", 1)[1] in journalled}
    if kept:
        row.notes.append(f"{len(kept)} old orphan copies kept: journalled while a disk was offline")
    left_old = [p for p in after if any(p.startswith(o + "/") for o in old - kept - settled)]
    if left_old:
        row.problems.append(f"old orphan not collected: {left_old[:3]}")
    young_kept = young - settled  # the scrubber's grace period must spare these
    if young_kept and not any(p.startswith(y + "/") for p in after for y in young_kept):
        row.problems.append("an orphan inside the grace period was removed")
    verdict = await verify_engine(store, BUCKET, rig.acks)
    row.problems += [f"after the scrub: {p}" for p in verdict.problems]
    row.bytes_verified += verdict.bytes_verified


def by_name(name: str) -> EngineScenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise KeyError(name)


def run(name: str, profile: Profile, seed: int, heal: bool = True, workdir=None) -> Row:
    """Run one engine scenario in its own event loop."""
    return asyncio.run(run_scenario(by_name(name), profile, seed, heal, workdir))
