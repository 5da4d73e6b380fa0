"""Prometheus metrics for one server: S3 requests, stages, disks, repair and scrub.

Each server has its own CollectorRegistry (several servers in one process never clash).
What changes on every request is counted as it happens: requests by S3 operation and status
code, latency, bytes in and out (prometheus_client counters and a histogram), stage and disk
I/O times (FastHistogram below: one lock and a bisect, about half the cost of a
prometheus_client Histogram, because a small PUT passes through a dozen of them). What
describes the present (disk states and usage, requests in flight, the repair queue, scrub
progress) is read from the live objects at scrape time by a collector, never updated per event.

Labels are bounded: S3 operation names (a fixed set), status codes, stage names (a fixed
set), disk positions (bounded by the set) and small enums; never a bucket, key or user.

The live sources are duck-typed (this is the lowest layer: it imports nothing of s3free above
it): `diskset` (slots, k, m, write_quorum), `monitor` (state(slot)), `heal` (queue, repairs,
unrepairable, disk_errors, scrub_passes, scrub_bytes_now(), status(), config), `inflight`
(count, draining).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from s3free import __version__
from s3free.obs.stage import STAGES
from s3free.states import DiskErrorKind, DiskState, JobState

# No *_created series: they double the series count and no dashboard reads them.
disable_created_metrics()

OP_ADMIN = "Admin"  # the admin API under /_s3free/admin/
OP_UNKNOWN = "Unknown"  # not parsed into an operation (refused before or while parsing)

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STAGE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
)  # fmt: skip
# The label values of s3free_disk_state and s3free_disk_errors: every member, in order.
DISK_STATES = tuple(DiskState)
ERROR_KINDS = tuple(DiskErrorKind)
IO_CLASSES = ("read", "write", "sync", "meta")  # as s3free/storage/monitored.py reports them
CLIENT_CLOSED = 499  # the client went away before the response was finished (nginx's code)
# heal/repair.py's RepairStatus values, shown at 0 before the first repair.
REPAIR_OUTCOMES = ("clean", "repaired", "partial", "unrepairable", "superseded", "waiting")
# Why a shard was found bad or not written: engine/types.py's FaultGroup values (a ShardFault's
# `kind.group`), a bounded label; tests/test_heal_vocabulary.py keeps the two the same.
FAULT_REASONS = ("offline", "missing", "not_written", "io", "corrupt")


class FastHistogram:
    """Counts per bucket, sum and count under one lock: observe() is safe from any thread."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def export(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative (le, count) pairs ending with +Inf, and the sum."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*self._bounds, float("inf")), counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out, total


class _Timed:
    """One stage being timed (a fresh object per stage: stages run in many threads)."""

    __slots__ = ("_hist", "_start")

    def __init__(self, hist: FastHistogram) -> None:
        self._hist = hist
        self._start = 0.0

    def __enter__(self) -> _Timed:
        self._start = perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hist.observe(perf_counter() - self._start)


_NULL = nullcontext()


@dataclass
class Sources:
    """The live objects a scrape reads (all but the disk set may be None: then not shown)."""

    diskset: Any
    store: Any = None  # its fault_listeners hear of every bad shard a read meets
    monitor: Any = None
    heal: Any = None
    inflight: Any = None

    def index_loaded(self) -> bool:
        """The store's LevelDB index is open (True when there is no store to ask)."""
        if self.store is None:
            return True
        db = getattr(getattr(self.store, "index", None), "db", None)
        return db is not None and not db.closed


@dataclass
class Usage:
    """A disk's filesystem at scrape time: (used, total) bytes, or None if unknown."""

    by_position: dict[int, tuple[int, int] | None] = field(default_factory=dict)
    # {"files", "bytes"} in each disk's quarantine (bad shards repairs moved aside)
    quarantine: dict[int, dict] = field(default_factory=dict)


class Metrics:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "s3free_requests",
            "S3 requests handled, by operation and HTTP status code (499: client went away)",
            ["op", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "s3free_request_duration_seconds",
            "Time from request start to the handler's end (the body sent, for streamed GETs)",
            ["op"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.received = Counter(
            "s3free_received_bytes",
            "Request body bytes received, by operation",
            ["op"],
            registry=self.registry,
        )
        self.sent = Counter(
            "s3free_sent_bytes",
            "Response body bytes sent, by operation",
            ["op"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, int], tuple] = {}
        self.stages = {name: FastHistogram(STAGE_BUCKETS) for name in STAGES}
        positions = [slot.position for slot in sources.diskset.slots]
        self.disk_io = {(p, c): FastHistogram(STAGE_BUCKETS) for p in positions for c in IO_CLASSES}
        self._disk_errors = {(p, k): 0 for p in positions for k in ERROR_KINDS}
        self._errors_lock = threading.Lock()
        self._shards_bad = {(p, r): 0 for p in positions for r in FAULT_REASONS}
        self._position_of = {slot.disk_id: slot.position for slot in sources.diskset.slots}
        self._usage = Usage()
        self.registry.register(_Live(self))

    # -- per event -----------------------------------------------------------------------------

    def observe_request(self, op: str, code: int, seconds: float, received: int, sent: int) -> None:
        children = self._children.get((op, code))
        if children is None:
            children = (
                self.requests.labels(op, str(code)),
                self.latency.labels(op),
                self.received.labels(op),
                self.sent.labels(op),
            )
            self._children[(op, code)] = children
        requests, latency, received_c, sent_c = children
        requests.inc()
        latency.observe(seconds)
        if received:
            received_c.inc(received)
        if sent:
            sent_c.inc(sent)

    def observe_stage(self, name: str):
        """The stage observer (s3free.obs.stage.add_observer): times the stage."""
        hist = self.stages.get(name)
        return _Timed(hist) if hist is not None else _NULL

    def on_fault(self, fault: Any) -> None:
        """A store fault listener (runs on the event loop): one bad shard a read met."""
        position = self._position_of.get(fault.disk_id)
        if position is not None:
            key = (position, str(fault.kind.group))
            self._shards_bad[key] = self._shards_bad.get(key, 0) + 1

    def disk_observer(self, position: int) -> Callable[[str, float, DiskErrorKind | None], None]:
        """What MonitoredDisk.observe_io is set to for the disk at `position`."""
        hists = {c: self.disk_io[(position, c)] for c in IO_CLASSES}
        errors, lock = self._disk_errors, self._errors_lock

        def observe(io_class: str, seconds: float, error_kind: DiskErrorKind | None) -> None:
            hists.get(io_class, hists["meta"]).observe(seconds)
            if error_kind is not None:
                with lock:
                    errors[(position, error_kind)] = errors.get((position, error_kind), 0) + 1

        return observe

    # -- at scrape time ------------------------------------------------------------------------

    def set_usage(self, usage: Usage) -> None:
        """The disks' filesystem usage for the next collect (read off the loop by the caller,
        since statvfs may block on a failing disk)."""
        self._usage = usage


class _Live:
    """Reads the present state at scrape time (a prometheus_client custom collector)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterable[Metric]:
        src = self.m.sources
        yield from self._timings()
        ds = src.diskset
        info = GaugeMetricFamily("s3free_info", "This server", labels=["version", "k", "m"])
        info.add_metric([__version__, str(ds.k), str(ds.m)], 1)
        yield info
        yield GaugeMetricFamily(
            "s3free_write_quorum", "Shards per block a write needs", value=ds.write_quorum
        )
        if src.inflight is not None:
            yield GaugeMetricFamily(
                "s3free_requests_in_flight", "S3 requests being handled", value=src.inflight.count
            )
        yield GaugeMetricFamily(
            "s3free_index_loaded", "1 when the index is open", value=int(src.index_loaded())
        )
        yield from self._disks(ds)
        bad = CounterMetricFamily(
            "s3free_shards_bad",
            "Shards a read found unusable, by disk position and reason (each read counts: an "
            "offline disk counts once per read of a shard on it)",
            labels=["disk", "reason"],
        )
        for (position, reason), count in self.m._shards_bad.items():
            bad.add_metric([str(position), reason], count)
        yield bad
        if src.store is not None and hasattr(src.store, "degraded_writes"):
            yield CounterMetricFamily(
                "s3free_degraded_writes",
                "Writes committed with some shard not written (a disk offline or failing): "
                "each is queued for repair",
                value=src.store.degraded_writes,
            )
        if src.heal is not None:
            yield from self._heal(src.heal, ds)

    def _timings(self) -> Iterable[Metric]:
        stages = HistogramMetricFamily(
            "s3free_stage_seconds",
            "Time spent in each stage of the work (s3free/obs/stage.py)",
            labels=["stage"],
        )
        for name, hist in self.m.stages.items():
            buckets, total = hist.export()
            stages.add_metric([name], buckets, total)
        yield stages
        disk_io = HistogramMetricFamily(
            "s3free_disk_io_seconds",
            "Time of each disk call, by disk position and class (read, write, sync, meta)",
            labels=["disk", "op"],
        )
        for (position, io_class), hist in self.m.disk_io.items():
            buckets, total = hist.export()
            disk_io.add_metric([str(position), io_class], buckets, total)
        yield disk_io
        errors = CounterMetricFamily(
            "s3free_disk_errors",
            "OSErrors from disk calls: hard (counts toward offline), suspect (a path vanished, "
            "e.g. a missing shard), full (ENOSPC, EDQUOT: the disk is marked full), soft "
            "(EACCES, ...), resource (EMFILE, ENFILE, ENOMEM: the process, not the disk)",
            labels=["disk", "kind"],
        )
        with self.m._errors_lock:
            counts = dict(self.m._disk_errors)
        for (position, kind), count in counts.items():
            errors.add_metric([str(position), str(kind)], count)
        yield errors

    def _disks(self, ds) -> Iterable[Metric]:
        monitor = self.m.sources.monitor
        state = GaugeMetricFamily(
            "s3free_disk_state",
            "1 for the state each disk is in (full: in service for reads and deletes, no new "
            "data until space is freed)",
            labels=["disk", "state"],
        )
        disk_info = GaugeMetricFamily(
            "s3free_disk_info", "Each disk position's id (format.json)", labels=["disk", "disk_id"]
        )
        used = GaugeMetricFamily(
            "s3free_disk_used_bytes", "Bytes used on the disk's filesystem", labels=["disk"]
        )
        free = GaugeMetricFamily(
            "s3free_disk_free_bytes",
            "Bytes free on the disk's filesystem (available to s3free)",
            labels=["disk"],
        )
        total = GaugeMetricFamily(
            "s3free_disk_total_bytes", "Size of the disk's filesystem", labels=["disk"]
        )
        usage = self.m._usage.by_position
        for slot in ds.slots:
            disk = str(slot.position)
            now = monitor.state(slot) if monitor is not None else _plain_state(slot)
            for name in DISK_STATES:
                state.add_metric([disk, str(name)], int(name == now))
            disk_info.add_metric([disk, slot.disk_id], 1)
            figures = usage.get(slot.position)
            if figures is not None:
                used.add_metric([disk], figures[0])
                free.add_metric([disk], figures[1] - figures[0])
                total.add_metric([disk], figures[1])
        yield from (state, disk_info, used, free, total)
        held_files = GaugeMetricFamily(
            "s3free_quarantine_files",
            "Bad shard files repairs moved to the disk's quarantine (s3free disk quarantine)",
            labels=["disk"],
        )
        held_bytes = GaugeMetricFamily(
            "s3free_quarantine_bytes", "Bytes in the disk's quarantine", labels=["disk"]
        )
        for position, held in sorted(self.m._usage.quarantine.items()):
            held_files.add_metric([str(position)], held["files"])
            held_bytes.add_metric([str(position)], held["bytes"])
        yield from (held_files, held_bytes)

    def _heal(self, heal, ds) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "s3free_repair_queue_depth", "Object versions waiting for repair", value=len(heal.queue)
        )
        yield CounterMetricFamily(
            "s3free_repair_queue_dropped",
            "Repair requests dropped because the queue was full",
            value=heal.queue.dropped,
        )
        repairs = CounterMetricFamily(
            "s3free_repairs",
            "Repairs of object versions, by outcome",
            labels=["outcome"],
        )
        counts = {name: 0 for name in REPAIR_OUTCOMES} | dict(heal.repairs)
        for outcome, count in sorted(counts.items()):
            repairs.add_metric([outcome], count)
        yield repairs
        yield CounterMetricFamily(
            "s3free_shards_rebuilt",
            "Shards rewritten by repairs",
            value=getattr(heal, "shards_rebuilt", 0),
        )
        degraded = heal.degraded()
        yield GaugeMetricFamily(
            "s3free_objects_degraded",
            "Object versions known to be below k+m and repairable (queued, or waiting for an "
            "offline disk); disks healing or offline are counted by s3free_disk_state",
            value=degraded["objects"],
        )
        yield GaugeMetricFamily(
            "s3free_objects_degraded_bytes",
            "Bytes of the object versions counted by s3free_objects_degraded",
            value=degraded["bytes"],
        )
        yield GaugeMetricFamily(
            "s3free_unrepairable_objects",
            "Object versions that cannot be repaired (fewer than k good shards in a block)",
            value=len(heal.unrepairable),
        )
        yield from self._scrub(heal)

    def _scrub(self, heal) -> Iterable[Metric]:
        job = heal.status().get("scrub")
        running = bool(job) and job.get("state") == JobState.RUNNING
        yield GaugeMetricFamily("s3free_scrub_running", "1 while a scrub pass runs", value=running)
        job = job or {}
        yield GaugeMetricFamily(
            "s3free_scrub_pass_objects_checked",
            "Objects verified by the current (or last) scrub pass",
            value=job.get("objects_checked") or 0,
        )
        yield GaugeMetricFamily(
            "s3free_scrub_pass_objects_total",
            "Objects the current (or last) scrub pass will verify (0: not known yet)",
            value=job.get("objects_total") or 0,
        )
        yield GaugeMetricFamily(
            "s3free_scrub_pass_shards_bad",
            "Bad or missing shards found by the current (or last) scrub pass",
            value=job.get("shards_bad") or 0,
        )
        yield GaugeMetricFamily(
            "s3free_scrub_pass_bytes_checked",
            "Bytes verified by the current (or last) scrub pass",
            value=job.get("bytes_checked") or 0,
        )
        finished = job.get("finished_ms") if job.get("state") == JobState.DONE else None
        yield GaugeMetricFamily(
            "s3free_scrub_last_completed_timestamp_seconds",
            "When the last scrub pass completed (0: none known)",
            value=(finished or 0) / 1000,
        )
        yield CounterMetricFamily(
            "s3free_scrub_passes",
            "Scrub passes completed since the server started",
            value=heal.scrub_passes,
        )
        yield CounterMetricFamily(
            "s3free_scrub_checked_bytes",
            "Bytes verified by scrub passes since the server started (rate() is the scrub rate)",
            value=heal.scrub_bytes_now(),
        )
        yield GaugeMetricFamily(
            "s3free_scrub_rate_limit_bytes_per_second",
            "The scrub's byte rate cap (0: none)",
            value=heal.config.scrub_rate_mb_s * 1e6,
        )


def _plain_state(slot) -> DiskState:
    return DiskState.plain(slot.online)
