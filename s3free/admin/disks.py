"""Admin API for disks and healing (root only; authenticated by s3free/admin/api.py).

    GET  /_s3free/admin/v1/disks               -> {"set_id", "k", "m", ..., "disks": [...],
                                                   "heal": HealService.status() | null}
    POST /_s3free/admin/v1/disks/scrub         {"bucket"?, "rate_mb_s"?} -> 202 {"job": Job}
    POST /_s3free/admin/v1/disks/repair        {"bucket"?, "key"?, "rate_mb_s"?} -> 202 {"job"}
                                               (404 NoSuchKey when the key is absent)
    GET  /_s3free/admin/v1/jobs/<id>           -> {"job": Job}            (404 NoSuchJob)
    POST /_s3free/admin/v1/objects/verify      {"bucket", "key"} -> {"health": ObjectHealth}
    POST /_s3free/admin/v1/disks/replace       {"disk": position | path | disk id,
                                                "rate_mb_s"?: pace of its heal pass}
                                               -> {"disk": status of that disk, "action": text,
                                                   "rate_mb_s"?: rate applied or null}
    POST /_s3free/admin/v1/disks/add|remove    -> 501 NotBuilt
    GET  /_s3free/admin/v1/disks/quarantine    -> heal/quarantine.py report()
    POST /_s3free/admin/v1/disks/quarantine/purge  {"older_than_s", "force"?}
                                               -> heal/quarantine.py purge() (409 PurgeRefused)

Scrub, repair, jobs and verify go to the heal service (the HEAL app key, set by the server;
503 HealUnavailable when absent). Keys travel in JSON bodies, never in the path.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from s3free.appkeys import DISKS, HEAL, STORE
from s3free.engine import ObjectStore
from s3free.engine.diskmonitor import DiskMonitor
from s3free.errors import InvalidObjectKey, NoSuchBucket, NoSuchKey
from s3free.heal import HealService, quarantine
from s3free.states import DiskState

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class _BadRequest(Exception):
    pass


def _body(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise _BadRequest("body must be JSON") from None
    if not isinstance(doc, dict):
        raise _BadRequest("body must be a JSON object")
    return doc


def _text(doc: dict, name: str, required: bool = False) -> str | None:
    value = doc.get(name)
    if value is None or value == "":
        if required:
            raise _BadRequest(f'"{name}" is required')
        return None
    if not isinstance(value, str):
        raise _BadRequest(f'"{name}" must be a string')
    return value


def _rate(doc: dict) -> float | None:
    rate = doc.get("rate_mb_s")
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
        raise _BadRequest('"rate_mb_s" must be a number >= 0 (0 = unlimited)')
    return float(rate)


def pace_heal(heal: HealService | None, disk: dict, rate_mb_s: float) -> float | None:
    """Pace the heal pass a replaced disk is in at rate_mb_s; the rate applied, or None when
    no pass is running for it (nothing to pace: the disk is online, offline or waiting)."""
    job_id = (disk.get("heal") or {}).get("job_id")
    if heal is None or not job_id or heal.set_job_rate(job_id, rate_mb_s) is None:
        return None
    return rate_mb_s


def find_slot(monitor: DiskMonitor, spec: object) -> int:
    """A disk named by position, path or disk id -> its position (ValueError if none)."""
    slots = monitor.diskset.slots
    if isinstance(spec, int) and not isinstance(spec, bool) and 0 <= spec < len(slots):
        return spec
    if isinstance(spec, str):
        if spec.isdigit() and int(spec) < len(slots):
            return int(spec)
        for slot in slots:
            if spec in (slot.disk_id, str(slot.disk.root)):
                return slot.position
    raise ValueError(f"{spec!r} is not a disk of this set (give a position, path or disk id)")


async def handle_disks(request: web.Request, parts: list[str], body: bytes) -> web.Response:
    """Routes under disks/, jobs/ and objects/; `parts` is the decoded path after the API."""
    method = request.method
    monitor = request.app.get(DISKS)
    heal = request.app.get(HEAL)
    try:
        if parts == ["disks"] and method == "GET":
            if monitor is None:
                return _error(503, "DisksUnavailable", "this server runs no disk monitor")
            status = await monitor.status()
            status["heal"] = heal.status() if heal is not None else None
            return web.json_response(status)
        if parts in (["disks", "add"], ["disks", "remove"]) and method == "POST":
            return _error(
                501,
                "NotBuilt",
                f"disk {parts[1]} is not built yet: a set has a fixed number of disks "
                "(see specs/beexl-v1.md, 'Adding and draining disks')",
            )
        if parts == ["disks", "replace"] and method == "POST":
            if monitor is None:
                return _error(503, "DisksUnavailable", "this server runs no disk monitor")
            doc = _body(body)
            try:
                position = find_slot(monitor, doc.get("disk"))
            except ValueError as exc:
                return _error(404, "NoSuchDisk", str(exc))
            rate = _rate(doc)
            before = monitor.state(monitor.diskset.slots[position])
            disk = await monitor.check(position)
            answer: dict[str, Any] = {"disk": disk, "action": _action(before, disk)}
            if rate is not None:
                answer["rate_mb_s"] = pace_heal(heal, disk, rate)
            return web.json_response(answer)
        if parts[:2] == ["disks", "quarantine"]:
            return await _quarantine(request, parts[2:], method, body)
        heal_route = (
            parts in (["disks", "scrub"], ["disks", "repair"], ["objects", "verify"])
            and method == "POST"
        ) or (len(parts) == 2 and parts[0] == "jobs" and method == "GET")
        if not heal_route:
            return _error(404, "NotFound", f"no admin endpoint {method} {'/'.join(parts)}")
        if heal is None:
            return _error(
                503,
                "HealUnavailable",
                "the heal service is not running in this server (scrub, repair and verify need it)",
            )
        if parts[0] == "jobs":
            job = heal.job(parts[1])
            if job is None:
                return _error(404, "NoSuchJob", f"no job {parts[1]}")
            return web.json_response({"job": job.to_json()})
        doc = _body(body)
        bucket = _text(doc, "bucket", required=parts[1] == "verify")
        if bucket is not None and bucket not in {b.name for b in await _buckets(request)}:
            return _error(404, "NoSuchBucket", f"bucket {bucket} does not exist")
        if parts[1] == "scrub":
            job = heal.start_scrub(bucket, _rate(doc))
            return web.json_response({"job": job.to_json()}, status=202)
        key = _text(doc, "key", required=parts[1] == "verify")
        if key is not None and bucket is None:
            raise _BadRequest('"key" needs "bucket"')
        if parts[1] == "repair":
            if key is not None and bucket is not None:  # a missing key: an error, not a no-op
                await _store(request).get_manifest(bucket, key)  # NoSuchKey
            job = heal.start_repair(bucket, key, _rate(doc))
            return web.json_response({"job": job.to_json()}, status=202)
        assert bucket is not None and key is not None  # both required for verify (above)
        health = await heal.verify(bucket, key)
        return web.json_response({"health": health.to_json()})
    except _BadRequest as exc:
        return _error(400, "BadRequest", str(exc))
    except NoSuchKey as exc:
        return _error(404, "NoSuchKey", str(exc))
    except InvalidObjectKey as exc:
        return _error(400, "BadRequest", f'"key": {exc}')
    except NoSuchBucket as exc:
        return _error(404, "NoSuchBucket", str(exc))


async def _quarantine(
    request: web.Request, rest: list[str], method: str, body: bytes
) -> web.Response:
    """List (GET) or purge (POST .../purge) the disks' quarantines."""
    store = request.app[STORE]
    if not rest and method == "GET":
        return web.json_response(await store.run_io(quarantine.report, store.diskset))
    if rest != ["purge"] or method != "POST":
        return _error(404, "NotFound", f"no admin endpoint {method} disks/quarantine/{rest}")
    doc = _body(body)
    older = doc.get("older_than_s")
    if isinstance(older, bool) or not isinstance(older, int | float):
        raise _BadRequest('"older_than_s" is required: a number of seconds >= 0')
    force = doc.get("force", False)
    if not isinstance(force, bool):
        raise _BadRequest('"force" must be true or false')
    try:
        result = await store.run_io(quarantine.purge, store.diskset, float(older), force)
    except quarantine.PurgeRefused as exc:
        return _error(409, "PurgeRefused", str(exc))
    log.warning(
        "quarantine purge (older than %g s): removed %d files, %d bytes",
        older,
        result["removed_files"],
        result["removed_bytes"],
    )
    return web.json_response(result)


def _store(request: web.Request) -> ObjectStore:
    return request.app[STORE]


async def _buckets(request: web.Request):
    return await _store(request).list_buckets()


def _action(before: DiskState, disk: dict) -> str:
    after = DiskState(disk["state"])
    if before != DiskState.HEALING and after == DiskState.HEALING:
        return "formatted the empty directory into the set; healing started"
    if after == DiskState.HEALING:
        return "healing in progress"
    if before == DiskState.OFFLINE and after == DiskState.ONLINE:
        return "back online"
    if after == DiskState.ONLINE:
        return "nothing to do: the disk is online and formatted"
    return f"still offline: {disk['problem']}"
