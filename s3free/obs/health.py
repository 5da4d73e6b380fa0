"""Liveness and readiness, as load balancers and Kubernetes probes ask for them.

live:  the process answers HTTP (nothing else is checked: a live but unready server should be
       taken out of rotation, not restarted).
ready: the index is open, the server is not draining for shutdown, and at least a write quorum
       of disks is in service (online, healing or full: all three serve reads and deletes).
       `read_only` is true when fewer than a write quorum take new data (online or healing:
       the others are full), so PUTs answer 507 XS3freeStorageFull until space is freed;
       such a server stays ready, since taking it out of rotation would stop the reads and
       the deletes that free space too. `degraded` is true when ready with redundancy below
       k+m or writes held back: some disk offline, healing or full, or object versions known
       to be short of shards (`degraded_objects`: queued for repair or waiting for a disk).
       Reads may need decoding; repairs are under way or wait for the disk.

The body names counts and positions only: no paths, errors or ids (probes are unauthenticated).
"""

from __future__ import annotations

from s3free.obs.metrics import DISK_STATES, Sources
from s3free.states import DiskState


def degraded_objects(sources: Sources) -> int:
    heal = sources.heal
    return heal.degraded()["objects"] if heal is not None else 0


def readiness(sources: Sources) -> tuple[bool, dict]:
    """(ready, JSON-ready body)."""
    ds, monitor = sources.diskset, sources.monitor
    states = [
        monitor.state(s) if monitor is not None else DiskState.plain(s.online) for s in ds.slots
    ]
    counts = {name: states.count(name) for name in DISK_STATES}
    writable = sum(counts[s] for s in DiskState if s.takes_new_data)
    in_service = sum(counts[s] for s in DiskState if s.in_service)
    index_loaded = sources.index_loaded()
    draining = bool(getattr(sources.inflight, "draining", False))
    quorum = in_service >= ds.write_quorum
    ready = quorum and index_loaded and not draining
    read_only = quorum and writable < ds.write_quorum
    body = {
        "status": "ready" if ready else "not ready",
        "ready": ready,
        # Redundancy below k+m somewhere: a disk away or being rebuilt, or versions the heal
        # service knows to be short of shards (queued, or waiting for a disk).
        "degraded": quorum
        and (
            counts[DiskState.OFFLINE] + counts[DiskState.HEALING] + counts[DiskState.FULL] > 0
            or degraded_objects(sources) > 0
        ),
        "read_only": read_only,
        "degraded_objects": degraded_objects(sources),
        "disks": {**{str(s): n for s, n in counts.items()}, "total": len(states)},
        "offline_positions": [i for i, s in enumerate(states) if s == DiskState.OFFLINE],
        "full_positions": [i for i, s in enumerate(states) if s == DiskState.FULL],
        "write_quorum": ds.write_quorum,
        "k": ds.k,
        "m": ds.m,
        "index_loaded": index_loaded,
        "draining": draining,
    }
    if read_only:
        body["read_only_reason"] = (
            f"only {writable} disks take new data ({counts[DiskState.FULL]} full), a write needs "
            f"{ds.write_quorum}: writes answer 507 XS3freeStorageFull until space is freed"
        )
    if not ready:
        body["reasons"] = [
            reason
            for reason, failed in (
                (
                    f"only {in_service} disks in service, a write needs {ds.write_quorum}",
                    not quorum,
                ),
                ("the index is not loaded", not index_loaded),
                ("the server is shutting down", draining),
            )
            if failed
        ]
    return ready, body
