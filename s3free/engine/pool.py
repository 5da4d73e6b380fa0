"""The store's I/O thread pool, with a fast way for the event loop to await one call.

`loop.run_in_executor` costs a `concurrent.futures.Future` (with its own Condition and lock),
a chained asyncio future and several callbacks per call: tens of microseconds of the loop's
time, which for a 4 KiB GET or PUT is a large share of the whole request. `IOPool.call` puts a
small work item on the worker threads that resolves an asyncio future directly with one
`call_soon_threadsafe`: about a third of the cost.

The pool owns its worker threads (a `queue.SimpleQueue` and threads started lazily, up to
`max_workers`) instead of borrowing `ThreadPoolExecutor`'s private work queue, whose shape
changed in CPython 3.14. Every call runs in a copy of the caller's context, so context
variables (the request id in logs, the current trace span) follow it into the thread. In every
other respect it is a `concurrent.futures.Executor` (`submit` returns a
`concurrent.futures.Future`, `loop.run_in_executor(pool, ...)`, `shutdown(wait,
cancel_futures)`), with ThreadPoolExecutor's exit behaviour: work queued when the interpreter
exits still runs before the worker threads end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class _Item(Protocol):
    def run(self) -> None: ...

    def cancel(self) -> None: ...


# A worker's queue: work items, and None to say "no more work, pass it on and stop".
_Queue = queue.SimpleQueue[_Item | None]


class IOPool(concurrent.futures.Executor):
    """Worker threads for blocking calls; `call` is the event loop's cheap way in."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "s3free-io") -> None:
        if max_workers <= 0:
            raise ValueError(f"max_workers: {max_workers} must be at least 1")
        self.max_workers = max_workers
        self._prefix = thread_name_prefix
        self._queue: _Queue = queue.SimpleQueue()
        # Released by a worker each time it finishes an item: a new item starts a new thread
        # only when no worker is idle (ThreadPoolExecutor's rule).
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._shutdown = False
        # Dropped without shutdown(): the workers still stop (they hold no reference to us).
        weakref.finalize(self, self._queue.put, None).atexit = False

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run fn(*args) on a worker thread; the returned future resolves on the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put(_LoopCall(future, loop, contextvars.copy_context(), fn, args))
        return future

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """fn(*args, **kwargs) on a worker thread, in a copy of the caller's context."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_FutureCall(future, contextvars.copy_context(), fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; queued work still runs unless cancel_futures; wait joins the
        threads."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                with contextlib.suppress(queue.Empty):
                    while True:
                        item = self._queue.get_nowait()
                        if item is not None:
                            item.cancel()
            self._queue.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()

    def _put(self, item: _Item) -> None:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            if _exit.started:
                raise RuntimeError("cannot schedule new calls after interpreter shutdown")
            self._queue.put(item)
            # Once every thread exists, the fast path pays no semaphore.
            if len(self._threads) < self.max_workers and not self._idle.acquire(blocking=False):
                self._start_thread()

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=_work,
            args=(self._queue, self._idle),
            name=f"{self._prefix}_{len(self._threads)}",
        )
        thread.start()
        self._threads.append(thread)
        _exit.watch(self._queue)


def _work(work: _Queue, idle: threading.Semaphore) -> None:
    """A worker thread: run items until the None that ends the pool (passed on to the next)."""
    while True:
        item = work.get()
        if item is None:
            work.put(None)
            return
        item.run()
        del item
        idle.release()


class _LoopCall:
    """One `call`: resolves an asyncio future on its loop with one call_soon_threadsafe."""

    __slots__ = ("args", "context", "fn", "future", "loop")

    def __init__(
        self,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        self.future = future
        self.loop = loop
        self.context = context
        self.fn = fn
        self.args = args

    def run(self) -> None:
        try:
            result = self.context.run(self.fn, *self.args)
        except BaseException as exc:
            # A closed loop (RuntimeError) has nobody left waiting for the outcome.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_set_exception, self.future, exc)
        else:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_set_result, self.future, result)

    def cancel(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.future.cancel)


class _FutureCall:
    """One `submit`: resolves a concurrent.futures.Future (unless it was cancelled first)."""

    __slots__ = ("args", "context", "fn", "future", "kwargs")

    def __init__(
        self,
        future: concurrent.futures.Future[Any],
        context: contextvars.Context,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.future = future
        self.context = context
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.context.run(self.fn, *self.args, **self.kwargs)
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def cancel(self) -> None:
        self.future.cancel()


def _set_result(future: asyncio.Future[Any], result: object) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class _ExitWatch:
    """Ends the workers of pools nobody shut down when the interpreter exits.

    At exit Python joins every non-daemon thread, so idle workers would wait forever. One
    daemon thread waits for the main thread to finish (which happens before that join) and
    then puts the final None on each live pool's queue: work already queued still runs, as
    with ThreadPoolExecutor, which does the same through a private hook of `threading`.
    """

    def __init__(self) -> None:
        self.started = False
        self._queues: weakref.WeakSet[_Queue] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def after_fork(self) -> None:
        """The child has none of the parent's threads (nor its lock's owner): start over."""
        self.__init__()  # type: ignore[misc]  # the same object: pools in the child use it

    def watch(self, work: _Queue) -> None:
        with self._lock:
            self._queues.add(work)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._wait, name="s3free-io-exit", daemon=True
                )
                self._thread.start()

    def _wait(self) -> None:
        threading.main_thread().join()
        with self._lock:
            self.started = True
            for work in list(self._queues):
                work.put(None)


_exit = _ExitWatch()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_exit.after_fork)
