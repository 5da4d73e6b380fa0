"""The durability contract (issue 11), against real server processes on real disk directories:
when `s3free disk scrub --wait` returns 0, or a disk comes back, every object is back at k+m,
and unrepairable records leave with their objects. See chaos/durability_scenarios.py."""

from __future__ import annotations

import pytest

from chaos import durability_scenarios as d


def test_rotation_three_rounds_of_three_disks(tmp_path):
    row = d.rotation(seed=21, workdir=tmp_path)
    assert row.ok, row.fail_message() + "\n" + "\n".join(row.notes)


def test_disk_away_during_writes_heals_without_a_command(tmp_path):
    row = d.disk_away(seed=22, workdir=tmp_path)
    assert row.ok, row.fail_message()


def test_concurrent_healers_repair_once_and_quarantine_only_damage(tmp_path):
    row = d.concurrent_healers(seed=23, workdir=tmp_path)
    assert row.ok, row.fail_message()


@pytest.mark.slow
def test_unrepairable_records_clear_on_delete_and_overwrite(tmp_path):
    row = d.unrepairable_clears(seed=24, workdir=tmp_path)
    assert row.ok, row.fail_message()
