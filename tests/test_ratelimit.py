"""LogLimiter (s3free/obs/ratelimit.py) on a clock the test moves: the first event of a key is
logged, repeats within the interval are not, the next one after it carries their count; keys
are independent and their number bounded."""

from __future__ import annotations

from s3free.obs.ratelimit import LogLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_first_then_one_summary_per_interval():
    clock = Clock()
    limiter = LogLimiter(60.0, clock=clock)
    assert limiter.admit("disk1") == 0
    assert [limiter.admit("disk1") for _ in range(5)] == [None] * 5
    clock.now += 59.0
    assert limiter.admit("disk1") is None
    clock.now += 2.0
    assert limiter.admit("disk1") == 6  # six not logged since the first line
    assert limiter.admit("disk1") is None
    assert limiter.admit("disk2") == 0  # another key logs at once


def test_keys_are_bounded_oldest_forgotten_first():
    clock = Clock()
    limiter = LogLimiter(60.0, max_keys=2, clock=clock)
    for key in ("a", "b", "c"):
        assert limiter.admit(key) == 0
    assert limiter.admit("c") is None
    assert limiter.admit("a") == 0  # forgotten: logged again as a first
