"""Every scenario by name, with how it runs in the fast subset and in a long run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos import (
    durability_scenarios,
    engine_scenarios,
    flood_scenarios,
    heal_scenarios,
    process_scenarios,
    records_scenarios,
)
from chaos.data import FAST, LONG, Profile
from chaos.report import Row


@dataclass(frozen=True)
class Entry:
    name: str
    run: Callable[[Profile, int, bool, bool, Path | None], Row]  # profile, seed, long, heal
    fast: bool  # part of the fast subset (CI)
    needs_heal: bool


def _engine(name: str) -> Callable[..., Row]:
    def run(profile: Profile, seed: int, long: bool, heal: bool, workdir: Path | None) -> Row:
        return engine_scenarios.run(name, profile, seed, heal, workdir)

    return run


def _entries() -> list[Entry]:
    out = [
        Entry(s.name, _engine(s.name), s.fast, needs_heal=False) for s in engine_scenarios.SCENARIOS
    ]
    out += [
        Entry(
            "sigkill-put",
            lambda p, seed, long, heal, w: process_scenarios.sigkill_put(
                p, seed, 10 if long else 2, w
            ),
            True,
            False,
        ),
        Entry(
            "sigkill-complete",
            lambda p, seed, long, heal, w: process_scenarios.sigkill_complete(
                p, seed, 6 if long else 2, w
            ),
            True,
            False,
        ),
        Entry(
            "disk-full",
            lambda p, seed, long, heal, w: process_scenarios.disk_full(seed, w),
            True,
            False,
        ),
        Entry(
            "connection-flood",
            lambda p, seed, long, heal, w: flood_scenarios.connection_flood(p, seed, w),
            True,
            False,
        ),
        Entry(
            "sigkill-scrub",
            lambda p, seed, long, heal, w: heal_scenarios.sigkill_scrub(p, seed, w),
            True,
            True,
        ),
        Entry(
            "load-during-heal",
            lambda p, seed, long, heal, w: heal_scenarios.load_during_heal(
                p, seed, 400 if long else 40, 120 if long else 15, w
            ),
            True,
            True,
        ),
    ]
    out.append(
        Entry(
            "records-newest-wins",
            lambda p, seed, long, heal, w: records_scenarios.records_newest_wins(seed, w),
            True,
            True,
        )
    )
    # The durability contract (issue 11): RS(6,3) on 9 disks of their own, not the profile's.
    # CI runs them through tests/test_chaos_durability.py; here they belong to the long run.
    out += [
        Entry(
            f"durability-{name.replace('_', '-')}",
            lambda p, seed, long, heal, w, name=name: getattr(durability_scenarios, name)(
                seed=seed, workdir=w
            ),
            False,
            True,
        )
        for name in ("rotation", "disk_away", "concurrent_healers", "unrepairable_clears")
    ]
    return out


ENTRIES = _entries()


def names() -> list[str]:
    return [e.name for e in ENTRIES]


def run_one(
    name: str, *, long: bool = False, seed: int = 1, heal: bool = True, workdir=None
) -> Row:
    """Run one scenario; with heal=False (read-back checks only), one that needs the heal
    service is reported as not run (a FAIL row saying so, never a silent pass)."""
    entry = next(e for e in ENTRIES if e.name == name)
    profile = LONG if long else FAST
    if entry.needs_heal and not heal:
        row = Row(name)
        row.problems.append("not run: needs s3free.heal (the heal service), not importable")
        return row
    return entry.run(profile, seed, long, heal, workdir)
