"""The request limit (`requests_max`): S3 requests handled at once, the rest answered 503
SlowDown at once, as AWS S3 and MinIO do, which every SDK retries with backoff.

One aiohttp middleware counts the S3 requests in its handler (reading the body and writing the
answer included) and refuses one over the limit before anything else is done for it: no
authentication, no body read. The admin API and the health and metrics endpoints are neither
counted nor limited, so an operator can look at a server that is full. The limit can change
while the server runs (SIGHUP, s3free/reload.py): requests are always counted, so a lower
limit holds from the next request on.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from s3free.s3.errors import S3Error
from s3free.s3.request import ADMIN_PREFIX

# Endpoints that must answer while the server is full (load balancer probes, scrapes).
UNLIMITED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class RequestLimiter:
    """S3 requests in their handler now (`active`), the limit (0: none), and how many were
    refused since start (`refused`)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0

    def exempt(self, path: str) -> bool:
        return path.startswith(ADMIN_PREFIX) or path in UNLIMITED_PATHS


LIMITER = web.AppKey("limiter", RequestLimiter)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def limit_requests(request: web.Request, handler: _Handler) -> web.StreamResponse:
    limiter = request.app[LIMITER]
    if limiter.exempt(request.path):
        return await handler(request)
    if 0 < limiter.limit <= limiter.active:
        limiter.refused += 1
        return _slow_down(request)
    limiter.active += 1
    try:
        return await handler(request)
    finally:
        limiter.active -= 1


def _slow_down(request: web.Request) -> web.Response:
    from s3free.s3.app import error_response  # app.py installs this module's middleware

    rid = os.urandom(8).hex().upper()
    request["request_id"] = rid
    exc = S3Error(
        "SlowDown",
        "Please reduce your request rate: the server is handling as many requests as it may.",
        **{"header:Retry-After": "1"},
    )
    return error_response(exc, request.path, rid, request.method)
