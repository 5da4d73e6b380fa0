"""The connection cap derived from the file descriptor limit, and the warnings about it."""

from __future__ import annotations

from s3free.s3.connguard import CONNECTIONS_CEILING, CONNECTIONS_FLOOR, fd_reserve, plan


def test_the_derived_cap_leaves_the_reserve_and_a_shard_file_per_disk():
    cap, warning = plan(0, 1024, 4)
    assert cap == (1024 - fd_reserve(4)) // 5 == 153 and warning == ""
    assert cap * 5 + fd_reserve(4) <= 1024


def test_the_derived_cap_is_bounded_and_a_low_limit_is_warned_about():
    assert plan(0, 1 << 20, 4)[0] == CONNECTIONS_CEILING
    cap, warning = plan(0, 256, 4)
    assert cap == CONNECTIONS_FLOOR and "file descriptor limit 256 is low" in warning


def test_a_configured_cap_is_kept_and_warned_about_when_it_eats_the_reserve():
    assert plan(100, 1024, 4) == (100, "")
    cap, warning = plan(5000, 1024, 4)
    assert cap == 5000 and "connections_max 5000 leaves fewer than" in warning
