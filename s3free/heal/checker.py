"""Checking one object version: verify it, repair it if it needs it, and bring what the heal
service remembers of it (heal/ledger.py) in line with what the check found.

One check per version at a time, whoever asks (a scrub, the disk heal, the queue worker, an
operator): a per-version lock.
"""

from __future__ import annotations

import logging
from collections import Counter

from s3free.engine.locks import KeyLocks
from s3free.engine.store import ObjectStore
from s3free.format.manifest import Manifest
from s3free.heal.ledger import HealLedger
from s3free.heal.model import Job, ObjectHealth, ShardState, UnrepairableReason
from s3free.heal.pacer import Pacer
from s3free.heal.repair import LOST_COPY_STATES, RepairOutcome, RepairStatus, repair_version
from s3free.heal.verify import verify_manifest

# The service's logger (the name its log lines have always carried).
log = logging.getLogger("s3free.heal.service")


class VersionChecker:
    def __init__(self, store: ObjectStore, ledger: HealLedger) -> None:
        self.store = store
        self.ledger = ledger
        self.repairs: Counter[str] = Counter()  # outcome status -> count, for status()
        self.shards_rebuilt = 0  # shards rewritten by repairs (metrics)
        self._locks = KeyLocks()

    @property
    def busy(self) -> bool:
        """Whether some version is being checked now."""
        return len(self._locks) > 0

    async def verify(self, manifest: Manifest, pacer: Pacer | None) -> tuple[ObjectHealth, int]:
        return await verify_manifest(
            manifest,
            self.store.diskset,
            self.store.codec,
            self.store.run_io,
            pacer.pace if pacer is not None else None,
        )

    async def check(
        self, manifest: Manifest, pacer: Pacer | None, job: Job | None
    ) -> tuple[ObjectHealth | None, RepairOutcome | None]:
        """Verify one version and repair it if it needs it. One check per version at a time,
        whoever asks (a scrub, the disk heal, the queue worker, an operator), and each works
        from the index's manifest as it is once the version is theirs: a check that waited
        while another repaired the version sees that repair's generation, so it finds the
        rebuilt shards good instead of "newer than the manifest", and neither rebuilds them
        again nor quarantines them. (None, superseded) when the version is no longer current.
        Whatever the outcome, what the heal service remembers of the version (queued,
        waiting for a disk, unrepairable) is brought in line with what the check found."""
        ledger = self.ledger
        ident = (manifest.bucket, manifest.key, manifest.version_id)
        async with self._locks.hold(ident):
            current = await self.store.healing.current_manifest(manifest.bucket, manifest.key)
            if current is None or current.version_id != manifest.version_id:
                await ledger.forget(ident)
                return None, RepairOutcome(RepairStatus.SUPERSEDED)
            manifest = current
            health, max_generation = await self.verify(manifest, pacer)
            if job is not None:
                job.bytes_checked += health.bytes_checked
                job.shards_bad += len(health.bad_shards())
            for shard in health.bad_shards():
                if shard.state != ShardState.OFFLINE:
                    ledger.count_bad(ident, (shard.part, shard.shard), shard.disk_id)
            if not health.needs_repair:
                ledger.uncount(ident)
                await ledger.settled(ident, health, manifest.size, job)
                return health, None
            if not health.repairable and may_come_back(health):
                # Short of k good shards only because some are on disks that are away: not
                # lost (a disk-full or outage episode once recorded 47 intact objects so).
                away = {s.disk_id for s in health.shards if s.state == ShardState.OFFLINE}
                ledger.waiting.set(ident, away, manifest.size)
                ledger.changed()
                if job is not None:
                    job.note_waiting(ident, away)
                return health, RepairOutcome(RepairStatus.WAITING)
            if not health.repairable:
                await ledger.record_unrepairable(ident, health, UnrepairableReason.DATA)
                ledger.queue.remove(ident)
                ledger.waiting.set(ident, set())
                ledger.changed()
                if job is not None:
                    job.unrepairable += 1
                return health, RepairOutcome(RepairStatus.UNREPAIRABLE)
            outcome = await repair_version(
                self.store, manifest, health, max_generation, pacer.pace if pacer else None
            )
            self.repairs[outcome.status.value] += 1
            self.shards_rebuilt += outcome.shards_rebuilt
            if outcome.status == RepairStatus.SUPERSEDED:
                await ledger.forget(ident)
                return None, outcome
            if outcome.status == RepairStatus.REPAIRED:
                ledger.uncount(ident)  # a shard bad again later is a new error
            if outcome.status.rewrote:
                if job is not None:
                    job.repaired += 1
                    job.manifests_restored += sum(
                        v in LOST_COPY_STATES for v in health.manifests.values()
                    )
                await ledger.clear_unrepairable(ident)
                log.info(
                    "repaired %s/%s (%s): %d shards rebuilt, generation %d%s",
                    *ident[:2],
                    manifest.version_id,
                    outcome.shards_rebuilt,
                    outcome.generation,
                    f"; not done: {'; '.join(outcome.failures)}" if outcome.failures else "",
                )
            if outcome.status == RepairStatus.PARTIAL:
                raise OSError("; ".join(outcome.failures))
            await ledger.settled(ident, health, manifest.size, job)
            return health, outcome


def may_come_back(health: ObjectHealth) -> bool:
    """Whether the shards on offline disks would make up what each part lacks (they may be
    intact: the disk is only away), with nothing else (a Merkle root) saying the data is bad."""
    # Every problem must be a block short of good shards, not a hash or Merkle disagreement,
    # which no returning disk can make right.
    if not all(problem.disks_may_cure for problem in health.problems):
        return False
    per_part: dict[int, int] = {}
    for shard in health.shards:
        per_part[shard.part] = per_part.get(shard.part, 0) + (shard.state == ShardState.OFFLINE)
    away = min(per_part.values(), default=0)
    return away > 0 and health.block_min_good + away >= health.k
