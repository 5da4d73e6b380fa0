"""Pacing background work: sleep in proportion to the work done (Garage's tranquilizer, Swift
auditor's bytes/s and files/s caps).

After each slice of work the caller reports the bytes and files it just handled. The pacer keeps
one virtual clock per cap, of when the bytes (or files) done so far "should" have finished at
that rate, and sleeps until the later of the two. Each cap is a maximum on its own (as Swift's
auditor's are): work that is mostly bytes runs at the byte cap, work that is mostly files at the
file cap; they do not add up. The long-run rate never exceeds either cap, however the work is
sliced or reported. Rates
can be changed at any time (they apply from the next slice on); 0 means unlimited. A sleep
ends early when the pacer is cancelled (stop()).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

MAX_CREDIT_S = 0.5  # idle time that may be spent as a burst later


@dataclass
class PaceStats:
    sleeps: int = 0  # throttle decisions that slept
    slept_s: float = 0.0
    bytes: int = 0
    files: int = 0


class Pacer:
    def __init__(self, rate_mb_s: float, files_per_s: float) -> None:
        self.rate_mb_s = rate_mb_s
        self.files_per_s = files_per_s
        self.stats = PaceStats()
        self._due_bytes = self._due_files = time.monotonic()
        self._stop = asyncio.Event()
        self._kick = asyncio.Event()  # set when the rates change: a sleep ends and recomputes

    def set_rate(self, rate_mb_s: float | None = None, files_per_s: float | None = None) -> None:
        if rate_mb_s is not None:
            if rate_mb_s < 0:
                raise ValueError("rate must not be negative")
            self.rate_mb_s = rate_mb_s
        if files_per_s is not None:
            if files_per_s < 0:
                raise ValueError("files per second must not be negative")
            self.files_per_s = files_per_s
        # The new rates apply from now: forgive the current sleep.
        self._due_bytes = self._due_files = time.monotonic()
        self._kick.set()

    def cancel(self) -> None:
        self._stop.set()
        self._kick.set()

    def cost(self, nbytes: int, files: int) -> tuple[float, float]:
        """Seconds this work takes at the byte cap and at the file cap (0 when uncapped)."""
        by_bytes = nbytes / (self.rate_mb_s * 1e6) if self.rate_mb_s > 0 else 0.0
        by_files = files / self.files_per_s if self.files_per_s > 0 else 0.0
        return by_bytes, by_files

    async def pace(self, nbytes: int, files: int = 0) -> None:
        """Account for work just done; sleep if it ran ahead of the caps."""
        self.stats.bytes += nbytes
        self.stats.files += files
        now = time.monotonic()
        # Unused time is credit only up to a small burst, so a pause does not buy a flood.
        by_bytes, by_files = self.cost(nbytes, files)
        self._due_bytes = max(self._due_bytes, now - MAX_CREDIT_S) + by_bytes
        self._due_files = max(self._due_files, now - MAX_CREDIT_S) + by_files
        wait = max(self._due_bytes, self._due_files) - now
        if wait <= 0 or self._stop.is_set():
            return
        self.stats.sleeps += 1
        self.stats.slept_s += wait
        self._kick.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._kick.wait(), wait)
