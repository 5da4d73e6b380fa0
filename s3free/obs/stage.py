"""Named stages of the work behind a request, observed by metrics and tracing alike.

Code marks a stage with ``with stage(ENCODE): ...``. Observers (the Prometheus histograms, the
OpenTelemetry tracer) register a factory that returns a context manager per stage. With no
observer registered, a stage costs one list check and returns a shared no-op context manager,
so marking hot paths is free when nothing watches.

Stage names are a fixed set (bounded metric cardinality): add a name here before using it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack, nullcontext

INDEX_GET = "index.get"  # a read of the LevelDB index (object, bucket, listing page)
INDEX_PUT = "index.put"  # a write to the index (publish, delete, multipart state)
ERASURE_ENCODE = "erasure.encode"  # Reed-Solomon parity for one block
ERASURE_DECODE = "erasure.decode"  # rebuilding one block from k shards
DISK_WRITE = "disk.write"  # writing one shard file, or a small version's files as one batch
DISK_READ = "disk.read"  # reading one shard record (or range), or a batch of small files
DISK_SYNC = "disk.sync"  # one group commit (fsync/syncfs)
ENGINE_PUT = "engine.put"  # a whole object write, stream in to durable
ENGINE_GET = "engine.get"  # opening an object for reading (manifest and shard handles)

STAGES = (
    INDEX_GET,
    INDEX_PUT,
    ERASURE_ENCODE,
    ERASURE_DECODE,
    DISK_WRITE,
    DISK_READ,
    DISK_SYNC,
    ENGINE_PUT,
    ENGINE_GET,
)

Observer = Callable[[str], AbstractContextManager]

_observers: list[Observer] = []
_NULL = nullcontext()


def add_observer(observer: Observer) -> None:
    """Register a factory called with the stage name at the start of every stage."""
    if observer not in _observers:
        _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def stage(name: str) -> AbstractContextManager:
    """The context manager that marks one stage; a shared no-op when nothing observes."""
    observers = _observers
    if not observers:
        return _NULL
    if len(observers) == 1:
        return observers[0](name)
    stack = ExitStack()
    for observer in observers:
        stack.enter_context(observer(name))
    return stack


def staged(name: str) -> Callable[[Callable], Callable]:
    """Decorator: every call of the function (or coroutine function) is one stage, so a method
    is marked with one added line instead of an indented block."""

    def wrap(fn: Callable) -> Callable:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args, **kwargs):
                with stage(name):
                    return await fn(*args, **kwargs)

            return run_async

        @functools.wraps(fn)
        def run(*args, **kwargs):
            with stage(name):
                return fn(*args, **kwargs)

        return run

    return wrap
