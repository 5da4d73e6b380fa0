"""The typed vocabulary of faults, states and outcomes (issue 13): every kind of fault has a
metric label and a heal decision, the enums' values are the strings stored and shown before
they were enums, and real damage on real files is reported with the right kind, counted under
the right label and queued, whatever the words of its reason.

Before, metrics and the healer matched the reason's text by prefix: a reworded message was
silently counted as "corrupt" and queued instead of ignored or waited for."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from s3free.engine.types import FaultGroup, FaultKind, ShardFault
from s3free.heal import HealService
from s3free.heal.model import (
    Job,
    JobKind,
    JobPhase,
    JobState,
    ShardHealth,
    ShardState,
    UnrepairableReason,
)
from s3free.heal.repair import RepairStatus
from s3free.heal.worker import FAULT_ACTIONS, FaultAction
from s3free.obs.metrics import FAULT_REASONS, REPAIR_OUTCOMES, Metrics, Sources
from tests.support.heal import BS, BUCKET, config, flip, new_store, put, shard_path


def test_every_fault_kind_has_a_metric_label_and_a_heal_decision():
    """A kind added without a label or a decision fails here, not in production."""
    assert {str(group) for group in FaultGroup} == set(FAULT_REASONS)
    for kind in FaultKind:
        assert str(kind.group) in FAULT_REASONS, kind
        assert isinstance(FAULT_ACTIONS.get(kind), FaultAction), f"{kind} has no heal decision"
    assert set(FAULT_ACTIONS) == set(FaultKind)


def test_decisions_are_the_ones_the_text_prefixes_made():
    """The decisions of the old prefix matching, kind by kind: a read that met a disk that is
    away is left to that disk's heal; a write that missed an offline or full disk waits for
    it; everything else is queued for repair."""
    ignored = {FaultKind.DISK_OFFLINE, FaultKind.NOT_IN_SET}
    waited = {FaultKind.NOT_WRITTEN_OFFLINE, FaultKind.NOT_WRITTEN_FULL}
    for kind in FaultKind:
        expected = (
            FaultAction.IGNORE
            if kind in ignored
            else FaultAction.WAIT
            if kind in waited
            else FaultAction.QUEUE
        )
        assert FAULT_ACTIONS[kind] is expected, kind


def test_repair_outcomes_are_the_metric_labels():
    assert {str(status) for status in RepairStatus} == set(REPAIR_OUTCOMES)


def test_stored_and_shown_strings_are_unchanged():
    """Jobs are stored (the scrub checkpoint) and shown as JSON; unrepairable records are
    stored with their reason: the values are today's strings, and plain str once out."""
    assert [str(k) for k in JobKind] == ["scrub", "repair"]
    assert [str(s) for s in JobState] == ["running", "done", "failed", "cancelled"]
    assert [str(p) for p in JobPhase] == ["walk", "records", "orphans", "finishing"]
    assert [str(s) for s in ShardState] == [
        "ok",
        "missing",
        "corrupt",
        "offline",
        "misplaced",
        "stale",
    ]
    assert [str(r) for r in UnrepairableReason] == ["data", "retries"]
    job = Job("j1", JobKind.SCRUB, JobState.RUNNING, None, None)
    doc = job.to_json()
    assert (doc["kind"], doc["state"], doc["phase"]) == ("scrub", "running", "walk")
    assert all(type(doc[name]) is str for name in ("kind", "state", "phase"))
    assert json.loads(json.dumps(doc))["state"] == "running"
    shard = ShardHealth(1, 0, "d0", ShardState.CORRUPT).to_json()
    assert shard["state"] == "corrupt" and type(shard["state"]) is str


def _shards_bad(metrics: Metrics) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "s3free_shards_bad_total":
                out[s.labels["reason"]] = out.get(s.labels["reason"], 0) + s.value
    return out


async def test_real_damage_is_reported_by_kind_counted_and_queued(tmp_path: Path):
    """A deleted shard file and a flipped payload bit, met by a real read: each fault has its
    kind, the metric counts it under that kind's label, and the heal service queues the
    version with the fault's words as the queue entry's reason."""

    async def main() -> None:
        store = await new_store(tmp_path)
        metrics = Metrics(Sources(store.diskset, store))
        store.fault_listeners.append(metrics.on_fault)
        heal = HealService(store, config())
        await heal.start()
        assert heal._worker is not None
        heal._worker.cancel()  # keep the report queued: only the intake is tested here
        heard: list[ShardFault] = []
        store.fault_listeners.append(heard.append)
        try:
            data = await put(store, "k", 2 * BS)
            manifest = await store.get_manifest(BUCKET, "k")
            shard_path(store, manifest, 1, 0).unlink()
            flip(shard_path(store, manifest, 1, 1), 0, "payload")
            assert await store.get_object_bytes(BUCKET, "k") == data
            await asyncio.sleep(0)  # listeners run on the loop
            kinds = {(f.shard_index, f.kind) for f in heard}
            assert (0, FaultKind.MISSING) in kinds, heard
            assert (1, FaultKind.CORRUPT) in kinds, heard
            counted = _shards_bad(metrics)
            for kind in (FaultKind.MISSING, FaultKind.CORRUPT):
                assert counted[str(kind.group)] == sum(f.kind.group == kind.group for f in heard)
            ident = (BUCKET, "k", manifest.version_id)
            entry = heal.queue.entries[ident]
            assert entry.reason in {f.reason for f in heard}
        finally:
            await heal.stop()
            await store.close()

    await main()
