"""One disk: a directory on one mount, and the narrow set of calls the engine makes on it.

Every call is blocking and is run off the event loop by the caller. `Disk` is the contract;
`LocalDisk` is the real thing; `s3free.storage.faulty.FaultyDisk` stands in front of one and
raises EIO/ENOSPC on the calls a test picks. All paths are relative to the disk root and use "/".

Durability rule: a file becomes visible under its final name only by `TempFile.commit`, which
writes, fsyncs, renames, and fsyncs the directory, so a crash leaves the old name, the new
name, or a temp file under TMP_DIR (which `clean_temp` removes at start-up) and never a
half-written file under a final name.

Group commit: `commit(rel, sync=False)` and `write_file(rel, data, sync=False)` skip the fsyncs;
the caller then calls `sync()` (one syncfs of the disk's filesystem, shared by every write in
flight) before anything depends on those files. Until that returns, a crash may leave a
file under its final name torn or empty; the engine only ever does this for files that nothing
refers to yet (shards before their manifest, a manifest before the index switch).
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol

from s3free.storage.layout import FORMAT_FILE

TMP_DIR = ".s3free.tmp"

# Start the device writing a temp file's pages once this many are dirty, so that the fsync in
# commit() finds most of the file already on its way instead of all of it (Linux only).
WRITEBACK_EVERY = 8 * 1024 * 1024


def _load_sync_file_range():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


class TempFile(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...
    def writev(self, chunks: list[bytes | memoryview]) -> None: ...
    def commit(self, rel: str, sync: bool = True) -> None: ...
    def discard(self) -> None: ...


class ReadHandle(Protocol):
    def read_at(self, offset: int, length: int) -> bytes: ...
    def size(self) -> int: ...
    def close(self) -> None: ...


class Disk(Protocol):
    root: Path

    def create_temp(self) -> TempFile: ...
    def write_file(self, rel: str, data: bytes, sync: bool = True) -> None: ...
    def create_file(self, rel: str, chunks: list[bytes | memoryview]) -> None: ...
    def sync(self) -> None: ...
    def read_file(self, rel: str) -> bytes: ...
    def read_head(self, rel: str, limit: int) -> bytes: ...
    def open_read(self, rel: str) -> ReadHandle: ...
    def exists(self, rel: str) -> bool: ...
    def makedirs(self, rel: str, sync: bool = True) -> None: ...
    def list_dir(self, rel: str) -> list[str]: ...
    def rename(self, src: str, dst: str, sync: bool = True) -> None: ...
    def move_files(self, pairs: list[tuple[str, str]]) -> None: ...
    def remove(self, rel: str) -> None: ...
    def remove_tree(self, rel: str) -> None: ...
    def fsync_dir(self, rel: str) -> None: ...
    def clean_temp(self) -> int: ...
    def usage(self) -> tuple[int, int]: ...


class LocalDisk:
    """A disk backed by a local directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._root = str(self.root)  # for the hot paths: os.path.join is cheaper than Path

    def __repr__(self) -> str:
        return f"LocalDisk({str(self.root)!r})"

    def _abs(self, rel: str) -> Path:
        return self.root / rel

    # -- writing -----------------------------------------------------------------------------

    def create_temp(self) -> LocalTempFile:
        tmp_dir = self.root / TMP_DIR
        path = tmp_dir / uuid.uuid4().hex
        try:
            return LocalTempFile(self, path)
        except FileNotFoundError:  # first use, or removed behind our back: make it and retry
            tmp_dir.mkdir(exist_ok=True)
            return LocalTempFile(self, path)

    def write_file(self, rel: str, data: bytes, sync: bool = True) -> None:
        temp = self.create_temp()
        try:
            temp.write(data)
            temp.commit(rel, sync=sync)
        except BaseException:
            temp.discard()
            raise

    def create_file(self, rel: str, chunks: list[bytes | memoryview]) -> None:
        """Write a file that must not exist yet straight under its final name, creating its
        directories, with no fsync: the caller group-syncs the disk before anything refers to
        it. Only for names nothing else can hold (a new version's directory): a crash may
        leave it torn, which its own checksums then reveal. On error nothing is left."""
        path = self._abs(rel)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            self.makedirs(str(Path(rel).parent), sync=False)
            fd = os.open(path, flags, 0o644)
        try:
            total = sum(len(c) for c in chunks)
            written = os.writev(fd, chunks)
            if written != total:
                rest = b"".join(bytes(c) for c in chunks)[written:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)

    def sync(self) -> None:
        """Make every completed write on this disk's filesystem durable (syncfs): the group
        commit that `sync=False` writes wait for."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _syncfs(fd)
        finally:
            os.close(fd)

    def makedirs(self, rel: str, sync: bool = True) -> None:
        """Create rel and any missing parents, fsyncing each parent that gained an entry
        (unless sync=False: the caller syncs the disk), so a committed file is never lost
        with a directory that was not yet durable."""
        # mkdir first and climb only on ENOENT: the common case (parents exist) is one call.
        missing: list[Path] = []
        path = self._abs(rel)
        while True:
            # A top-level directory (data, quarantine) is made only while format.json is
            # there, even in one step: one made in a wiped disk makes it "not empty", and the
            # monitor then never formats it back into the set.
            if (missing and path == self.root) or (
                path.parent == self.root
                and not path.is_dir()
                and not (self.root / FORMAT_FILE).exists()
            ):
                # The disk's root, or a top-level data directory of a disk that lost its
                # format.json, is gone: the disk was wiped or swapped. Formatting makes the
                # data directories (layout.DATA_DIRS); a write to such a disk must not.
                raise FileNotFoundError(
                    errno.ENOENT, "the disk's data directory is missing (wiped?)", str(path)
                )
            try:
                os.mkdir(path)
            except FileExistsError:
                if not path.is_dir():
                    raise
                break
            except FileNotFoundError:
                if path == self.root or path.parent == path:
                    raise
                missing.append(path)
                path = path.parent
                continue
            if sync:
                _fsync_path(path.parent)
            break
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:
                continue
            if sync:
                _fsync_path(directory.parent)

    def rename(self, src: str, dst: str, sync: bool = True) -> None:
        dst_path = self._abs(dst)
        self.makedirs(str(Path(dst).parent), sync=sync)
        os.replace(self._abs(src), dst_path)
        if sync:
            _fsync_path(dst_path.parent)

    def move_files(self, pairs: list[tuple[str, str]]) -> None:
        """Rename many files, then fsync each directory touched once (not once per file).
        A source already gone whose destination exists counts as moved, so a retry after a
        crash half-way through finishes the job."""
        touched: set[Path] = set()
        for src, dst in pairs:
            dst_path = self._abs(dst)
            if dst_path.parent not in touched:
                self.makedirs(str(Path(dst).parent))
            try:
                os.replace(self._abs(src), dst_path)
            except FileNotFoundError:
                if not dst_path.exists():
                    raise
            touched.add(dst_path.parent)
            touched.add(self._abs(src).parent)
        for directory in touched:
            if directory.exists():
                _fsync_path(directory)

    def fsync_dir(self, rel: str) -> None:
        _fsync_path(self._abs(rel))

    # -- reading -----------------------------------------------------------------------------

    def read_file(self, rel: str) -> bytes:
        with open(self._abs(rel), "rb") as f:
            return f.read()

    def read_head(self, rel: str, limit: int) -> bytes:
        """The first `limit` bytes of a file (all of it if shorter): one open, one read, one
        close, for files that are usually read whole (inline versions)."""
        fd = os.open(os.path.join(self._root, rel), os.O_RDONLY)
        try:
            # Ask for what the file holds (one byte more, in case it grew), not for `limit`:
            # a read of `limit` bytes allocates that much first, however small the file.
            want = min(os.fstat(fd).st_size, limit)
            return LocalReadHandle(fd).read_at(0, want + 1 if want < limit else want)
        finally:
            os.close(fd)

    def open_read(self, rel: str) -> LocalReadHandle:
        return LocalReadHandle(os.open(self._abs(rel), os.O_RDONLY))

    def exists(self, rel: str) -> bool:
        return self._abs(rel).exists()

    def list_dir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self._abs(rel)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    # -- removing ----------------------------------------------------------------------------

    def remove(self, rel: str) -> None:
        try:
            os.unlink(self._abs(rel))
        except FileNotFoundError:
            return

    def remove_tree(self, rel: str) -> None:
        path = self._abs(rel)
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            return
        _fsync_path(path.parent)

    def clean_temp(self) -> int:
        """Remove every temp file (left by a crash); returns how many were removed."""
        tmp_dir = self.root / TMP_DIR
        removed = 0
        for name in self.list_dir(TMP_DIR):
            target = tmp_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
            removed += 1
        return removed

    def usage(self) -> tuple[int, int]:
        """(used bytes, total bytes) of the filesystem the disk lives on."""
        st = os.statvfs(self.root)
        total = st.f_blocks * st.f_frsize
        return total - st.f_bavail * st.f_frsize, total


class LocalTempFile:
    def __init__(self, disk: LocalDisk, path: Path) -> None:
        self._disk = disk
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._size = 0
        self._started = 0  # bytes whose writeback has been started

    def write(self, data: bytes | memoryview) -> None:
        self.writev([data])

    def writev(self, chunks: list[bytes | memoryview]) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "temp file already closed", str(self.path))
        total = sum(len(c) for c in chunks)
        written = os.writev(self._fd, chunks)
        if written != total:
            # Short writes are rare (signals, nearly full disks); finish them byte-exactly.
            data = b"".join(bytes(c) for c in chunks)[written:]
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
        self._size += total
        if _SYNC_FILE_RANGE is not None and self._size - self._started >= WRITEBACK_EVERY:
            # A hint only: errors surface in commit()'s fsync.
            _SYNC_FILE_RANGE(
                self._fd, self._started, self._size - self._started, _SYNC_FILE_RANGE_WRITE
            )
            self._started = self._size

    def commit(self, rel: str, sync: bool = True) -> None:
        """fsync, close, rename to rel (creating its directory durably), fsync the directory;
        with sync=False only close and rename (the caller will sync() the disk)."""
        if self._fd is None:
            raise OSError(errno.EBADF, "temp file already closed", str(self.path))
        fd, self._fd = self._fd, None
        try:
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._disk.rename(str(self.path.relative_to(self._disk.root)), rel, sync=sync)

    def discard(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self.path.unlink(missing_ok=True)


class LocalReadHandle:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def read_at(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        if len(data) == length:
            return data
        chunks = [data]
        got = len(data)
        while got < length:
            more = os.pread(self._fd, length - got, offset + got)
            if not more:
                break
            chunks.append(more)
            got += len(more)
        return b"".join(chunks)

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        os.close(self._fd)


def _load_syncfs():
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def _syncfs(fd: int) -> None:
    """syncfs(2): flush the whole filesystem holding fd, reporting writeback errors (Linux
    5.8+). Without it (not Linux), sync(2) flushes everything."""
    if _SYNCFS is None:
        os.sync()
        return
    if _SYNCFS(fd) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"syncfs failed: {os.strerror(err)}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
