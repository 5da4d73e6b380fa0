"""A disk wrapper that reports every OSError its calls raise, so disk health can be judged
from the I/O the engine really does (MinIO's health-checking StorageAPI wrapper, made small).

    disk = MonitoredDisk(LocalDisk(path), on_error)    # on_error(op, exc), from any thread

The wrapper changes nothing else: each call is passed through and its error re-raised after
the report. `on_error` runs in the calling thread (usually the store's executor) and must be
quick and thread-safe. Which errors mean "the device is failing" is decided by `classify`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

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

ErrorReport = Callable[[str, OSError], None]


def classify(exc: OSError) -> str:
    """ "hard" (counts toward offline), "suspect" (probe soon) or "soft" (counted only:
    ENOSPC, EACCES, anything else)."""
    if exc.errno in HARD_ERRNOS:
        return "hard"
    if exc.errno in SUSPECT_ERRNOS:
        return "suspect"
    return "soft"


class MonitoredDisk:
    """Passes every Disk call through to `inner`, reporting OSErrors to `on_error`."""

    def __init__(self, inner, on_error: ErrorReport) -> None:
        self.inner = inner
        self.root: Path = inner.root
        self._on_error = on_error

    def __repr__(self) -> str:
        return f"MonitoredDisk({self.inner!r})"

    def _call(self, op: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            self._on_error(op, exc)
            raise

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
