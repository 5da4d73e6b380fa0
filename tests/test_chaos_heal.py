"""The chaos suite's scrub half: after each scenario's faults, ONE scrub through the heal
service must leave every acknowledged object with k+m healthy shards, read back intact, and
remove nothing but the planted old orphan. Also SIGKILL during a scrub's repairs and client
load while a scrub rebuilds a wiped disk."""

from __future__ import annotations

import pytest

from chaos import engine_scenarios, heal_scenarios, suite
from chaos.data import FAST

SCENARIOS = [s.name for s in engine_scenarios.SCENARIOS if s.fast]


@pytest.mark.parametrize("name", SCENARIOS)
def test_one_scrub_repairs_everything(name, tmp_path):
    row = suite.run_one(name, seed=11, heal=True, workdir=tmp_path)
    assert row.ok, row.fail_message()
    assert row.repaired is not None


def test_sigkill_during_scrub_repair(tmp_path):
    row = heal_scenarios.sigkill_scrub(FAST, 13, workdir=tmp_path)
    assert row.ok, row.fail_message()


def test_client_load_while_scrub_heals_a_wiped_disk(tmp_path):
    row = heal_scenarios.load_during_heal(FAST, 17, ops=30, seconds=10.0, workdir=tmp_path)
    assert row.ok, row.fail_message()


def test_records_newest_wins(tmp_path):
    """A user removed, a bucket made private and another deleted while a disk was away: the
    disk's records are brought up to date when it returns, and its stale copies lose after a
    restart, an index lost at start and an online rebuild-index (chaos/records_scenarios.py)."""
    row = suite.run_one("records-newest-wins", seed=19, heal=True, workdir=tmp_path)
    assert row.ok, row.fail_message() + "\n" + "\n".join(row.notes)
