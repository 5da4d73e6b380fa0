"""A LevelDB handle that can be swapped for another while the server runs, for the online
`admin rebuild-index`.

`SwappableDB` stands where the plyvel DB stood (`Index.db`, and `HealState.db`, which copies
it): every call goes to the current target under a shared gate; `swap()` takes the gate
exclusively, so no call, open iterator or batch write is in flight on the old DB while it is
closed and replaced. Iterators hold the gate until exhausted or closed (or collected), and a
thread that already holds it may take it again (an iteration that looks records up), so a
swap waits for them instead of closing a DB under them. Write batches are buffered and go to
whichever DB is the target when they are written.

While `tracking` is on, every key written or deleted is recorded (`Dirty`), so the rebuild can
take the live index's state for whatever changed after its disk walk began.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import plyvel


class SwapTimeout(Exception):
    """Index calls still in flight after the swap's wait: nothing was swapped."""


@dataclass
class Dirty:
    """What was written since tracking began (keys as in s3free/meta/index.py)."""

    objects: set[tuple[str, str]] = field(default_factory=set)  # (bucket, key)
    buckets: set[str] = field(default_factory=set)
    uploads: set[str] = field(default_factory=set)

    def note(self, key: bytes, value: bytes | None) -> None:
        tag = key[:1]
        if tag in (b"O", b"M"):
            bucket, _, name = key[1:].partition(b"\x00")
            self.objects.add((bucket.decode(), name.decode()))
        elif tag == b"J" and value is not None:
            record = json.loads(value)  # a version about to be written, replaced or deleted
            self.objects.add((record["bucket"], record["key"]))
        elif tag == b"B":
            self.buckets.add(key[1:].decode())
        elif tag in (b"U", b"P"):
            self.uploads.add(key[1:].partition(b"\x00")[0].decode())
        elif tag == b"u":
            self.uploads.add(key.rpartition(b"\x00")[2].decode())


class _Gate:
    """Shared/exclusive, reentrant for shared holders per thread; an exclusive request stops
    new shared entries (except reentrant ones) so it is not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holders = 0
        self._exclusive = False
        self._local = threading.local()

    def enter(self) -> _Hold:
        hold = getattr(self._local, "hold", None)
        if hold is None:
            hold = self._local.hold = _Hold(self)
        if hold.depth == 0:
            with self._cond:
                while self._exclusive:
                    self._cond.wait()
                self._holders += 1
        hold.depth += 1
        return hold

    def _release(self) -> None:
        with self._cond:
            self._holders -= 1
            if self._holders == 0:
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, attempts: int, wait_s: float):
        """Hold the gate alone. Each attempt stops new entries and waits up to wait_s for
        the calls in flight; one that does not drain lets the waiting calls through again
        before the next try, so a long reader (a scrub counting keys) stalls the others
        for at most wait_s per attempt."""
        for attempt in range(attempts):
            with self._cond:
                self._cond.wait_for(lambda: not self._exclusive)
                self._exclusive = True
                if self._cond.wait_for(lambda: self._holders == 0, wait_s):
                    break
                self._exclusive = False
                self._cond.notify_all()
            time.sleep(min(1.0, wait_s) * (attempt + 1))
        else:
            raise SwapTimeout(
                f"index calls were still in flight after {attempts} waits of {wait_s:g} s"
            )
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _Hold:
    def __init__(self, gate: _Gate) -> None:
        self.gate = gate
        self.depth = 0

    def leave(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.gate._release()


class _Iter:
    """A plyvel iterator that holds the gate until it ends."""

    def __init__(self, it, hold: _Hold) -> None:
        self._it = it
        self._hold: _Hold | None = hold

    def _end(self) -> None:
        if self._hold is not None:
            hold, self._hold = self._hold, None
            try:
                self._it.close()
            finally:
                hold.leave()

    def __iter__(self) -> _Iter:
        return self

    def __next__(self):
        if self._hold is None:
            raise StopIteration
        try:
            return next(self._it)
        except StopIteration:
            self._end()
            raise

    def seek(self, target: bytes) -> None:
        self._it.seek(target)

    def close(self) -> None:
        self._end()

    def __enter__(self) -> _Iter:
        return self

    def __exit__(self, *exc) -> None:
        self._end()

    def __del__(self) -> None:
        self._end()


class _Batch:
    """Buffered operations, applied to the current target in one atomic batch."""

    def __init__(self, owner: SwappableDB, transaction: bool, sync: bool) -> None:
        self._owner = owner
        self._transaction = transaction
        self._sync = sync
        self._ops: list[tuple[bytes, bytes | None]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self._ops.append((key, value))

    def delete(self, key: bytes) -> None:
        self._ops.append((key, None))

    def clear(self) -> None:
        self._ops.clear()

    def write(self) -> None:
        ops, self._ops = self._ops, []
        self._owner._write(ops, self._sync)

    def __enter__(self) -> _Batch:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._transaction:
            return
        self.write()


class SwappableDB:
    def __init__(self, db: plyvel.DB) -> None:
        self._db = db
        self._gate = _Gate()
        self._dirty: Dirty | None = None
        self._dirty_lock = threading.Lock()

    # -- the plyvel calls the index and the healer use ----------------------------------------

    def get(self, key: bytes, default=None, **kwargs):
        hold = self._gate.enter()
        try:
            return self._db.get(key, default, **kwargs)
        finally:
            hold.leave()

    def put(self, key: bytes, value: bytes, sync: bool = False) -> None:
        self._write([(key, value)], sync)

    def delete(self, key: bytes, sync: bool = False) -> None:
        self._write([(key, None)], sync)

    def write_batch(self, transaction: bool = False, sync: bool = False) -> _Batch:
        return _Batch(self, transaction, sync)

    def iterator(self, **kwargs) -> _Iter:
        hold = self._gate.enter()
        try:
            return _Iter(self._db.iterator(**kwargs), hold)
        except BaseException:
            hold.leave()
            raise

    def read(self, fn: Callable[[plyvel.DB], object]) -> object:
        """fn(current DB) with the gate held: a bounded read (a page) that needs a
        snapshot or several calls on one DB."""
        hold = self._gate.enter()
        try:
            return fn(self._db)
        finally:
            hold.leave()

    def close(self) -> None:
        hold = self._gate.enter()
        try:
            self._db.close()
        finally:
            hold.leave()

    @property
    def closed(self) -> bool:
        return self._db.closed

    def _write(self, ops: list[tuple[bytes, bytes | None]], sync: bool) -> None:
        if not ops:
            return
        hold = self._gate.enter()
        try:
            if self._dirty is not None:
                with self._dirty_lock:
                    for key, value in ops:
                        self._dirty.note(key, value)
            if len(ops) == 1:
                key, value = ops[0]
                if value is None:
                    self._db.delete(key, sync=sync)
                else:
                    self._db.put(key, value, sync=sync)
                return
            with self._db.write_batch(sync=sync) as batch:
                for key, value in ops:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
        finally:
            hold.leave()

    # -- for the rebuild ------------------------------------------------------------------

    def start_tracking(self) -> Dirty:
        with self._dirty_lock:
            self._dirty = Dirty()
            return self._dirty

    def stop_tracking(self) -> None:
        with self._dirty_lock:
            self._dirty = None

    def swap(
        self, replace: Callable[[plyvel.DB], plyvel.DB], attempts: int = 5, wait_s: float = 2.0
    ) -> None:
        """With no call in flight, `replace(old db)` returns the new target (it may close
        the old one); if it raises, the target is unchanged. SwapTimeout when calls in
        flight never drained."""
        with self._gate.exclusive(attempts, wait_s):
            self._db = replace(self._db)


def install(index) -> SwappableDB:
    """Make `index.db` swappable (once; before anything copies `index.db`, such as the heal
    service's state). Returns the swappable handle."""
    if not isinstance(index.db, SwappableDB):
        index.db = SwappableDB(index.db)
    return index.db
