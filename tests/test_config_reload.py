"""What SIGHUP changes in the heal service: a new scrub interval takes effect at once, even
from 0 (only on demand), where the scheduler used to wait for a stop that never came."""

from __future__ import annotations

import asyncio
import threading
import time

from s3free.heal import HealService
from tests.support.heal import config, new_store, put


async def test_a_new_scrub_interval_is_applied_at_once(tmp_path):
    async def go() -> tuple[dict | None, dict | None]:
        store = await new_store(tmp_path)
        service = HealService(store, config(scrub_interval_s=0.0))
        await service.start()
        try:
            await put(store, "one", 1000)
            await asyncio.sleep(0.3)
            before = service.status()["scrub"]  # interval 0: no scheduled pass
            service.set_interval(0.5)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (service.status()["scrub"] or {}).get(
                "finished_ms"
            ):
                await asyncio.sleep(0.05)
            after = service.status()["scrub"]
            service.set_interval(0.0)  # back to on demand: the scheduler waits quietly
            await asyncio.sleep(0.1)
            return before, after
        finally:
            await service.stop()
            await store.close()

    before, after = await go()
    assert before is None
    assert after is not None and after["kind"] == "scrub"
    assert after["objects_checked"] >= 1


async def test_closing_the_store_waits_for_index_writes_whose_awaiter_was_cancelled(tmp_path):
    """Found by the sample test (a server stopped right after start): the heal scheduler,
    cancelled by stop(), left its checkpoint write running in the pool, and store.close()
    closed LevelDB under it: a segfault. Now the pool finishes before the index closes."""
    from s3free.meta.index import Index
    from tests.support.engine import open_store

    async def go() -> None:
        store = await open_store(tmp_path, 3)
        running = threading.Event()

        def slow_write() -> None:
            running.set()
            time.sleep(0.3)
            store.index.db.put(b"test-late-write", b"1", sync=True)

        task = asyncio.ensure_future(store.run_io(slow_write))
        while not running.is_set():
            await asyncio.sleep(0.01)
        task.cancel()  # as HealService.stop() cancels its scheduler
        await store.close()

    await go()
    index = Index(tmp_path / "meta")
    try:
        assert index.db.get(b"test-late-write") == b"1"  # written before the close, not lost
    finally:
        index.close()
