"""A full disk is read-only, not offline (issue 12, items 5 and 10), on the real engine and real
files: ENOSPC comes from the FaultyDisk wrapper (the probe's own write and every data write),
so the monitor must keep the disk in service: reads exact, deletes free the files, writes get
StorageFull naming the free space, and the disk takes writes again once space is back. A
repair that fails for want of room waits for the disk; it is never recorded unrepairable.
"""

from __future__ import annotations

import asyncio
import errno
import random
from pathlib import Path

import pytest

from s3free.engine.diskmonitor import DiskMonitor, MonitorConfig
from s3free.errors import InsufficientWriteQuorum, StorageFull
from s3free.heal import HealService
from s3free.states import ProbeStatus
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk
from s3free.storage.health import Probe
from s3free.storage.layout import version_dir
from tests.support.engine import SMALL_BLOCK, disk_paths, open_store, stream_of
from tests.support.heal import config

BUCKET = "full"
FAST = MonitorConfig(probe_s=0.05, error_limit=3, error_window_s=10, cooldown_s=0.3)
WRITES = ("create_temp", "write", "write_file", "create_file")


def data_for(key: str, size: int = 3 * SMALL_BLOCK + 11) -> bytes:
    return random.Random(key).randbytes(size)


async def setup(root: Path, n: int, k: int, m: int, *, background: bool = False):
    disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(root, n)]
    store = await open_store(root, n, disks=disks, k=k, m=m)
    await store.create_bucket(BUCKET)
    monitor = DiskMonitor(store, FAST)
    await monitor.start(background=background)
    return store, monitor, disks


def fill(disk: FaultyDisk) -> None:
    """Every write on the disk fails as on a full filesystem; reads and removes still work."""
    for op in WRITES:
        disk.fail(op, errno.ENOSPC)


def states(monitor: DiskMonitor) -> list[str]:
    return [monitor.state(s) for s in monitor.diskset.slots]


async def until(predicate, seconds: float = 30.0) -> None:
    """Poll an async predicate with a deadline (no timed assertion: a generous bound)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_full_disks_stay_in_service_for_reads_and_deletes(tmp_path):
    store, monitor, disks = await setup(tmp_path, 6, 4, 2)
    try:
        objects = {}
        for i in range(6):
            objects[f"k{i}"] = data_for(f"k{i}")
            await store.put_object(BUCKET, f"k{i}", stream_of(objects[f"k{i}"]))
        for disk in disks:
            fill(disk)
        await monitor.check_all()  # the probe's write fails with ENOSPC on every disk
        assert states(monitor) == ["full"] * 6
        assert all(s.online and "ENOSPC" in s.full for s in store.diskset.slots)
        for key, data in objects.items():
            assert await store.get_object_bytes(BUCKET, key) == data
        with pytest.raises(StorageFull) as caught:
            body = data_for("new", 400_000)
            await store.put_object(BUCKET, "new", stream_of(body), expected_size=len(body))
        text = str(caught.value)
        assert "storage full" in text and "free of" in text and "disk 5" in text
        assert "needs about 97.7 KiB on each of 5 disks" in text
        # A delete frees the files on every (full) disk.
        manifest = await store.get_manifest(BUCKET, "k0")
        vdir = version_dir(manifest.object_id, manifest.version_hex)
        assert all((Path(d.root) / vdir).exists() for d in disks)
        assert await store.delete_object(BUCKET, "k0") is True
        await store.wait_idle()
        assert not any((Path(d.root) / vdir).exists() for d in disks)
        del objects["k0"]
        assert states(monitor) == ["full"] * 6  # nothing took a disk offline meanwhile
        # Space back: writable again at the next probe.
        for disk in disks:
            disk.heal()
        await monitor.check_all()
        assert states(monitor) == ["online"] * 6
        objects["after"] = data_for("after")
        await store.put_object(BUCKET, "after", stream_of(objects["after"]))
        for key, data in objects.items():
            assert await store.get_object_bytes(BUCKET, key) == data
    finally:
        await monitor.stop()
        await store.close()


async def test_a_write_short_of_quorum_for_an_offline_disk_stays_retryable(tmp_path):
    """Full disks alone do not make every quorum miss a StorageFull: with one disk full and
    two offline in RS(4,2) (quorum 5), bringing the offline disks back would do, so the
    error stays the retryable one."""

    store, monitor, disks = await setup(tmp_path, 6, 4, 2)
    try:
        fill(disks[0])
        for j in (1, 2):
            disks[j].fail("read_file", errno.EIO)  # the probe cannot read format.json
        await monitor.check_all()
        assert states(monitor)[:3] == ["full", "offline", "offline"]
        with pytest.raises(InsufficientWriteQuorum) as caught:
            await store.put_object(BUCKET, "x", stream_of(data_for("x")))
        assert not isinstance(caught.value, StorageFull)
    finally:
        await monitor.stop()
        await store.close()


async def test_full_comes_and_goes_with_hysteresis(tmp_path):
    """Below the reserve (1% here) a disk is full; it takes writes again only from twice the
    reserve, so it does not flap at the edge."""

    store, monitor, _ = await setup(tmp_path, 3, 2, 1)
    try:
        slot = store.diskset.slots[0]
        total = 100 << 20  # reserve 1 MiB
        ok = Probe(ProbeStatus.OK)
        for free, full in [
            (3 << 20, False),
            (900 << 10, True),  # below the reserve
            (1500 << 10, True),  # above it, below twice it: still full
            (2100 << 10, False),  # back
            (1500 << 10, False),  # between the two from below: writable
        ]:
            monitor._judge_full(slot, ok, (total - free, total))
            assert bool(slot.full) is full, (free, slot.full)
            assert monitor.state(slot) == ("full" if full else "online")
        monitor._judge_full(slot, Probe(ProbeStatus.FULL, "no space for the probe file"), None)
        assert monitor.state(slot) == "full"
    finally:
        await monitor.stop()
        await store.close()


async def test_a_repair_that_fails_for_want_of_room_waits_for_the_disk(tmp_path):
    """Issue 12 item 10: the repair of a version whose missing shard belongs on a full disk
    fails with ENOSPC; it must wait for the disk (and be repaired once space is back), not
    be retried into an "unrepairable" record."""

    store, monitor, disks = await setup(tmp_path, 5, 3, 2, background=True)
    heal = HealService(store, config(retry_backoff_s=0.02, repair_retries=1))
    await heal.start()
    monitor.attach_healer(heal)
    try:
        data = data_for("r")
        await store.put_object(BUCKET, "r", stream_of(data))
        manifest = await store.get_manifest(BUCKET, "r")
        target = store.diskset.slot_for(manifest.placement[0])
        fill(disks[target.position])
        await until(lambda: _is_full(target))
        for path in (Path(target.disk.root) / "objects").rglob("part.*"):
            path.unlink()  # the shard the repair must rewrite on the full disk
        assert await store.get_object_bytes(BUCKET, "r") == data  # reports the fault
        await until(lambda: _waits(heal, ("full", "r", manifest.version_id)))
        await asyncio.sleep(0.2)  # time for retries, had it been queued for them
        assert heal.unrepairable == {}
        assert heal.degraded()["waiting"] == 1
        disks[target.position].heal()  # space back: the next probe clears "full"
        await until(lambda: _repaired(heal), 60)
        assert heal.unrepairable == {}
        assert await store.get_object_bytes(BUCKET, "r") == data
    finally:
        await heal.stop()
        await monitor.stop()
        await store.close()


async def _is_full(slot) -> bool:
    return bool(slot.full)


async def _waits(heal: HealService, ident) -> bool:
    await heal._flush()
    return heal.degraded()["waiting"] == 1


async def _repaired(heal: HealService) -> bool:
    health = await heal.verify(BUCKET, "r")
    return not health.needs_repair and heal.degraded()["objects"] == 0
