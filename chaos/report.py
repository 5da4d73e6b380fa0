"""One table row per scenario: faults injected, detected, repaired, bytes verified, verdict."""

from __future__ import annotations

from dataclasses import dataclass, field


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
