"""The request limit (`requests_max`): S3 requests handled at once, the rest answered 503
SlowDown at once, as AWS S3 and MinIO do, which every SDK retries with backoff.

One aiohttp middleware counts the S3 requests in its handler (reading the body and writing the
answer included) and refuses one over the limit before anything else is done for it: no
authentication, no body read. Everything under /_s3free/ (admin API, /_s3free/metrics,
/_s3free/livez, /_s3free/readyz) is neither counted nor limited, so an operator and the
probes can look at a server that is full. The limit can change while the server runs (SIGHUP,
s3free/reload.py): requests are always counted, so a lower limit holds from the next request on.

The middleware is one of the S3 application's (s3free/s3/middlewares.py), inside the request
id (a refusal has one) and the metrics middleware (a refusal is counted as a 503 like any
other answer); `install(app, limit)` sets the limit, and without it nothing is limited.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from s3free.appkeys import LIMITER, SETTINGS, RequestLimiter
from s3free.obs.requestkeys import REQUEST_ID
from s3free.s3.errors import S3Error
from s3free.s3.errorxml import error_response
from s3free.s3.request import is_admin_path


def install(app: web.Application, limit: int = 0) -> RequestLimiter:
    """Limit the app's S3 requests to `limit` at once (0: none); before the app starts."""
    limiter = RequestLimiter(limit)
    app[LIMITER] = limiter
    return limiter


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def exempt(request: web.Request) -> bool:
    """s3free's own endpoints (admin, metrics, health), not a bucket's "_s3free/" keys."""
    return is_admin_path(request.path, request.host, request.app[SETTINGS].domain)


@web.middleware
async def limit_requests(request: web.Request, handler: _Handler) -> web.StreamResponse:
    limiter = request.app.get(LIMITER)
    if limiter is None or exempt(request):  # no limit installed (an app without a server)
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
    exc = S3Error(
        "SlowDown",
        "Please reduce your request rate: the server is handling as many requests as it may.",
        fields={"header:Retry-After": "1"},
    )
    return error_response(exc, request.path, request[REQUEST_ID], request.method)
