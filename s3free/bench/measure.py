"""Tools the benchmarks measure with: a reproducible object stream and its checker, peak
memory and CPU time of this process, the page cache and the filesystem under a path."""

from __future__ import annotations

import os
import random
import resource
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

MiB = 1 << 20
UNIT = MiB  # the pattern's period: every MiB of the stream starts with its own counter


# -- the object's bytes ------------------------------------------------------------------------


class PatternData:
    """Deterministic bytes of any length, any range of which can be produced again to check a
    read. MiB number u is u (8 bytes, little-endian) followed by a window of a 2 MiB random
    buffer that starts at an offset depending on u."""

    def __init__(self, seed: int = 0x5EED) -> None:
        self._base = random.Random(seed).randbytes(2 * UNIT)
        self._view = memoryview(self._base)

    def read(self, pos: int, n: int) -> bytes:
        pieces: list[bytes | memoryview] = []
        end = pos + n
        while pos < end:
            u, a = divmod(pos, UNIT)
            b = min(UNIT, a + end - pos)
            if a < 8:
                pieces.append(u.to_bytes(8, "little")[a : min(b, 8)])
            if b > 8:
                off = (u * 40503) % UNIT
                pieces.append(self._view[off + max(a, 8) - 8 : off + b - 8])
            pos += b - a
        return b"".join(pieces)

    def chunks(self, size: int, chunk: int) -> Iterator[bytes]:
        for pos in range(0, size, chunk):
            yield self.read(pos, min(chunk, size - pos))

    async def stream(self, size: int, chunk: int) -> AsyncIterator[bytes]:
        for piece in self.chunks(size, chunk):
            yield piece


class StreamCheck:
    """Compares a stream, chunk by chunk, with the pattern it should equal."""

    def __init__(self, data: PatternData) -> None:
        self._data = data
        self.pos = 0
        self.first_bad: int | None = None

    def feed(self, chunk: bytes | memoryview) -> None:
        if self.first_bad is None:
            # memoryview == bytes compares item by item (~1 GB/s); a copy + memcmp is faster.
            got = chunk if isinstance(chunk, bytes) else bytes(chunk)
            if got != self._data.read(self.pos, len(chunk)):
                self.first_bad = self.pos
        self.pos += len(chunk)

    def ok(self, size: int) -> bool:
        return self.first_bad is None and self.pos == size


# -- memory ------------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class PeakRSS:
    """Peak resident set size (KiB) while the `with` block runs: the kernel's high-water mark
    reset on entry when possible, else /proc/self/status sampled every 2 ms in a thread."""

    def __init__(self) -> None:
        self.before = 0
        self.peak = 0
        self.method = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        self.before = _status_kib("VmRSS")
        self.peak = self.before
        if _reset_hwm():
            self.method = "VmHWM"
        else:
            self.method = "sampled"
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _status_kib("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        else:
            self.peak = max(self.peak, _status_kib("VmHWM"))


# -- the machine ------------------------------------------------------------------------------


def drop_caches() -> bool:
    """Write back and drop the page cache (needs root outside a locked-down container)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def filesystem_of(path: Path) -> str:
    """'<type> on <source> (<mount point>)' for the mount holding path."""
    best = ("", "", "")
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                source, mount, fstype = line.split()[:3]
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[1]):
                    best = (source, mount, fstype)
    except OSError:
        return "unknown"
    return f"{best[2]} on {best[0]} ({best[1]})"
