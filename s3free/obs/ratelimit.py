"""Rate-limited logging: an event that can repeat thousands of times (every write while a disk
is away, every read of a lost object) is logged the first time, then at most once per interval
with how many repeats were not logged, so the log stays readable and nothing is hidden.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class LogLimiter:
    """Decides per key whether to log now. `admit(key)` returns None to stay quiet, or the
    number of repeats that were not logged since the last line for that key (0 the first
    time). Keys are remembered up to `max_keys` (least recently logged forgotten first).
    Safe to call from threads."""

    def __init__(
        self,
        every_s: float,
        *,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_s = every_s
        self._max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[Hashable, list[float | int]] = OrderedDict()  # key -> [t, n]
        self._lock = threading.Lock()

    def admit(self, key: Hashable = None) -> int | None:
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None:
                self._seen[key] = [now, 0]
                if len(self._seen) > self._max_keys:
                    self._seen.popitem(last=False)
                return 0
            if now - entry[0] < self.every_s:
                entry[1] += 1
                return None
            skipped = int(entry[1])
            entry[0], entry[1] = now, 0
            self._seen.move_to_end(key)
            return skipped
