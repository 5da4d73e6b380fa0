"""A disk wrapper that reports every OSError its calls raise, so disk health can be judged
from the I/O the engine really does (MinIO's health-checking StorageAPI wrapper, made small).

    disk = MonitoredDisk(LocalDisk(path), on_error)    # on_error(op, exc), from any thread

The wrapper changes nothing else: each call is passed through and its error re-raised after
the report. `on_error` runs in the calling thread (usually the store's executor) and must be
quick and thread-safe. Which errors mean "the device is failing" is decided by `classify`.

Observability: the data calls are marked as stages (disk.read / disk.write / disk.sync, see
s3free/obs/stage.py) in the thread that does them, and when `observe_io` is set (the metrics,
s3free/obs/metrics.py) every call is timed and reported as (class, seconds, error kind or None),
class being one of IO_CLASSES. With no observer a call costs one attribute check more.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from time import perf_counter

from s3free.obs.stage import DISK_READ, DISK_SYNC, DISK_WRITE, stage
from s3free.states import DiskErrorKind

# The device or filesystem is failing: enough of these take a disk offline.
HARD_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EROFS,
        errno.ENXIO,
        errno.ENODEV,
        errno.ESTALE,
        errno.ENOTCONN,
        errno.ETIMEDOUT,
        getattr(errno, "EUCLEAN", 117),
    }
)
# A path vanished: normal for a missing shard, but also what a wiped or unmounted disk gives;
# the monitor probes the disk soon rather than counting it as a failure.
SUSPECT_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})
# No space (or quota) left: the disk is full, not failing; it stays in service for reads and
# deletes and takes no new writes until space is freed (engine/diskmonitor.py).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# The process ran out of something (file descriptors, kernel memory): nothing is known about
# the disk. Never counted toward offline and never a failed probe, or a client flood that uses
# up the descriptors would take every disk out of service at once.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})

ErrorReport = Callable[[str, OSError], None]
# (I/O class, seconds, error kind from classify() or None): called after every disk call.
IOObserver = Callable[[str, float, "DiskErrorKind | None"], None]

# The calls that move data are stages; the others (listing, renames, removes) are not.
_STAGE_OF = {
    "read_at": DISK_READ,
    "read_file": DISK_READ,
    "read_head": DISK_READ,
    "write": DISK_WRITE,
    "write_file": DISK_WRITE,
    "create_file": DISK_WRITE,
    "sync": DISK_SYNC,
    "fsync_dir": DISK_SYNC,
}
# Every call falls in one of four classes for latency metrics (a bounded label).
IO_CLASSES = ("read", "write", "sync", "meta")
_CLASS_OF = {
    "read_at": "read",
    "read_file": "read",
    "read_head": "read",
    "open_read": "read",
    "write": "write",
    "write_file": "write",
    "create_file": "write",
    "create_temp": "write",
    "commit": "write",
    "sync": "sync",
    "fsync_dir": "sync",
}
_NULL = nullcontext()


def classify(exc: OSError) -> DiskErrorKind:
    """ "hard" (counts toward offline), "suspect" (probe soon), "full" (ENOSPC, EDQUOT: no
    new writes until space is freed), "resource" (the process, not the disk, is out of
    descriptors or memory: not the disk's error) or "soft" (counted only: EACCES, anything
    else)."""
    if exc.errno in RESOURCE_ERRNOS:
        return DiskErrorKind.RESOURCE
    if exc.errno in HARD_ERRNOS:
        return DiskErrorKind.HARD
    if exc.errno in SUSPECT_ERRNOS:
        return DiskErrorKind.SUSPECT
    if exc.errno in FULL_ERRNOS:
        return DiskErrorKind.FULL
    return DiskErrorKind.SOFT


class MonitoredDisk:
    """Passes every Disk call through to `inner`, reporting OSErrors to `on_error`."""

    def __init__(self, inner, on_error: ErrorReport) -> None:
        self.inner = inner
        self.root: Path = inner.root
        self._on_error = on_error
        self.observe_io: IOObserver | None = None

    def __repr__(self) -> str:
        return f"MonitoredDisk({self.inner!r})"

    def _call(self, op: str, fn, *args, **kwargs):
        observe = self.observe_io
        name = _STAGE_OF.get(op)
        start = perf_counter() if observe is not None else 0.0
        try:
            with stage(name) if name is not None else _NULL:
                result = fn(*args, **kwargs)
        except OSError as exc:
            if observe is not None:
                observe(_CLASS_OF.get(op, "meta"), perf_counter() - start, classify(exc))
            self._on_error(op, exc)
            raise
        if observe is not None:
            observe(_CLASS_OF.get(op, "meta"), perf_counter() - start, None)
        return result

    def account(self, op: str, seconds: float, exc: OSError | None) -> None:
        """Report a call made on `inner` directly (one of a batch across disks, see
        storage/batch.py) exactly as if it had gone through this wrapper."""
        observe = self.observe_io
        if observe is not None:
            observe(_CLASS_OF.get(op, "meta"), seconds, None if exc is None else classify(exc))
        if exc is not None:
            self._on_error(op, exc)

    def create_temp(self):
        return _Temp(self, self._call("create_temp", self.inner.create_temp))

    def write_file(self, rel: str, data: bytes, sync: bool = True) -> None:
        self._call("write_file", self.inner.write_file, rel, data, sync=sync)

    def create_file(self, rel: str, chunks) -> None:
        self._call("create_file", self.inner.create_file, rel, chunks)

    def sync(self) -> None:
        self._call("sync", self.inner.sync)

    def read_file(self, rel: str) -> bytes:
        return self._call("read_file", self.inner.read_file, rel)

    def read_head(self, rel: str, limit: int) -> bytes:
        return self._call("read_head", self.inner.read_head, rel, limit)

    def open_read(self, rel: str):
        return _Reader(self, self._call("open_read", self.inner.open_read, rel))

    def exists(self, rel: str) -> bool:
        return self._call("exists", self.inner.exists, rel)

    def makedirs(self, rel: str, sync: bool = True) -> None:
        self._call("makedirs", self.inner.makedirs, rel, sync=sync)

    def list_dir(self, rel: str) -> list[str]:
        return self._call("list_dir", self.inner.list_dir, rel)

    def rename(self, src: str, dst: str, sync: bool = True) -> None:
        self._call("rename", self.inner.rename, src, dst, sync=sync)

    def move_files(self, pairs: list[tuple[str, str]]) -> None:
        self._call("move_files", self.inner.move_files, pairs)

    def remove(self, rel: str) -> None:
        self._call("remove", self.inner.remove, rel)

    def remove_tree(self, rel: str) -> None:
        self._call("remove_tree", self.inner.remove_tree, rel)

    def fsync_dir(self, rel: str) -> None:
        self._call("fsync_dir", self.inner.fsync_dir, rel)

    def clean_temp(self) -> int:
        return self._call("clean_temp", self.inner.clean_temp)

    def usage(self) -> tuple[int, int]:
        return self._call("usage", self.inner.usage)


class _Temp:
    def __init__(self, disk: MonitoredDisk, inner) -> None:
        self._disk = disk
        self._inner = inner

    def write(self, data) -> None:
        self._disk._call("write", self._inner.write, data)

    def writev(self, chunks) -> None:
        self._disk._call("write", self._inner.writev, chunks)

    def commit(self, rel: str, sync: bool = True) -> None:
        self._disk._call("commit", self._inner.commit, rel, sync=sync)

    def discard(self) -> None:
        self._inner.discard()


class _Reader:
    def __init__(self, disk: MonitoredDisk, inner) -> None:
        self._disk = disk
        self._inner = inner

    def read_at(self, offset: int, length: int) -> bytes:
        return self._disk._call("read_at", self._inner.read_at, offset, length)

    def size(self) -> int:
        return self._inner.size()

    def close(self) -> None:
        self._inner.close()


def unwrap(disk):
    """The disk under any MonitoredDisk layers (the probe talks to it directly)."""
    while isinstance(disk, MonitoredDisk):
        disk = disk.inner
    return disk
