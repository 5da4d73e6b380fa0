"""One process at a time per store: an exclusive flock on `<meta dir>.lock`.

A server holds it while it runs, and so does `s3free disk` when it works directly on the
disks, so the two never write the same disks and index at once. The kernel drops the lock
when the process dies (SIGKILL included), so a stale lock file never blocks a restart.
LevelDB's own LOCK would refuse the second opener too, but only after the disks were opened
and cleaned; this lock is taken first.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from s3free.errors import StoreInUse


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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreInUse(
                    f"the store with index {meta_dir} is in use by another process "
                    f"(a running server?): {path} is locked"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock
