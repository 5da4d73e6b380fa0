"""One process at a time per store: an exclusive flock on `<meta dir>.lock` and on every disk.

A server holds these while it runs, and so does `s3free disk`/`s3free admin` when it works
directly on the disks, so two processes never write the same disks or index at once. The
index lock alone let two servers with the same disks and different `--meta-dir` both serve:
a delete through one left a listed, unreadable ghost on the other. So each disk directory is
locked too, before anything is written to it (temp clean-up, formatting), and a disk that was
away at start, or whose directory was replaced, is locked when it comes back, before it is
used. The disk lock is a flock on the directory itself: nothing is written to the disk, so it
cannot make a fresh replacement look "not empty", and it goes with the directory's inode (a
directory removed and made again is a new one, locked again when the monitor brings it in).

The kernel drops every flock when its process dies (SIGKILL included): a lock left by a killed
server is taken over at the next start with nothing to clean up. A refusal names the holder
(pid and command, from /proc/locks) so the operator knows what to stop.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path

from s3free.errors import StoreInUse

_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class StoreLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, meta_dir: Path) -> StoreLock:
        meta_dir = Path(meta_dir)
        path = meta_dir.with_name(meta_dir.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        _flock_or_refuse(
            fd,
            path,
            lambda holder: (
                f"the store with index {meta_dir} is in use by {holder}: "
                f"{path} is locked (stop that process first)"
            ),
        )
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock


class DiskLocks:
    """The flocks this process holds on its disk directories, by path. Thread-safe: the
    monitor takes them from the I/O pool."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[int, int, int]] = {}  # root -> (fd, st_dev, st_ino)
        self._mutex = threading.Lock()

    def acquire(self, root: str | os.PathLike[str]) -> bool:
        """Lock the directory now at `root` (again, if it was replaced since). False when
        there is no directory there to lock (a disk away: lock it when it is back);
        StoreInUse when another process holds it."""
        key = str(root)
        try:
            fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            return False
        st = os.fstat(fd)
        with self._mutex:
            held = self._held.get(key)
            if held is not None and (held[1], held[2]) == (st.st_dev, st.st_ino):
                os.close(fd)
                return True
            _flock_or_refuse(
                fd,
                key,
                lambda holder: (
                    f"disk {key} is in use by {holder} (another server or s3free "
                    "command on this store?): stop it first"
                ),
            )
            if held is not None:
                os.close(held[0])  # the directory it locked was replaced
            self._held[key] = (fd, st.st_dev, st.st_ino)
            return True

    def holds(self, root: str | os.PathLike[str]) -> bool:
        """Whether the directory now at root is the one this process locked."""
        key = str(root)
        with self._mutex:
            held = self._held.get(key)
        if held is None:
            return False
        try:
            st = os.stat(key)
        except OSError:
            return False
        return (held[1], held[2]) == (st.st_dev, st.st_ino)

    def release_all(self) -> None:
        with self._mutex:
            held, self._held = self._held, {}
        for fd, _, _ in held.values():
            os.close(fd)


def _flock_or_refuse(fd: int, path: str | os.PathLike[str], refusal) -> None:
    """Take an exclusive flock on fd without waiting; when another process holds it, close
    fd and raise StoreInUse with refusal(holder) (the holder as holder_of names it)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in _BUSY:
            raise StoreInUse(refusal(holder_of(path))) from None
        raise


def holder_of(path: str | os.PathLike[str]) -> str:
    """'pid N (command)' of the process holding a flock on path, from /proc/locks; or a
    plain 'another process' when that cannot be told (another mount namespace, no /proc)."""
    try:
        st = os.stat(path)
        want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (a "->" marks a waiter)
        if "FLOCK" not in fields or "->" in fields:
            continue
        try:
            at = fields.index("FLOCK")
            pid = int(fields[at + 3])
            major, minor, inode = fields[at + 4].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) != want:
                continue
        except (ValueError, IndexError):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = ""
        return f"pid {pid}" + (f" ({cmd[:200]})" if cmd else "")
    return "another process"
