"""The S3 application's middlewares, each concern in one place. `CHAIN` is their order,
outermost first:

- `request_id`: every request handled gets its id (x-amz-request-id, the access log, every
  log line of the request), a refused one included;
- `limit_requests` (s3free/s3/limits.py): over the request limit, 503 SlowDown at once;
- `count_in_flight`: what a shutdown waits for before it closes connections;
- `trace`: the request's span, when tracing is on (s3free/obs/tracing.py);
- `s3_errors`: exceptions become S3's <Error> XML here and only here: S3Error as is, engine
  errors through `errors.from_storage`, anything else as InternalError (logged with the
  request id). A client that went away is not our error: it is re-raised.

The server installs the connection guard and the metrics middleware outside these (the
metrics count every answer, SlowDown included, and serve /_s3free/metrics before a request
id is made).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from s3free.appkeys import INFLIGHT, PARSED
from s3free.errors import StorageError
from s3free.obs import tracing
from s3free.obs.context import REQUEST_ID as LOG_REQUEST_ID
from s3free.obs.requestkeys import REQUEST_ID
from s3free.s3.errors import S3Error, from_storage
from s3free.s3.errorxml import error_response
from s3free.s3.limits import limit_requests
from s3free.s3.readfail import log_read_failure

log = logging.getLogger("s3free.s3.app")  # the logger these lines always had

RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_id(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    rid = os.urandom(8).hex().upper()
    request[REQUEST_ID] = rid
    LOG_REQUEST_ID.set(rid)  # on every log line of this request (aiohttp runs it in its own task)
    return await handler(request)


@web.middleware
async def count_in_flight(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    inflight = request.app[INFLIGHT]
    inflight.enter()
    try:
        return await handler(request)
    finally:
        inflight.leave()


@web.middleware
async def trace(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    if tracing.tracer is not None:  # the whole cost of tracing when it is off
        return await tracing.traced(request, handler)
    return await handler(request)


@web.middleware
async def s3_errors(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    try:
        return await handler(request)
    except S3Error as exc:
        return error_response(exc, _resource(request), request[REQUEST_ID], request.method)
    except StorageError as exc:
        resource = _resource(request)
        log_read_failure(exc, resource)
        return error_response(from_storage(exc), resource, request[REQUEST_ID], request.method)
    except (ConnectionError, web.HTTPException):  # the client went away: not our error
        raise
    except Exception:
        rid = request[REQUEST_ID]
        log.exception("request %s %s failed (request id %s)", request.method, request.path, rid)
        return error_response(
            S3Error("InternalError", "We encountered an internal error. Please try again."),
            _resource(request),
            rid,
            request.method,
        )


def _resource(request: web.Request) -> str:
    """/bucket/key once the request is parsed, else the path as asked."""
    s3 = request.get(PARSED)
    return request.path if s3 is None else s3.resource


CHAIN = (request_id, limit_requests, count_in_flight, trace, s3_errors)
