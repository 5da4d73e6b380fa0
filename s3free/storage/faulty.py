"""A fault-injecting disk: stands in front of a real disk and fails the calls a test picks.

Used by tests and chaos scenarios to get real EIO/ENOSPC/EROFS behaviour out of the real engine
without mocking it:

    disk = FaultyDisk(LocalDisk(path))
    disk.fail("write", errno.ENOSPC)              # every temp-file write fails
    disk.fail("read_at", errno.EIO, after=3)      # the 4th and later reads fail
    disk.heal()                                   # back to normal

Operation names: create_temp, write, commit, write_file, create_file, sync, read_file, open_read,
read_at, exists, list_dir, rename, remove, remove_tree, fsync_dir (read_head is checked as
open_read then read_at).
"""

from __future__ import annotations

import errno as errno_mod
import os
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class _Rule:
    err: int
    after: int
    calls: int = 0


class FaultyDisk:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.root: Path = inner.root
        self._rules: dict[str, _Rule] = {}
        self._lock = threading.Lock()
        self.injected = 0

    def __repr__(self) -> str:
        return f"FaultyDisk({self.inner!r})"

    def fail(self, op: str, err: int = errno_mod.EIO, *, after: int = 0) -> None:
        """Make `op` raise OSError(err) from its (after+1)-th call on."""
        with self._lock:
            self._rules[op] = _Rule(err, after)

    def heal(self, op: str | None = None) -> None:
        with self._lock:
            if op is None:
                self._rules.clear()
            else:
                self._rules.pop(op, None)

    def check(self, op: str, rel: str = "") -> None:
        with self._lock:
            rule = self._rules.get(op)
            if rule is None:
                return
            rule.calls += 1
            if rule.calls <= rule.after:
                return
            self.injected += 1
        raise OSError(rule.err, f"injected {errno_mod.errorcode[rule.err]} on {op}", rel)

    # -- the Disk contract, each call checked first ---------------------------------------

    def create_temp(self):
        self.check("create_temp")
        return _FaultyTemp(self, self.inner.create_temp())

    def write_file(self, rel: str, data: bytes, sync: bool = True) -> None:
        self.check("write_file", rel)
        self.inner.write_file(rel, data, sync=sync)

    def create_file(self, rel: str, chunks) -> None:
        self.check("create_file", rel)
        self.inner.create_file(rel, chunks)

    def sync(self) -> None:
        self.check("sync")
        self.inner.sync()

    def read_file(self, rel: str) -> bytes:
        self.check("read_file", rel)
        return self.inner.read_file(rel)

    def read_head(self, rel: str, limit: int) -> bytes:
        # An open and a read: the faults of both apply.
        self.check("open_read", rel)
        self.check("read_at", rel)
        return self.inner.read_head(rel, limit)

    def open_read(self, rel: str):
        self.check("open_read", rel)
        return _FaultyReader(self, self.inner.open_read(rel), rel)

    def exists(self, rel: str) -> bool:
        self.check("exists", rel)
        return self.inner.exists(rel)

    def list_dir(self, rel: str) -> list[str]:
        self.check("list_dir", rel)
        return self.inner.list_dir(rel)

    def makedirs(self, rel: str, sync: bool = True) -> None:
        self.check("write", rel)
        self.inner.makedirs(rel, sync=sync)

    def rename(self, src: str, dst: str, sync: bool = True) -> None:
        self.check("rename", dst)
        self.inner.rename(src, dst, sync=sync)

    def move_files(self, pairs: list[tuple[str, str]]) -> None:
        self.check("rename", pairs[0][1] if pairs else "")
        self.inner.move_files(pairs)

    def remove(self, rel: str) -> None:
        self.check("remove", rel)
        self.inner.remove(rel)

    def remove_tree(self, rel: str) -> None:
        self.check("remove_tree", rel)
        self.inner.remove_tree(rel)

    def fsync_dir(self, rel: str) -> None:
        self.check("fsync_dir", rel)
        self.inner.fsync_dir(rel)

    def clean_temp(self) -> int:
        return self.inner.clean_temp()

    def usage(self) -> tuple[int, int]:
        return self.inner.usage()


class _FaultyTemp:
    def __init__(self, disk: FaultyDisk, inner) -> None:
        self._disk = disk
        self._inner = inner

    def write(self, data) -> None:
        self._disk.check("write")
        self._inner.write(data)

    def writev(self, chunks) -> None:
        self._disk.check("write")
        self._inner.writev(chunks)

    def commit(self, rel: str, sync: bool = True) -> None:
        self._disk.check("commit", rel)
        self._inner.commit(rel, sync=sync)

    def discard(self) -> None:
        self._inner.discard()


class _FaultyReader:
    def __init__(self, disk: FaultyDisk, inner, rel: str) -> None:
        self._disk = disk
        self._inner = inner
        self._rel = rel

    def read_at(self, offset: int, length: int) -> bytes:
        self._disk.check("read_at", self._rel)
        return self._inner.read_at(offset, length)

    def size(self) -> int:
        return self._inner.size()

    def close(self) -> None:
        self._inner.close()


def flip_bit(path: str | os.PathLike[str], offset: int, bit: int = 0) -> None:
    """Flip one bit of a file in place (bitrot, for tests and chaos scenarios)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        if len(byte) != 1:
            raise ValueError(f"offset {offset} is past the end of {path}")
        f.seek(offset)
        f.write(bytes([byte[0] ^ (1 << bit)]))
