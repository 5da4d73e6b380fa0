"""Disk lifecycle on the real engine and real directories: a disk that fails (FaultyDisk raising
EIO/EROFS), loses its format.json, is wiped or removed goes offline while reads and writes
carry on; it comes back when it recovers; an empty directory in its place is formatted into the
set at the same position with the same id and marked healing (tracker on the disk, surviving a
restart); a foreign or non-empty unknown directory is never written to.
"""

from __future__ import annotations

import asyncio
import errno
import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from s3free.engine.diskmonitor import DiskMonitor, MonitorConfig
from s3free.errors import StoreInUse
from s3free.format.diskformat import DiskFormat
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk
from s3free.storage.health import HealingTracker, count_shards
from s3free.storage.layout import FORMAT_FILE, HEALING_FILE, inline_path, version_dir
from tests.support.engine import disk_paths, open_store, stream_of

N = 6  # RS(4,2)
BUCKET = "life"
FAST = MonitorConfig(probe_s=0.05, error_limit=3, error_window_s=10, cooldown_s=0.3)


def data_for(key: str, size: int = 150_000) -> bytes:
    return random.Random(key).randbytes(size)


async def setup(root: Path, faulty: bool = False, config: MonitorConfig = FAST):
    disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(root, N)] if faulty else None
    store = await open_store(root, N, disks=disks)
    if BUCKET not in {b.name for b in await store.list_buckets()}:
        await store.create_bucket(BUCKET)
    monitor = DiskMonitor(store, config)
    await monitor.start(background=False)
    return store, monitor, disks


async def put(store, key: str) -> bytes:
    data = data_for(key)
    await store.put_object(BUCKET, key, stream_of(data))
    return data


async def get(store, key: str) -> bytes:
    return await store.get_object_bytes(BUCKET, key)


def states(monitor: DiskMonitor) -> list[str]:
    return [monitor.state(s) for s in monitor.diskset.slots]


async def test_read_errors_take_a_disk_offline_and_it_returns_after_the_cooldown(tmp_path):
    store, monitor, disks = await setup(tmp_path, faulty=True)
    try:
        objects = {f"k{i}": await put(store, f"k{i}") for i in range(8)}
        disks[2].fail("read_at", errno.EIO)
        for key, data in objects.items():  # exact bytes while the disk fails
            assert await get(store, key) == data
        slot = store.diskset.slots[2]
        assert not slot.online and "I/O errors" in slot.problem
        assert states(monitor)[2] == "offline"
        h = monitor.health[2]
        assert h.hard_errors >= FAST.error_limit and "read_at" in h.last_error
        # offline: no more reads reach it, everything still reads and writes
        before = disks[2].injected
        for key, data in objects.items():
            assert await get(store, key) == data
        assert disks[2].injected == before
        objects["during"] = await put(store, "during")
        # the probe passes (it does not read shards) but the cool-down holds it out
        await monitor.check_all()
        assert not slot.online
        await asyncio.sleep(FAST.cooldown_s + 0.05)
        await monitor.check_all()
        assert slot.online and states(monitor)[2] == "online"
        # still failing: out again, for twice as long
        for key in objects:
            await get(store, key)
        assert not slot.online and h.cooldown == pytest.approx(2 * FAST.cooldown_s)
        disks[2].heal()
        await asyncio.sleep(h.cooldown + 0.05)
        await monitor.check_all()
        assert slot.online
        for key, data in objects.items():
            assert await get(store, key) == data
    finally:
        await monitor.stop()
        await store.close()


async def test_a_read_only_disk_goes_offline_and_writes_carry_on(tmp_path):
    store, monitor, disks = await setup(tmp_path, faulty=True)
    try:
        for op in ("write", "write_file", "create_temp"):
            disks[4].fail(op, errno.EROFS)
        written = {f"ro{i}": await put(store, f"ro{i}") for i in range(4)}
        await monitor.check_all()  # the probe's write fails too
        slot = store.diskset.slots[4]
        assert not slot.online and "EROFS" in slot.problem
        written["after"] = await put(store, "after")
        for key, data in written.items():
            assert await get(store, key) == data
        disks[4].heal()
        await asyncio.sleep(FAST.cooldown_s * 2)
        await monitor.check_all()
        assert slot.online
    finally:
        await monitor.stop()
        await store.close()


async def test_format_json_gone_then_back(tmp_path):
    store, monitor, _ = await setup(tmp_path)
    try:
        data = await put(store, "k")
        fmt = tmp_path / "disk1" / FORMAT_FILE
        saved = fmt.read_bytes()
        fmt.unlink()
        await monitor.check_all()
        slot = store.diskset.slots[1]
        assert not slot.online and "not empty" in slot.problem
        assert not fmt.exists()  # a non-empty directory is never formatted over
        assert await get(store, "k") == data
        fmt.write_bytes(saved)
        await monitor.check_all()
        assert slot.online and states(monitor)[1] == "online"
    finally:
        await monitor.stop()
        await store.close()


async def test_a_wiped_disk_is_formatted_with_its_id_and_marked_healing(tmp_path):
    store, monitor, _ = await setup(tmp_path)
    try:
        objects = {f"w{i}": await put(store, f"w{i}") for i in range(6)}
        victim = tmp_path / "disk3"
        old = DiskFormat.decode((victim / FORMAT_FILE).read_bytes())
        for entry in victim.iterdir():  # wiped while the store runs
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        # reads find every file missing: an early probe is asked for
        for key, data in objects.items():
            assert await get(store, key) == data
        assert monitor.health[3].probe_soon
        await monitor.check_all()
        slot = store.diskset.slots[3]
        assert states(monitor)[3] == "offline" and "next probe" in slot.problem
        await monitor.check_all()  # still empty at the second look: formatted
        assert slot.online and states(monitor)[3] == "healing"
        new = DiskFormat.decode((victim / FORMAT_FILE).read_bytes())
        assert new == old  # same set, id, position, disk list
        tracker = HealingTracker.decode((victim / HEALING_FILE).read_bytes())
        assert (tracker.set_id, tracker.disk_id, tracker.position) == (
            old.set_id, old.disk_id, 3,
        )  # fmt: skip
        status = await monitor.status()
        assert status["disks"][3]["heal"]["waiting"] == "no heal service attached"
        # it is in service again: new writes put shards on it
        key = next(f"new{i}" for i in range(100) if slot.disk_id in _placement(store, f"new{i}"))
        objects[key] = await put(store, key)
        assert list((victim / "objects").rglob("part.00001"))
        for k, data in objects.items():
            assert await get(store, k) == data
    finally:
        await monitor.stop()
        await store.close()


def _placement(store, key: str) -> list[str]:
    from s3free.format.ids import object_id

    return [s.disk_id for s in store.diskset.placement(object_id(BUCKET, key))]


async def test_healing_survives_a_restart_and_finishes_through_the_healer(tmp_path):
    store, monitor, _ = await setup(tmp_path)
    await put(store, "a")
    victim = tmp_path / "disk0"
    shutil.rmtree(victim)
    await monitor.check_all()
    assert states(monitor)[0] == "offline"
    assert "directory missing" in store.diskset.slots[0].problem
    victim.mkdir()  # the operator puts a new empty directory in its place
    await monitor.check_all()
    assert states(monitor)[0] == "offline"
    await monitor.check_all()
    assert states(monitor)[0] == "healing"
    await monitor.stop()
    await store.close()

    store, monitor, _ = await setup(tmp_path)  # restart: healing.json says "still healing"
    try:
        assert states(monitor) == ["healing"] + ["online"] * (N - 1)
        healer = ScriptedHealer()
        monitor.attach_healer(healer)
        await monitor.check_all()
        assert len(healer.jobs) == 1
        job = healer.jobs[0]
        job.objects_checked, job.repaired, job.bytes_checked = 5, 2, 4096
        await monitor.check_all()
        tracker = HealingTracker.decode((victim / HEALING_FILE).read_bytes())
        assert (tracker.job_id, tracker.objects_checked, tracker.objects_repaired) == (
            job.id, 5, 2,
        )  # fmt: skip
        assert tracker.passes == 1
        job.state = "failed"  # a failed pass is retried after the cool-down
        await monitor.check_all()
        assert len(healer.jobs) == 1
        await asyncio.sleep(FAST.cooldown_s + 0.05)
        await monitor.check_all()
        assert len(healer.jobs) == 2
        healer.jobs[1].state = "done"
        await monitor.check_all()
        assert states(monitor)[0] == "online"
        assert not (victim / HEALING_FILE).exists()
        assert (await monitor.status())["disks"][0]["last_heal"]["passes"] == 2
    finally:
        await monitor.stop()
        await store.close()


@dataclass
class ScriptedJob:
    """The heal contract's Job fields the monitor reads, driven by the test."""

    id: str
    state: str = "running"
    objects_checked: int = 0
    repaired: int = 0
    bytes_checked: int = 0
    unrepairable: int = 0
    error: str = ""

    def to_json(self) -> dict:
        return {"id": self.id, "state": self.state}


@dataclass
class ScriptedHealer:
    """Stands in for the heal service (another component) so the monitor's tracker logic can
    be driven step by step; the real one is exercised in test_disk_cli_heal.py."""

    jobs: list[ScriptedJob] = field(default_factory=list)

    monitor: object = None
    returned: list[str] = field(default_factory=list)

    def use_monitor(self, monitor) -> None:
        self.monitor = monitor

    def disk_online(self, disk_id: str) -> None:
        self.returned.append(disk_id)

    async def wait(self, job_id: str, timeout: float | None = None) -> ScriptedJob:
        return self.job(job_id)

    def start_repair(self, bucket=None, key=None) -> ScriptedJob:
        assert bucket is None and key is None  # healing a disk repairs everything
        self.jobs.append(ScriptedJob(f"job{len(self.jobs)}"))
        return self.jobs[-1]

    def job(self, job_id: str) -> ScriptedJob | None:
        return next((j for j in self.jobs if j.id == job_id), None)


async def test_foreign_and_unknown_directories_are_never_written(tmp_path):
    other = tmp_path / "other"
    ostore, omon, _ = await setup(other)
    await omon.stop()
    await ostore.close()
    store, monitor, _ = await setup(tmp_path / "mine")
    try:
        victim = tmp_path / "mine" / "disk2"
        shutil.rmtree(victim)
        shutil.copytree(other / "disk2", victim)  # a disk of another set
        foreign = (victim / FORMAT_FILE).read_bytes()
        await monitor.check_all()
        assert states(monitor)[2] == "offline"
        assert "another set" in store.diskset.slots[2].problem
        assert (victim / FORMAT_FILE).read_bytes() == foreign
        shutil.rmtree(victim)
        victim.mkdir()
        (victim / "holiday.jpg").write_bytes(b"not ours")
        await monitor.check_all()
        assert "not empty" in store.diskset.slots[2].problem
        assert sorted(p.name for p in victim.iterdir()) == ["holiday.jpg"]
    finally:
        await monitor.stop()
        await store.close()


async def test_an_empty_directory_given_at_start_up_is_formatted(tmp_path):
    store, monitor, _ = await setup(tmp_path)
    data = await put(store, "k")
    await monitor.stop()
    await store.close()
    shutil.rmtree(tmp_path / "disk5")
    (tmp_path / "disk5").mkdir()
    store = await open_store(tmp_path, N)
    try:
        assert not store.diskset.slots[5].online  # DiskSet.open leaves it alone
        monitor = DiskMonitor(store, FAST)
        await monitor.start(background=False)
        assert states(monitor)[5] == "offline"
        await monitor.check_all()
        assert states(monitor)[5] == "healing"
        assert await get(store, "k") == data
    finally:
        await monitor.stop()
        await store.close()


async def test_the_background_loop_notices_a_wipe_on_its_own(tmp_path):
    store, monitor, _ = await setup(tmp_path)
    await monitor.stop()
    monitor = DiskMonitor(store, FAST)
    await monitor.start()
    try:
        for entry in (tmp_path / "disk4").iterdir():  # wiped: all but the probe's temp dir
            if entry.name != ".s3free.tmp":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        deadline = time.monotonic() + 5
        while states(monitor)[4] != "healing" and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert states(monitor)[4] == "healing"
    finally:
        await monitor.stop()
        await store.close()


async def test_status_reports_every_disk(tmp_path):
    store, monitor, _ = await setup(tmp_path)
    try:
        for i in range(5):
            await put(store, f"s{i}")
        status = await monitor.status()
        assert (status["k"], status["m"]) == (4, 2)
        total_parts = 0
        for i, disk in enumerate(status["disks"]):
            assert disk["position"] == i and disk["state"] == "online"
            assert disk["path"] == str(tmp_path / f"disk{i}")
            assert disk["format"] == "ok" and disk["errors"] == 0
            assert disk["total_bytes"] >= disk["used_bytes"] > 0
            assert disk["shards"]["exact"]
            on_disk = len(list((tmp_path / f"disk{i}" / "objects").rglob("part.*")))
            assert disk["shards"]["shard_files"] == on_disk
            total_parts += on_disk
        assert total_parts == 5 * N
        json.dumps(status)
    finally:
        await monitor.stop()
        await store.close()


def test_shard_count_estimates_when_out_of_time(tmp_path):
    for i in range(40):
        d = tmp_path / "objects" / f"{i:02x}" / "ab" / f"{i:032x}" / ("0" * 32)
        d.mkdir(parents=True)
        (d / "manifest").write_bytes(b"")
        (d / "part.00001").write_bytes(b"")
        (d / "part.00002").write_bytes(b"")
    exact = count_shards(tmp_path, budget_s=10)
    assert (exact.shard_files, exact.manifests, exact.exact) == (80, 40, True)
    rough = count_shards(tmp_path, budget_s=0)
    assert not rough.exact and rough.prefixes_done == 1 and rough.prefixes_total == 40
    assert rough.shard_files == 80 and rough.manifests == 40  # uniform here: exact scale-up


async def test_a_second_opener_is_refused_and_the_index_kept(tmp_path):
    store = await open_store(tmp_path, N)
    await store.create_bucket(BUCKET)
    try:
        with pytest.raises(StoreInUse, match="in use"):
            await open_store(tmp_path, N)
        assert sorted(p.name for p in tmp_path.iterdir() if "corrupt" in p.name) == []
    finally:
        await store.close()
    again = await open_store(tmp_path, N)  # released on close
    assert [b.name for b in await again.list_buckets()] == [BUCKET]
    await again.close()


async def test_versions_replaced_while_a_disk_was_away_are_removed_when_it_returns(tmp_path):
    """An overwrite and a delete while a disk is offline leave the old versions' files on that
    disk (and their journal entries, which keep the scrubber off them). When the disk comes
    back, the store finishes the removals at once, not at the next start-up."""

    store, monitor, _ = await setup(tmp_path)
    try:
        await put(store, "over")
        await put(store, "gone")
        old = {k: await store.get_manifest(BUCKET, k) for k in ("over", "gone")}
        position = next(  # a disk holding a shard of both
            s.position
            for s in store.diskset.slots
            if all(s.disk_id in m.placement for m in old.values())
        )
        root = tmp_path / f"disk{position}"

        def files_of(manifest) -> list[Path]:
            vhex = manifest.version_hex
            return [
                p
                for p in (root / version_dir(manifest.object_id, vhex),
                          root / inline_path(manifest.object_id, vhex))
                if p.exists()
            ]  # fmt: skip

        assert all(files_of(m) for m in old.values())
        fmt = root / FORMAT_FILE
        saved = fmt.read_bytes()
        fmt.unlink()
        await monitor.check_all()
        assert not store.diskset.slots[position].online
        await put(store, "over")  # replaces the old version
        assert await store.delete_object(BUCKET, "gone")
        await store.wait_idle()
        assert all(files_of(m) for m in old.values())  # out of reach while it is away
        journal = {vid for vid, _ in await store.run_io(store.index.journal)}
        assert {m.version_id for m in old.values()} <= journal
        fmt.write_bytes(saved)
        await monitor.check_all()
        assert store.diskset.slots[position].online
        assert not any(files_of(m) for m in old.values())
        journal = {vid for vid, _ in await store.run_io(store.index.journal)}
        assert not {m.version_id for m in old.values()} & journal
        assert await get(store, "over") == data_for("over")
    finally:
        await monitor.stop()
        await store.close()
