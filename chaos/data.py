"""Object contents derived from a seed, the dataset of mixed sizes, and what was acknowledged.

Contents are never kept: byte range [a, b) of (key, gen) is recomputed from SHAKE-256 of the
seed, key, generation and a chunk number, so a verifier compares a stream against the
generator and a writer streams it out, whatever the object's size.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

CHUNK = 64 * 1024
KIB = 1024
MIB = 1024 * 1024


def _chunk(seed: int, key: str, gen: int, index: int) -> bytes:
    return hashlib.shake_256(f"{seed}\x00{key}\x00{gen}\x00{index}".encode()).digest(CHUNK)


@dataclass(frozen=True)
class Version:
    """One write of one key: its bytes are a function of (seed, key, gen, size)."""

    key: str
    gen: int
    size: int
    parts: tuple[int, ...] = ()  # part sizes for a multipart write; () for a single PUT
    seed: int = 0

    def read(self, offset: int, length: int) -> bytes:
        """Bytes offset..offset+length of the content (clipped to the size)."""
        end = min(self.size, offset + length)
        out = []
        while offset < end:
            index, within = divmod(offset, CHUNK)
            take = min(CHUNK - within, end - offset)
            out.append(_chunk(self.seed, self.key, self.gen, index)[within : within + take])
            offset += take
        return b"".join(out)

    def chunks(self, start: int = 0, end: int | None = None, size: int = CHUNK) -> Iterator[bytes]:
        end = self.size if end is None else end
        for at in range(start, end, size):
            yield self.read(at, min(size, end - at))

    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        for piece in self.chunks(start, end):
            yield piece

    def part_ranges(self) -> list[tuple[int, int]]:
        out, at = [], 0
        for size in self.parts:
            out.append((at, at + size))
            at += size
        return out

    def etag(self) -> str:
        """The S3 ETag this version must have (MD5, or MD5 of part MD5s "-N")."""
        if not self.parts:
            digest = hashlib.md5()
            for piece in self.chunks():
                digest.update(piece)
            return digest.hexdigest()
        md5s = b""
        for a, b in self.part_ranges():
            digest = hashlib.md5()
            for piece in self.chunks(a, b):
                digest.update(piece)
            md5s += digest.digest()
        return f"{hashlib.md5(md5s).hexdigest()}-{len(self.parts)}"

    def file(self, start: int = 0, end: int | None = None) -> GeneratedFile:
        return GeneratedFile(self, start, self.size if end is None else end)


class GeneratedFile(io.RawIOBase):
    """A seekable read-only file over a byte range of a Version (for boto3 uploads)."""

    def __init__(self, version: Version, start: int, end: int) -> None:
        super().__init__()
        self._v, self._start, self._end, self._pos = version, start, end, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def __len__(self) -> int:
        return self._end - self._start

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        want = min(len(buffer), len(self) - self._pos, 4 * MIB)
        if want <= 0:
            return 0
        data = self._v.read(self._start + self._pos, want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


class Matcher:
    """Compares a stream of chunks against a Version incrementally (no copy kept)."""

    def __init__(self, version: Version) -> None:
        self.version = version
        self.got = 0
        self.error = ""

    def feed(self, chunk: bytes | memoryview) -> bool:
        if self.error:
            return False
        if self.got + len(chunk) > self.version.size:
            self.error = f"more than {self.version.size} bytes"
            return False
        if bytes(chunk) != self.version.read(self.got, len(chunk)):
            self.error = f"bytes differ in {self.got}..{self.got + len(chunk)}"
            return False
        self.got += len(chunk)
        return True

    def finish(self) -> str:
        """ "" when the stream was exactly the version's bytes, else what was wrong."""
        if not self.error and self.got != self.version.size:
            self.error = f"{self.got} bytes, expected {self.version.size}"
        return self.error


@dataclass(frozen=True)
class Profile:
    """How big a run is: the set's shape, block size and object sizes."""

    name: str
    disks: int
    k: int
    m: int
    block_size: int
    big: int  # "several MiB"
    copies: int  # objects per size class
    multipart: tuple[int, ...]  # part sizes

    def sizes(self) -> list[tuple[str, int]]:
        b = self.block_size
        return [
            ("empty", 0),
            ("one-byte", 1),
            ("small-3k", 3 * KIB),
            ("small-5k", 5 * KIB + 7),
            ("small-40k", 40 * KIB),
            ("block-minus-1", b - 1),
            ("block", b),
            ("block-plus-1", b + 1),
            ("big", self.big),
        ]


FAST = Profile("fast", 6, 4, 2, 64 * KIB, 2 * MIB + 5, 1, (70 * KIB, 64 * KIB, 1000))
LONG = Profile("long", 6, 4, 2, 1 * MIB, 8 * MIB + 3, 3, (5 * MIB, 5 * MIB, 123_457))


@dataclass
class Acks:
    """What a writer told its client: acknowledged versions per key, and writes in flight.

    After a crash a key may hold its last acknowledged version or the result of the one write
    in flight on it; a key never written must not be visible at all."""

    done: dict[str, Version] = field(default_factory=dict)
    inflight: dict[str, Version] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # key -> error of a refused write

    def begin(self, version: Version) -> None:
        self.inflight[version.key] = version

    def ack(self, version: Version) -> None:
        self.inflight.pop(version.key, None)
        self.done[version.key] = version

    def fail(self, version: Version, error: str) -> None:
        self.inflight.pop(version.key, None)
        self.failed[version.key] = error

    def allowed(self, key: str) -> list[Version | None]:
        """The states key may be found in: its acked version (or absent), or the in-flight
        one."""
        out: list[Version | None] = [self.done.get(key)]
        if key in self.inflight:
            out.append(self.inflight[key])
        return out

    @property
    def keys(self) -> set[str]:
        return set(self.done) | set(self.inflight)


def dataset(profile: Profile, seed: int, gen: int = 1) -> list[Version]:
    """The mixed-size objects every scenario writes (two objects share each size, so a swap
    between them passes every length check and only the ids can catch it)."""
    out = []
    for copy in range(profile.copies):
        for name, size in profile.sizes():
            for twin in ("a", "b") if copy == 0 else ("a",):
                out.append(Version(f"{name}/{copy}{twin}", gen, size, seed=seed))
        parts = profile.multipart
        out.append(Version(f"multipart/{copy}", gen, sum(parts), parts=parts, seed=seed))
    return out
