"""Small-file I/O on several disks in one call: a 4 KiB GET reads k inline files and a 4 KiB
PUT creates k+m, and doing each open, read, write and close from Python costs a GIL handoff
with the event loop per system call (see _batchio.c). Here the plain local disks of a batch
go to the C helper together, with the GIL released once; any other disk (a test's fault
injector, say) takes its own method, so injected faults still happen where they are meant to.

Results are per item, in order: the data or None, or the OSError that call raised, which is
also reported to the disk's monitor (error accounting and I/O metrics) exactly as a call
through `MonitoredDisk` would have been. Without the C helper the same calls run in Python.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

from s3free.obs.stage import DISK_READ, DISK_WRITE, stage
from s3free.storage.disk import Disk, LocalDisk
from s3free.storage.layout import FORMAT_FILE
from s3free.storage.monitored import MonitoredDisk, unwrap

try:
    from s3free.storage import _batchio
except ImportError:  # not compiled here: the Python versions below give the same results
    _batchio = None  # type: ignore[assignment]  # None: no C helper (checked before each use)

Chunks = list[bytes | memoryview]


def native() -> bool:
    """Whether the C helper is in use."""
    return _batchio is not None


def read_heads(items: Sequence[tuple[Disk, str]], limit: int) -> list[bytes | OSError]:
    """For each (disk, rel): the file's first `limit` bytes (all of it when shorter), or the
    OSError reading it raised."""
    results: list[bytes | OSError | None] = [None] * len(items)
    direct: list[tuple[int, bytes]] = []  # (index, absolute path) on plain local disks
    for i, (disk, rel) in enumerate(items):
        path = _plain_path(disk, rel)
        if path is not None:
            direct.append((i, path))
            continue
        try:
            results[i] = disk.read_head(rel, limit)
        except OSError as exc:
            results[i] = exc
    if direct:
        paths = [path for _, path in direct]
        start = perf_counter()
        with stage(DISK_READ):
            if _batchio is not None:
                raw = _batchio.read_heads(paths, limit)
            else:
                raw = [
                    _errno_of(unwrap(items[i][0]).read_head, items[i][1], limit) for i, _ in direct
                ]
        share = (perf_counter() - start) / len(direct)
        for (i, path), outcome in zip(direct, raw, strict=True):
            result = _error(outcome, path) if isinstance(outcome, int) else outcome
            results[i] = result
            _account(items[i][0], "read_head", share, result)
    return results  # type: ignore[return-value]


def read_heads_cached(items: Sequence[tuple[Disk, str]], limit: int) -> list[bytes | OSError]:
    """`read_heads` from memory alone, safe on the event loop: what would wait for a disk
    (a name or page not cached, a disk other than a plain local one, no C helper) comes
    back as BlockingIOError, for the caller to read in a thread instead."""
    paths = [p for disk, rel in items if (p := _plain_path(disk, rel)) is not None]
    if _batchio is None or len(paths) < len(items):
        return [BlockingIOError(errno.EAGAIN, "not read from memory")] * len(items)
    start = perf_counter()
    with stage(DISK_READ):
        raw = _batchio.read_heads_cached(paths, limit)
    share = (perf_counter() - start) / len(items)
    results: list[bytes | OSError] = []
    for (disk, _), path, outcome in zip(items, paths, raw, strict=True):
        result = _error(outcome, path) if isinstance(outcome, int) else outcome
        results.append(result)
        if not isinstance(result, BlockingIOError):
            _account(disk, "read_head", share, result)
    return results


def create_files(items: Sequence[tuple[Disk, str, Chunks]]) -> list[OSError | None]:
    """For each (disk, rel, chunks): create rel, which must not exist, with its directories,
    and write the chunks, without fsync (Disk.create_file); None or the OSError raised. A
    file whose write failed is removed."""
    results: list[OSError | None] = [None] * len(items)
    direct: list[tuple[int, bytes, int]] = []  # (index, absolute path, its root's length)
    for i, (disk, rel, chunks) in enumerate(items):
        root = _local_root(disk)
        if root is not None:
            direct.append((i, os.fsencode(os.path.join(root, rel)), len(os.fsencode(root))))
            continue
        try:
            disk.create_file(rel, chunks)
        except OSError as exc:
            results[i] = exc
    if direct:
        start = perf_counter()
        with stage(DISK_WRITE):
            if _batchio is not None:
                raw = _batchio.create_files(
                    [root for _, _, root in direct],
                    [path for _, path, _ in direct],
                    [list(items[i][2]) for i, _, _ in direct],
                    FORMAT_FILE.encode(),
                )
            else:
                raw = [
                    _errno_of(unwrap(items[i][0]).create_file, items[i][1], items[i][2]) or 0
                    for i, _, _ in direct
                ]
        share = (perf_counter() - start) / len(direct)
        for (i, path, _), code in zip(direct, raw, strict=True):
            error = _error(code, path) if code else None
            results[i] = error
            _account(items[i][0], "create_file", share, error)
    return results


def _local_root(disk: Disk) -> str | None:
    """The root of a plain local disk (under any monitors), or None for any other kind."""
    disk = unwrap(disk)
    return disk._root if type(disk) is LocalDisk else None


def _plain_path(disk: Disk, rel: str) -> bytes | None:
    """rel's absolute path on a plain local disk, or None for any other kind of disk."""
    root = _local_root(disk)
    return None if root is None else os.fsencode(os.path.join(root, rel))


def _account(disk: Disk, op: str, seconds: float, outcome: object) -> None:
    """Tell each monitor wrapping the disk what the call did, outermost first."""
    error = outcome if isinstance(outcome, OSError) else None
    while isinstance(disk, MonitoredDisk):
        disk.account(op, seconds, error)
        disk = disk.inner


def _error(code: int, path: bytes) -> OSError:
    return OSError(code, os.strerror(code), os.fsdecode(path))


def _errno_of(call: Callable[..., object], *args: object) -> Any:
    """call(*args), or the errno it failed with (what the C helper returns)."""
    try:
        return call(*args)
    except OSError as exc:
        return exc.errno or errno.EIO
