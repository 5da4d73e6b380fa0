"""A shard file on a disk: where a version's is, an inline version's file addressed as a shard
file of its own (spec 8.5: its records follow the manifest envelope in the one file), and the
errors that say why a shard cannot serve a block (each with its FaultKind)."""

from __future__ import annotations

from s3free.engine.types import FaultKind
from s3free.format.errors import FormatError
from s3free.format.manifest import Manifest, envelope_length
from s3free.storage.disk import ReadHandle
from s3free.storage.layout import shard_file

# An inline manifest file is read whole when it is at most this big (one read serves it all).
INLINE_READ = 256 * 1024


def shard_file_path(manifest: Manifest, part_number: int) -> str:
    """Where a version's shard file for a part is on a disk (spec 3): its part file, or for an
    inline version the version's one file, whose records follow the manifest envelope."""
    vhex = manifest.version_hex
    return shard_file(manifest.object_id, vhex, part_number, manifest.inline)


class InlineRecords:
    """A whole inline manifest file read into memory (one open and read), its records addressed
    as a shard file of their own (offset 0 = the first record)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._base = envelope_length(data)

    def read_at(self, offset: int, length: int) -> bytes:
        start = self._base + offset
        return self._data[start : start + length]

    def size(self) -> int:
        return len(self._data) - self._base

    def close(self) -> None:
        pass


class InlineShardHandle:
    """The records of an inline manifest file, addressed as if they were a shard file of their
    own (offset 0 = the first record): the envelope's length is read from the file itself, so
    a copy rewritten with another generation is still found right. For a file too large to
    read whole in one go (InlineRecords is the usual case)."""

    def __init__(self, inner: ReadHandle) -> None:
        self._inner = inner
        size = inner.size()
        self._head = inner.read_at(0, min(size, INLINE_READ))
        try:
            self._base = envelope_length(self._head)
        except FormatError:
            if size <= INLINE_READ:
                raise
            self._head = inner.read_at(0, size)  # a very large envelope: metadata-heavy
            self._base = envelope_length(self._head)

    def read_at(self, offset: int, length: int) -> bytes:
        start = self._base + offset
        if start + length <= len(self._head):
            return self._head[start : start + length]
        return self._inner.read_at(start, length)

    def size(self) -> int:
        return self._inner.size() - self._base

    def close(self) -> None:
        self._inner.close()


class ShardProblem(Exception):
    """Why a shard cannot serve a block: its kind, and the words the fault carries."""

    def __init__(self, kind: FaultKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ShardUnusable(ShardProblem):
    """The whole shard file cannot be used (missing, disk offline, cannot open); `offline`
    when only because its disk is out of service (it may come back)."""

    def __init__(self, kind: FaultKind, message: str, *, offline: bool = False) -> None:
        super().__init__(kind, message)
        self.offline = offline


class ShardBad(ShardProblem):
    """This record of the shard failed a check."""
