"""Metrics and health over HTTP, on the S3 server's own port, and request metrics.

Paths: /_s3free/metrics, /_s3free/livez, /_s3free/readyz. They live under /_s3free/ like the
admin API because no bucket can have that name ("_" is not allowed in bucket names), whereas
/metrics, /livez and /readyz would be GET Bucket on buckets a user may create (three to 63
lowercase letters, digits, dots and hyphens: all three names are valid), so they are not
served. A virtual-hosted request (Host: <bucket>.<domain>) is always S3: there
/_s3free/metrics is the key "_s3free/metrics" of that bucket.

/_s3free/metrics needs "Authorization: Bearer <metrics_token>" when a token is configured
(401 without one, 403 with a wrong one; compared in constant time). The health endpoints are
open (probes cannot sign) and tell nothing secret (s3free/obs/health.py).

    install(app, sources, token=..., bucket_of_host=...)  # once, before the app starts
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from s3free.obs import stage
from s3free.obs.health import readiness
from s3free.obs.metrics import (
    CLIENT_CLOSED,
    OP_ADMIN,
    OP_UNKNOWN,
    Metrics,
    Sources,
    Usage,
)
from s3free.obs.requestkeys import OPERATION

log = logging.getLogger(__name__)

PREFIX = "/_s3free/"
METRICS_PATH = "/_s3free/metrics"
LIVEZ_PATH = "/_s3free/livez"
READYZ_PATH = "/_s3free/readyz"
ADMIN_PREFIX = "/_s3free/admin/"
USAGE_TIMEOUT_S = 2.0  # a disk whose statvfs hangs longer is left out of the scrape

METRICS = web.AppKey("metrics", Metrics)


def install(
    app: web.Application,
    sources: Sources,
    *,
    token: str | None = None,
    bucket_of_host: Callable[[str], str | None] | None = None,
) -> Metrics:
    """Serve metrics and health on `app`, count its requests, time the stages, and time
    every disk call (disks wrapped in a MonitoredDisk)."""
    metrics = Metrics(sources)
    app[METRICS] = metrics
    endpoints: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
        METRICS_PATH: _scrape_handler(metrics, token),
        LIVEZ_PATH: _livez,
        READYZ_PATH: _readyz_handler(sources),
    }
    app.middlewares.append(_middleware(metrics, endpoints, bucket_of_host))
    for slot in sources.diskset.slots:
        if hasattr(slot.disk, "observe_io"):
            slot.disk.observe_io = metrics.disk_observer(slot.position)
    stage.add_observer(metrics.observe_stage)
    listeners = getattr(sources.store, "fault_listeners", None)
    if listeners is not None:
        listeners.append(metrics.on_fault)

    async def stop_observing(_app: web.Application) -> None:
        stage.remove_observer(metrics.observe_stage)
        if listeners is not None and metrics.on_fault in listeners:
            listeners.remove(metrics.on_fault)
        for slot in sources.diskset.slots:
            if hasattr(slot.disk, "observe_io"):
                slot.disk.observe_io = None

    app.on_cleanup.append(stop_observing)
    return metrics


def _middleware(
    metrics: Metrics,
    endpoints: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    bucket_of_host: Callable[[str], str | None] | None,
):
    @web.middleware
    async def observe(request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(PREFIX):
            endpoint = endpoints.get(path)
            if endpoint is not None and (
                bucket_of_host is None or bucket_of_host(request.host) is None
            ):
                return await endpoint(request)
        start = perf_counter()
        code = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        except (ConnectionError, asyncio.CancelledError):
            code = CLIENT_CLOSED
            raise
        finally:
            op = request.get(OPERATION) or (
                OP_ADMIN if path.startswith(ADMIN_PREFIX) else OP_UNKNOWN
            )
            metrics.observe_request(
                op,
                code,
                perf_counter() - start,
                request.content.total_bytes,
                _sent(request, response),
            )

    return observe


def _sent(request: web.Request, response: web.StreamResponse | None) -> int:
    """Body bytes sent: all of a streamed response's; a plain Response's body (sent by aiohttp
    after the middleware returns, so counted here before it is on the wire)."""
    if response is None or request.method == "HEAD":
        return 0
    if response.prepared:
        return response.body_length
    body = getattr(response, "body", None)
    if isinstance(body, bytes | bytearray):
        return len(body)
    return response.content_length or 0


def _scrape_handler(metrics: Metrics, token: str | None):
    expected = token.encode() if token else None

    async def scrape(request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return _text(405, "use GET\n", {"Allow": "GET, HEAD"})
        if expected is not None:
            given = request.headers.get("Authorization", "")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not credential.strip():
                return _text(
                    401,
                    "a bearer token is needed (Authorization: Bearer <metrics_token>)\n",
                    {"WWW-Authenticate": 'Bearer realm="s3free metrics"'},
                )
            if not hmac.compare_digest(credential.strip().encode(), expected):
                return _text(403, "wrong metrics token\n")
        metrics.set_usage(await _usage(metrics.sources))
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    return scrape


async def _usage(sources: Sources) -> Usage:
    """statvfs of every disk, in threads, each given USAGE_TIMEOUT_S (a hung disk is skipped)."""
    loop = asyncio.get_running_loop()
    slots = sources.diskset.slots

    def statvfs(slot) -> tuple[int, int]:
        disk = slot.disk
        while hasattr(disk, "inner"):  # past MonitoredDisk: a scrape is not disk traffic
            disk = disk.inner
        return disk.usage()

    results = await asyncio.gather(
        *(
            asyncio.wait_for(loop.run_in_executor(None, statvfs, slot), USAGE_TIMEOUT_S)
            for slot in slots
        ),
        return_exceptions=True,
    )
    held: list = []
    quarantine_of = getattr(sources.monitor, "quarantine_held", None)
    if quarantine_of is not None:
        held = await asyncio.gather(
            *(
                asyncio.wait_for(loop.run_in_executor(None, quarantine_of, slot), USAGE_TIMEOUT_S)
                for slot in slots
            ),
            return_exceptions=True,
        )
    return Usage(
        {
            slot.position: None if isinstance(result, BaseException) else result
            for slot, result in zip(slots, results, strict=True)
        },
        {
            slot.position: result
            for slot, result in zip(slots, held, strict=False)
            if isinstance(result, dict)
        },
    )


async def _livez(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "live"})


def _readyz_handler(sources: Sources):
    async def readyz(request: web.Request) -> web.StreamResponse:
        ready, body = readiness(sources)
        return web.json_response(body, status=200 if ready else 503)

    return readyz


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=text, headers=headers)
