"""One scrub through the heal service (s3free.heal, issue 4), and the health check after it.

Scenarios run with heal=False do only their read-back checks and say "n/a" for
detected/repaired; with the heal service they run ONE scrub and require every acknowledged
object to have all k+m shards healthy again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.data import Acks

SCRUB_TIMEOUT_S = 600.0


@dataclass
class ScrubOutcome:
    job: object  # s3free.heal.Job
    detected: int
    repaired: int
    unrepairable: int
    orphans_removed: int
    problems: list[str] = field(default_factory=list)


def heal_config(orphan_grace_s: float = 3600.0):
    from s3free.heal import HealConfig

    # Unlimited rate: the suite measures repair, not pacing; no scheduled passes.
    return HealConfig(
        scrub_rate_mb_s=0,
        scrub_files_per_s=0,
        scrub_interval_s=0,
        orphan_grace_s=orphan_grace_s,
    )


async def start_service(store, orphan_grace_s: float = 3600.0):
    from s3free.heal import HealService

    service = HealService(store, heal_config(orphan_grace_s))
    await service.start()
    return service


async def scrub_once(service, bucket: str | None = None) -> ScrubOutcome:
    """Run one scrub pass to the end and report what it found and did."""
    job = service.start_scrub(bucket)
    job = await service.wait(job.id, timeout=SCRUB_TIMEOUT_S)
    outcome = ScrubOutcome(job, job.shards_bad, job.repaired, job.unrepairable, job.orphans_removed)
    if job.state != "done":
        outcome.problems.append(f"scrub {job.id} ended {job.state}: {job.error}")
    return outcome


async def check_health(service, store, bucket: str, acks: Acks) -> list[str]:
    """Every visible acknowledged object must have k+m healthy shards and no copy needing
    repair (shards or manifests)."""
    from s3free.errors import NoSuchKey

    n = store.diskset.k + store.diskset.m
    problems = []
    for key in sorted(acks.keys):
        try:
            health = await service.verify(bucket, key)
        except NoSuchKey:
            if None not in acks.allowed(key):
                problems.append(f"{key}: NoSuchKey from verify")
            continue
        if health.healthy != n:
            bad = [s.to_json() for s in health.shards if s.state != "ok"][:4]
            problems.append(f"{key}: {health.healthy}/{n} healthy shards after the scrub: {bad}")
        elif health.needs_repair:
            bad_m = {d: s for d, s in health.manifests.items() if s != "ok"}
            problems.append(f"{key}: still needs repair after the scrub (manifests {bad_m})")
    return problems
