"""The store's I/O pool (s3free/engine/pool.py) owns its threads: these tests pin the
ThreadPoolExecutor behaviour the engine relies on (context follows every call, shutdown runs
or cancels queued work, threads are started lazily up to the limit, and an interpreter that
exits without shutdown still runs queued work and then exits)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import subprocess
import sys
import textwrap
import threading

import pytest

from s3free.engine.pool import IOPool

WAIT_S = 60  # generous bound for anything that should take milliseconds
VAR: contextvars.ContextVar[str] = contextvars.ContextVar("pool_test_var", default="unset")


def test_submit_and_run_in_executor_carry_the_context() -> None:
    pool = IOPool(2)
    try:
        VAR.set("submitted")
        future = pool.submit(VAR.get)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(WAIT_S) == "submitted"
        assert pool.submit(lambda a, *, b: a + b, 1, b=2).result(WAIT_S) == 3
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result(WAIT_S)

        async def main() -> tuple[str, str]:
            VAR.set("on the loop")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, VAR.get), await pool.call(VAR.get)

        assert asyncio.run(main()) == ("on the loop", "on the loop")
        # A worker's own context is untouched by what a call set.
        assert pool.submit(lambda: VAR.set("inside") and VAR.get()).result(WAIT_S) == "inside"
        assert pool.submit(VAR.get).result(WAIT_S) == "submitted"
    finally:
        pool.shutdown(wait=True)


def test_threads_start_lazily_up_to_max_workers() -> None:
    pool = IOPool(3, thread_name_prefix="lazy-pool")
    release = threading.Event()
    try:
        assert _threads("lazy-pool") == 0  # none before the first call
        assert pool.submit(threading.current_thread).result(WAIT_S).name.startswith("lazy-pool_")
        assert _threads("lazy-pool") == 1
        blocked = [pool.submit(release.wait, WAIT_S) for _ in range(10)]
        assert _threads("lazy-pool") == 3  # never more than max_workers
        release.set()
        assert all(f.result(WAIT_S) for f in blocked)
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert _threads("lazy-pool") == 0  # shutdown(wait=True) joined them


def test_shutdown_runs_queued_work_then_refuses() -> None:
    pool = IOPool(1)
    gate = threading.Event()
    done: list[int] = []
    first = pool.submit(gate.wait, WAIT_S)
    queued = [pool.submit(done.append, i) for i in range(5)]
    gate.set()
    pool.shutdown(wait=True)
    assert first.result(0) is True
    assert [f.done() for f in queued] == [True] * 5
    assert done == [0, 1, 2, 3, 4]  # in order, all before shutdown returned
    with pytest.raises(RuntimeError):
        pool.submit(int)

    async def call_after_shutdown() -> None:
        pool.call(int)

    with pytest.raises(RuntimeError):
        asyncio.run(call_after_shutdown())


def test_shutdown_cancel_futures_cancels_what_has_not_started() -> None:
    pool = IOPool(1)
    gate = threading.Event()
    running = pool.submit(gate.wait, WAIT_S)
    queued = [pool.submit(int) for _ in range(3)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    gate.set()
    assert running.result(WAIT_S) is True  # what already ran finishes
    pool.shutdown(wait=True)


def test_exit_without_shutdown_runs_queued_work_and_exits() -> None:
    """A pool nobody shut down must neither keep the process alive nor drop queued work."""
    script = textwrap.dedent(
        """
        import os, threading, time
        from s3free.engine.pool import IOPool

        def say(line):  # one write per line: threads print at once
            os.write(1, line.encode() + b"\\n")

        pool = IOPool(2)
        started = threading.Event()

        def slow():
            started.set()
            time.sleep(0.2)
            say("slow done")

        pool.submit(slow)
        pool.submit(say, "queued done")
        pool.submit(say, "queued done")
        started.wait(30)
        say("main done")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT_S
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split("\n")) == sorted(
        ["main done", "slow done", "queued done", "queued done", ""]
    )


def _threads(prefix: str) -> int:
    return sum(t.name.startswith(prefix + "_") and t.is_alive() for t in threading.enumerate())
