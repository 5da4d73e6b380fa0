"""The request limit (`requests_max`): S3 requests handled at once, the rest answered 503
SlowDown at once, as AWS S3 and MinIO do, which every SDK retries with backoff.

One aiohttp middleware counts the S3 requests in its handler (reading the body and writing the
answer included) and refuses one over the limit before anything else is done for it: no
authentication, no body read. Everything under /_s3free/ (admin API, /_s3free/metrics,
/_s3free/livez, /_s3free/readyz) is neither counted nor limited, so an operator and the
probes can look at a server that is full. The limit can change while the server runs (SIGHUP,
s3free/reload.py): requests are always counted, so a lower limit holds from the next request on.

`install(app, limit)` is called by the server after the metrics middleware is installed, so
this one runs inside it and a refusal is counted as a 503 like any other answer.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from s3free.obs.context import REQUEST_ID
from s3free.obs.requestkeys import REQUEST_ID as REQUEST_ID_KEY
from s3free.s3.errors import S3Error
from s3free.s3.request import is_admin_path


class RequestLimiter:
    """S3 requests in their handler now (`active`), the limit (0: none), and how many were
    refused since start (`refused`)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0

    def exempt(self, request: web.Request) -> bool:
        """s3free's own endpoints (admin, metrics, health), not a bucket's "_s3free/" keys."""
        from s3free.s3.app import SETTINGS  # app.py imports the handlers: import late

        return is_admin_path(request.path, request.host, request.app[SETTINGS].domain)


LIMITER = web.AppKey("limiter", RequestLimiter)


def install(app: web.Application, limit: int = 0) -> RequestLimiter:
    """Limit the app's S3 requests (before it starts; middlewares added later run inside)."""
    limiter = RequestLimiter(limit)
    app[LIMITER] = limiter
    app.middlewares.append(limit_requests)
    return limiter


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def limit_requests(request: web.Request, handler: _Handler) -> web.StreamResponse:
    limiter = request.app[LIMITER]
    if limiter.exempt(request):
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
    from s3free.s3.app import error_response  # app.py imports the handlers: import late

    rid = os.urandom(8).hex().upper()
    request[REQUEST_ID_KEY] = rid
    REQUEST_ID.set(rid)  # log lines of this refusal carry its id, as dispatch does
    exc = S3Error(
        "SlowDown",
        "Please reduce your request rate: the server is handling as many requests as it may.",
        **{"header:Retry-After": "1"},
    )
    return error_response(exc, request.path, rid, request.method)
