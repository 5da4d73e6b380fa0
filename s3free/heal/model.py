"""The heal service's values: its configuration, the health of one object version, and jobs.

These are what the CLI, the admin API and the chaos suite read (each has `to_json`), so their
field names are part of the contract in the issue 4 brief; fields may be added, not renamed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from s3free.states import JobState  # lives below the engine, which reads it too

LEFT_KEPT = 10_000  # versions a pass remembers by name as left to do; more are counted


class ShardState(StrEnum):
    """The health of one shard file, or of one manifest copy (which is never misplaced)."""

    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"
    OFFLINE = "offline"
    MISPLACED = "misplaced"
    STALE = "stale"


class DataProblem(StrEnum):
    """Why a version's data cannot be trusted as it stands; ObjectHealth.errors says each in
    words, for people."""

    SHORT_OF_SHARDS = "short_of_shards"  # a block has fewer than k good shards
    UNDECODABLE = "undecodable"  # k good shards or more, but no k decode to the content hash
    PART_ROOT = "part_root"  # a part's blocks do not give its Merkle root
    OBJECT_ROOT = "object_root"  # the part roots do not give the manifest's Merkle root

    @property
    def disks_may_cure(self) -> bool:
        """Whether shards on disks that are away could make up for it when they return (a
        hash or Merkle disagreement no returning disk can make right)."""
        return self is DataProblem.SHORT_OF_SHARDS


class JobKind(StrEnum):
    SCRUB = "scrub"
    REPAIR = "repair"


class JobPhase(StrEnum):
    """Where a running pass is: its walk, the records (whole store), the orphans (whole-store
    scrub), then finishing (waiting for disk heals, trying its failures again)."""

    WALK = "walk"
    RECORDS = "records"
    ORPHANS = "orphans"
    FINISHING = "finishing"


class UnrepairableReason(StrEnum):
    """Why a version is recorded as unrepairable (persisted in its record as "reason")."""

    DATA = "data"  # fewer than k good shards in a block, or its hashes disagree
    RETRIES = "retries"  # its repair kept failing


@dataclass
class HealConfig:
    scrub_rate_mb_s: float = 8.0  # bytes verified per second cap (0 = unlimited)
    scrub_files_per_s: float = 200.0  # shard files opened per second cap (0 = unlimited)
    scrub_interval_s: float = 7 * 86400  # one full pass a week; 0 = never automatically
    orphan_grace_s: float = 3600.0  # orphans/temp files younger than this are never touched
    queue_max: int = 100_000  # bounded repair queue
    repair_retries: int = 3
    # Added by the implementation (not in the first contract):
    quarantine_max_age_s: float = 7 * 86400  # quarantined shard files older are removed
    quarantine_max_files: int = 10_000  # per disk; the oldest beyond this are removed
    retry_backoff_s: float = 5.0  # first retry after this, then x4 each attempt
    checkpoint_every: int = 100  # objects between two persisted scrub checkpoints


@dataclass
class ShardHealth:
    """One (part, shard index) of one version: the worst state any of its blocks is in."""

    part: int
    shard: int
    disk_id: str
    state: ShardState
    detail: str = ""
    bad_blocks: int = 0  # blocks of this shard file that failed (0 when missing/offline)

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["state"] = str(self.state)
        return doc


@dataclass
class ObjectHealth:
    """Full health of one object version, shard by shard, from reading every record."""

    bucket: str
    key: str
    version_id: str
    k: int
    m: int
    shards: list[ShardHealth]
    manifests: dict[str, ShardState]  # disk_id -> its manifest copy's state
    bytes_checked: int
    generation: int = 1  # the manifest's (the index's copy)
    # The fewest shards that were good in any one block: the redundancy really left. A block
    # is rebuildable when this is >= k, even if no single shard file is wholly good.
    block_min_good: int = 0
    errors: list[str] = field(default_factory=list)  # what made blocks or parts unrecoverable
    problems: list[DataProblem] = field(default_factory=list)  # the errors' kinds, in order

    @property
    def healthy(self) -> int:
        """Min over parts of the shard indices whose whole file is "ok"."""
        per_part: dict[int, int] = {}
        for s in self.shards:
            per_part[s.part] = per_part.get(s.part, 0) + (s.state == ShardState.OK)
        return min(per_part.values(), default=0)

    @property
    def needs_repair(self) -> bool:
        return any(s.state != ShardState.OK for s in self.shards) or any(
            v != ShardState.OK for v in self.manifests.values()
        )

    @property
    def repairable(self) -> bool:
        """Every block still has k good shards (spec: more than m bad in a block is a loss),
        and nothing else (a part's Merkle root) says the data cannot be trusted."""
        return self.block_min_good >= self.k and not self.errors

    def bad_shards(self) -> list[ShardHealth]:
        return [s for s in self.shards if s.state != ShardState.OK]

    def to_json(self) -> dict:
        return {
            "block_min_good": self.block_min_good,
            "bucket": self.bucket,
            "bytes_checked": self.bytes_checked,
            "errors": list(self.errors),
            "generation": self.generation,
            "healthy": self.healthy,
            "k": self.k,
            "key": self.key,
            "m": self.m,
            "manifests": {disk_id: str(state) for disk_id, state in self.manifests.items()},
            "needs_repair": self.needs_repair,
            "repairable": self.repairable,
            "shards": [s.to_json() for s in self.shards],
            "version_id": self.version_id,
        }


@dataclass
class Job:
    """A scrub or repair pass; its counters are what progress bars and summaries show."""

    id: str
    kind: JobKind
    state: JobState
    bucket: str | None
    key: str | None
    objects_checked: int = 0
    objects_total: int | None = None
    shards_bad: int = 0
    repaired: int = 0
    unrepairable: int = 0
    orphans_removed: int = 0
    bytes_checked: int = 0
    started_ms: int = 0
    finished_ms: int | None = None
    error: str = ""
    # Added: scrub pacing decisions (sleeps) and manifest copies restored.
    throttled: int = 0
    manifests_restored: int = 0
    # Added with the durability contract (issue 11): the phase of a running pass ("walk",
    # "orphans", then "finishing": it waits for the disk heals it overlaps and tries its
    # failures again; a pass is not done before that), and what the pass could not bring back
    # to k+m: `left_total` versions, the first LEFT_SHOWN named in
    # `left` (bucket, key, version_id, why). A pass is "done" with left_total 0 only when every
    # version it found below k+m is back at k+m.
    phase: JobPhase = JobPhase.WALK
    records_restored: int = 0  # bucket and user record copies rewritten (whole-store passes)
    left_total: int = 0
    left: list[dict] = field(default_factory=list)
    # Not reported: versions whose check failed during the walk, tried again at the end.
    retry: set = field(default_factory=set, repr=False, compare=False)
    _left: dict = field(default_factory=dict, repr=False, compare=False)
    _left_more: int = field(default=0, repr=False, compare=False)
    _waiting: set = field(default_factory=set, repr=False, compare=False)

    def note_left(self, ident: tuple[str, str, str], why: str) -> None:
        if ident in self._left or len(self._left) < LEFT_KEPT:
            self._left[ident] = why
        else:  # a disk away for the whole pass: count the rest, name the first ones
            self._left_more += 1

    def note_waiting(self, ident: tuple[str, str, str], disks: set[str]) -> None:
        """Left because its shards belong on offline disks (tried again if they return)."""
        self.note_left(ident, "waiting for offline disk(s) " + ", ".join(sorted(disks)))
        if ident in self._left:
            self._waiting.add(ident)

    def waiting_left(self) -> list[tuple[str, str, str]]:
        return sorted(self._waiting)

    def clear_left(self, ident: tuple[str, str, str]) -> None:
        self._left.pop(ident, None)
        self._waiting.discard(ident)

    def seal_left(self, extra: list[str], shown: int = 100) -> None:
        """Fix `left` from what is still noted, plus whole-store reasons (a disk to replace)."""
        items = sorted(self._left.items())
        self.left_total = len(items) + len(extra) + self._left_more
        self.left = [{"why": why} for why in extra] + [
            {"bucket": b, "key": k, "version_id": v, "why": why} for (b, k, v), why in items[:shown]
        ]

    def to_json(self) -> dict:
        doc = asdict(self)
        doc.pop("retry", None)
        doc.pop("_left", None)
        doc.pop("_left_more", None)
        doc.pop("_waiting", None)
        for name in ("kind", "state", "phase"):  # the plain strings, as stored and shown
            doc[name] = str(doc[name])
        return doc
