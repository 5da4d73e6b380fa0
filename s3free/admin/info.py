"""Admin API: server info, bucket usage and rebuild-index (root only; authenticated by
s3free/admin/api.py).

    GET  /_s3free/admin/v1/info                    -> server, set, disks, usage, heal, index
    GET  /_s3free/admin/v1/buckets/usage           -> {"buckets": [{"bucket", ...Usage}], "total"}
    GET  /_s3free/admin/v1/buckets/<name>/usage    -> {"bucket", ...Usage} (404 NoSuchBucket)
    POST /_s3free/admin/v1/index/rebuild           -> 202 {"job": RebuildJob} (409 RebuildRefused)
    GET  /_s3free/admin/v1/index/rebuild/<job id>  -> {"job": RebuildJob}      (404 NoSuchJob)

Usage is computed by walking the index (s3free/admin/usage.py), not kept as running counters.
Why: counters exact across overwrite, delete, multipart complete, repair (a generation bump
changes a manifest's length) and crash recovery would have to be updated in the same LevelDB
batch as every index switch, by read-modify-write on a shared key, which serialises the
synced writes that LevelDB otherwise commits as a group (every PUT would pay for it); and
they would be one more thing the rebuild must get right. A walk is exact by construction and
costs nothing until asked: about 78,000 single-part objects/s in one pool thread (measured on
the 2-core development machine), so ~13 s per million objects, paged so it never holds the
index. `info` pays for the same walk (its totals). A store with many millions of objects
would want delta records folded in the background (one unique key per write in the switch's
batch, summed on read): the next step, not built.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp import web

from s3free import __version__
from s3free.admin.rebuild import IndexRebuilder, RebuildRefused
from s3free.admin.usage import Usage, walk_usage
from s3free.appkeys import DISKS, HEAL, SETTINGS, STARTED_AT, STORE
from s3free.engine import ObjectStore
from s3free.states import DiskState
from s3free.storage.devices import shared_devices

REBUILDER = web.AppKey("rebuilder", IndexRebuilder)


def attach_admin_ops(app: web.Application, rebuilder: IndexRebuilder) -> None:
    """What the server sets for these routes (before the app starts)."""
    app[STARTED_AT] = time.time()
    app[REBUILDER] = rebuilder


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def handle_info(request: web.Request, parts: list[str], body: bytes) -> web.Response:
    """Routes info, buckets/.../usage and index/rebuild; `parts` is the decoded path."""
    store = request.app[STORE]
    method = request.method
    if parts == ["info"] and method == "GET":
        return web.json_response(await server_info(request))
    if parts == ["buckets", "usage"] and method == "GET":
        rows, total = await usage(store, None)
        return web.json_response({"buckets": rows, "total": total.to_json()})
    if len(parts) == 3 and parts[0] == "buckets" and parts[2] == "usage" and method == "GET":
        name = parts[1]
        if name not in {b.name for b in await store.list_buckets()}:
            return _error(404, "NoSuchBucket", f"bucket {name} does not exist")
        rows, _ = await usage(store, name)
        return web.json_response(rows[0])
    if parts[0] == "index" and len(parts) >= 2 and parts[1] == "rebuild":
        rebuilder = request.app.get(REBUILDER)
        if rebuilder is None:
            return _error(503, "RebuildUnavailable", "this server cannot rebuild its index live")
        if len(parts) == 2 and method == "POST":
            try:
                job = rebuilder.start()
            except RebuildRefused as exc:
                return _error(409, "RebuildRefused", str(exc))
            return web.json_response({"job": job.to_json()}, status=202)
        if len(parts) == 3 and method == "GET":
            found = rebuilder.job(parts[2])
            if found is None:
                return _error(404, "NoSuchJob", f"no rebuild job {parts[2]}")
            return web.json_response({"job": found.to_json()})
    return _error(404, "NotFound", f"no admin endpoint {method} {'/'.join(parts)}")


async def usage(store: ObjectStore, bucket: str | None) -> tuple[list[dict], Usage]:
    """Per-bucket rows (every bucket, or the one named, with zeros when empty) and the
    total, from one paged walk of the index in the store's thread pool."""
    ds = store.diskset
    names = [b.name for b in await store.list_buckets()]
    if bucket is not None:
        names = [bucket]

    def walk() -> dict[str, Usage]:
        return dict(walk_usage(store.index.db, (ds.k, ds.m, ds.block_size), bucket))

    found = await store.run_io(walk)
    total = Usage()
    rows = []
    for name in names:
        row = found.get(name, Usage())
        total.add(row)
        rows.append({"bucket": name, **row.to_json()})
    return rows, total


async def server_info(request: web.Request) -> dict[str, Any]:
    app = request.app
    store = app[STORE]
    ds = store.diskset
    started = app.get(STARTED_AT)
    monitor = app.get(DISKS)
    heal = app.get(HEAL)
    if monitor is not None:
        disks = (await monitor.status())["disks"]
    else:
        disks = [
            {"position": s.position, "path": str(s.disk.root), "disk_id": s.disk_id,
             "state": str(DiskState.plain(s.online)), "problem": s.problem,
             "used_bytes": None, "total_bytes": None, "shards": None}
            for s in ds.slots
        ]  # fmt: skip
    rows = []
    for d in disks:
        used, total = d.get("used_bytes"), d.get("total_bytes")
        rows.append(
            {
                "position": d["position"],
                "path": d["path"],
                "disk_id": d["disk_id"],
                "state": d["state"],
                "problem": d.get("problem") or "",
                "used_bytes": used,
                "total_bytes": total,
                "free_bytes": total - used if used is not None and total is not None else None,
                "shards": d.get("shards"),
                "quarantine": d.get("quarantine"),
            }
        )
    slots = sorted(ds.slots, key=lambda slot: slot.position)
    shared = await store.run_io(shared_devices, [Path(slot.disk.root) for slot in slots])
    _, total_usage = await usage(store, None)
    rebuilder = app.get(REBUILDER)
    last = None
    if rebuilder is not None and rebuilder.jobs:
        last = list(rebuilder.jobs.values())[-1].to_json()
    return {
        "version": __version__,
        "started_ms": int(started * 1000) if started else None,
        "uptime_s": round(time.time() - started, 3) if started else None,
        "listen": _listen_url(request),
        "region": app[SETTINGS].region,
        "set_id": ds.set_id,
        "k": ds.k,
        "m": ds.m,
        "block_size": ds.block_size,
        "write_quorum": ds.write_quorum,
        "disks": rows,
        "disks_online": sum(r["state"] != DiskState.OFFLINE for r in rows),
        # groups of disk positions on one filesystem: they fail together (storage/devices.py)
        "shared_devices": [[slots[i].position for i in group] for group in shared],
        "buckets": len(await store.list_buckets()),
        "usage": total_usage.to_json(),
        "quarantine": {
            "files": sum((r["quarantine"] or {}).get("files", 0) for r in rows),
            "bytes": sum((r["quarantine"] or {}).get("bytes", 0) for r in rows),
        },
        "heal": heal.status() if heal is not None else None,
        "index": {"path": str(store.index.path), "last_rebuild": last},
    }


def _listen_url(request: web.Request) -> str | None:
    """The address this request arrived on (the server's bound socket)."""
    transport = request.transport
    sock = transport.get_extra_info("sockname") if transport is not None else None
    if not sock:
        return None
    host, port = sock[0], sock[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if request.secure else 'http'}://{shown}:{port}"
