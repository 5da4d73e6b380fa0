"""One table row per scenario: faults injected, detected, repaired, bytes verified, verdict."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.faults import FaultLog


@dataclass
class Row:
    scenario: str
    faults: int = 0
    fault_kinds: str = ""
    detected: int | None = None  # None: not measured (no heal service)
    repaired: int | None = None
    bytes_verified: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail_message(self) -> str:
        shown = "\n  ".join(self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        return f"{self.scenario}: {len(self.problems)} problem(s)\n  {shown}{more}"


def finish(row: Row, root: Path, started: float, log: FaultLog | None = None) -> None:
    """End a scenario's row: its time, the faults its log recorded, and its disks removed when
    it passed or kept (and named) for inspection when it did not."""
    row.seconds = time.monotonic() - started
    if log is not None:
        row.faults, row.fault_kinds = log.total, log.summary()
    if row.ok:
        shutil.rmtree(root, ignore_errors=True)
    else:
        row.notes.append(f"disks kept for inspection in {root}")


HEAD = ("scenario", "faults", "detected", "repaired", "bytes verified", "secs", "result")


def _n(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def table(rows: list[Row]) -> str:
    cells = [HEAD] + [
        (
            r.scenario,
            str(r.faults),
            _n(r.detected),
            _n(r.repaired),
            f"{r.bytes_verified:,}",
            f"{r.seconds:.1f}",
            "PASS" if r.ok else "FAIL",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEAD))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def details(rows: list[Row]) -> str:
    out = []
    for r in rows:
        out.append(f"{r.scenario}: {r.fault_kinds or 'no faults'}")
        out.extend(f"  note: {n}" for n in r.notes)
        if not r.ok:
            out.append("  " + r.fail_message())
    return "\n".join(out)
