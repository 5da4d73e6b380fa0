"""Running out of file descriptors is the process's problem, never a disk's: with the soft
RLIMIT_NOFILE lowered for real so every open fails with EMFILE, the probe says "resource
exhausted, disk state unchanged", no disk goes offline and no error counts toward offline;
once descriptors are back, everything reads again. (Issue 12, item 1: a connection flood
used to take every disk offline through "format.json unreadable: [Errno 24]".)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource

import pytest

from s3free.engine.diskmonitor import DiskMonitor, MonitorConfig
from s3free.errors import StorageError
from s3free.storage.health import probe
from s3free.storage.monitored import classify, unwrap
from tests.support.engine import open_store, stream_of

N = 4
FAST = MonitorConfig(probe_s=0.05, error_limit=2, error_window_s=30, cooldown_s=0.3)


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (errno.EMFILE, "resource"),
        (errno.ENFILE, "resource"),
        (errno.ENOMEM, "resource"),
        (errno.EIO, "hard"),
        (errno.ENOENT, "suspect"),
        (errno.ENOSPC, "full"),  # a full disk: read-only, not failed
    ],
)
def test_classify_keeps_the_process_shortages_apart(err, kind):
    assert classify(OSError(err, os.strerror(err))) == kind


@contextlib.contextmanager
def no_free_descriptors():
    """Lower the soft fd limit to the lowest free descriptor number: every open, socket or
    pipe made in this process fails with EMFILE until the block ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    probe_fd = os.dup(0)
    os.close(probe_fd)
    resource.setrlimit(resource.RLIMIT_NOFILE, (probe_fd, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_emfile_neither_fails_the_probe_nor_takes_a_disk_offline(tmp_path):
    async def go():
        store = await open_store(tmp_path, N)
        monitor = DiskMonitor(store, FAST)
        await monitor.start(background=False)
        try:
            await store.create_bucket("fds")
            data = os.urandom(300_000)  # shards in files, not inline
            await store.put_object("fds", "obj", stream_of(data))
            slot0 = store.diskset.slots[0]
            with no_free_descriptors():
                direct = probe(unwrap(slot0.disk), monitor.expected_format(slot0))
                for _ in range(3):  # more than error_limit reads and probes, all EMFILE
                    with contextlib.suppress(StorageError, OSError):
                        await store.get_object_bytes("fds", "obj")
                    await monitor.check_all()
            assert direct.status == "resource", direct
            assert "resource exhausted" in direct.detail
            assert "disk state unchanged" in direct.detail
            status = await monitor.status()
            for disk in status["disks"]:
                assert disk["state"] == "online", disk
                assert disk["hard_errors"] == 0, disk
                assert disk["problem"] in ("", None), disk
            assert all(slot.online for slot in store.diskset.slots)
            assert await store.get_object_bytes("fds", "obj") == data
            await monitor.check_all()
            assert all(monitor.health[s.position].last_probe.ok for s in store.diskset.slots)
        finally:
            await monitor.stop()
            await store.close()

    await asyncio.wait_for(go(), 120)
