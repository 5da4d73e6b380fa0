"""The pacer behind the scrubber and repairs: each cap (MB/s, files/s) is a maximum on its own,
so work that is mostly bytes runs at the byte cap and work that is mostly files at the file cap,
not at the sum of the two. Checked through the sleeps it decides (stats.slept_s), which do not
depend on how busy the machine is, with room for the time the test itself takes."""

from __future__ import annotations

import asyncio

from s3free.heal.pacer import MAX_CREDIT_S, Pacer


async def _paced(pacer: Pacer, steps: list[tuple[int, int]]) -> float:
    for nbytes, files in steps:
        await pacer.pace(nbytes, files)
    return pacer.stats.slept_s


async def test_each_cap_holds_on_its_own():
    # 10 x 1 MB at 10 MB/s: 1 s of work, less the initial burst credit
    slept = await _paced(Pacer(10, 0), [(1_000_000, 0)] * 10)
    assert 1.0 - MAX_CREDIT_S - 0.05 <= slept <= 1.0 + 0.05
    # 20 files at 40 files/s: 0.5 s
    slept = await _paced(Pacer(0, 40), [(0, 1)] * 20)
    assert 0.5 - MAX_CREDIT_S - 0.05 <= slept <= 0.5 + 0.05


async def test_mixed_work_is_bounded_by_the_slower_cap_not_the_sum():
    # Each step is 0.1 s of bytes and 0.1 s of files, reported apart as the scrubber does:
    # with independent caps 8 steps take ~0.8 s; added up they would take ~1.6 s.
    pacer = Pacer(10, 100)
    steps = [(1_000_000, 0), (0, 10)] * 8
    slept = await _paced(pacer, steps)
    assert 0.8 - MAX_CREDIT_S - 0.05 <= slept <= 0.8 + 0.1
    assert pacer.stats.bytes == 8_000_000 and pacer.stats.files == 80


async def test_no_caps_never_sleep_and_a_new_rate_applies_at_once():
    pacer = Pacer(0, 0)
    assert await _paced(pacer, [(10**9, 10**6)] * 3) == 0
    pacer = Pacer(0.001, 0)  # 1 KB/s: the next slice would sleep for minutes
    task = asyncio.ensure_future(pacer.pace(1_000_000))
    await asyncio.sleep(0.05)
    pacer.set_rate(rate_mb_s=0)  # lifted live: the sleep ends now
    await asyncio.wait_for(task, 5)


async def test_asking_for_a_scrub_again_changes_the_rate_of_the_one_under_way(tmp_path):
    from s3free.heal import HealService
    from tests.support.heal import config, new_store, put

    store = await new_store(tmp_path)
    heal = HealService(store, config(scrub_rate_mb_s=0.01))  # 10 kB/s: minutes of work
    try:
        for i in range(4):
            await put(store, f"k{i}", 200_000)
        job = heal.start_scrub()
        await asyncio.sleep(0.2)
        assert heal.job(job.id).state == "running"
        again = heal.start_scrub(rate_mb_s=0)  # lifted: the same pass, now uncapped
        assert again.id == job.id
        done = await heal.wait(job.id, timeout=30)
        assert done.state == "done" and done.objects_checked == 4
    finally:
        await heal.stop()
        await store.close()
