"""The aiohttp application: one catch-all route that parses the request into an S3 operation,
authenticates it, checks access, and hands it to the operation's handler.

Errors become S3 XML here and only here: S3Error as is, engine errors through
`errors.from_storage`, anything else as InternalError (logged with the request id). Every
response carries x-amz-request-id and x-amz-id-2.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from s3free.engine import ObjectStore
from s3free.errors import StorageError
from s3free.meta.users import User, UserStore
from s3free.obs import tracing
from s3free.obs.context import REQUEST_ID
from s3free.obs.requestkeys import OPERATION, S3_REQUEST, USER
from s3free.obs.requestkeys import REQUEST_ID as REQUEST_ID_KEY
from s3free.s3 import access
from s3free.s3.errors import S3Error, from_storage
from s3free.s3.readfail import log_read_failure
from s3free.s3.request import S3Request, is_admin_path, parse, split_host_bucket
from s3free.s3.sigv2 import authenticate_v2
from s3free.s3.sigv4 import AuthResult, Credentials, authenticate
from s3free.s3.xmlio import add, element, render

log = logging.getLogger(__name__)


class InFlight:
    """Requests being handled, so a shutdown can wait for them: aiohttp stops reading request
    bodies once it starts closing connections, so the server must first stop accepting, then
    wait here, and only then close connections."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if the timeout came first."""
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


@dataclass
class Settings:
    region: str = "us-east-1"
    domain: str | None = None


@dataclass
class Ctx:
    """Everything a handler needs for one request."""

    request: web.Request
    s3: S3Request
    auth: AuthResult
    user: User | None
    store: ObjectStore
    users: UserStore
    settings: Settings
    request_id: str
    extra: dict = field(default_factory=dict)


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]

STORE = web.AppKey("store", ObjectStore)
USERS = web.AppKey("users", UserStore)
SETTINGS = web.AppKey("settings", Settings)
HANDLERS = web.AppKey("handlers", dict)
INFLIGHT = web.AppKey("inflight", InFlight)


def make_app(store: ObjectStore, users: UserStore, settings: Settings) -> web.Application:
    from s3free.s3.ops import HANDLERS as OPS

    # auto_decompress off: an object sent with Content-Encoding: gzip is stored as sent.
    app = web.Application(
        client_max_size=0, handler_args={"max_field_size": 64 * 1024, "auto_decompress": False}
    )
    app[STORE] = store
    app[USERS] = users
    app[SETTINGS] = settings
    app[HANDLERS] = OPS
    app[INFLIGHT] = InFlight()
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch)  # keys may hold newlines
    app.on_response_prepare.append(_stamp)
    return app


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    rid = request.get(REQUEST_ID_KEY, "")
    response.headers["x-amz-request-id"] = rid
    response.headers["x-amz-id-2"] = rid
    response.headers["Server"] = "s3free"
    if request.app[INFLIGHT].draining:
        response.headers["Connection"] = "close"


def lookup_credentials(users: UserStore) -> Callable[[str], Credentials | None]:
    def lookup(access_key: str) -> Credentials | None:
        user = users.lookup(access_key)
        return Credentials(user.access_key, user.secret_key, user.name) if user else None

    return lookup


async def dispatch(request: web.Request) -> web.StreamResponse:
    inflight = request.app[INFLIGHT]
    inflight.enter()
    try:
        if tracing.tracer is not None:  # the whole cost of tracing when it is off
            return await tracing.traced(request, _dispatch)
        return await _dispatch(request)
    finally:
        inflight.leave()


async def _dispatch(request: web.Request) -> web.StreamResponse:
    rid = os.urandom(8).hex().upper()
    request[REQUEST_ID_KEY] = rid
    REQUEST_ID.set(rid)  # on every log line of this request (aiohttp runs it in its own task)
    app = request.app
    resource = request.path
    try:
        if is_admin_path(request.path, request.host, app[SETTINGS].domain):
            from s3free.admin.api import handle_admin

            return await handle_admin(request)
        s3 = parse(
            request.method,
            request.raw_path.split("?", 1)[0],
            request.query,
            request.host,
            domain=app[SETTINGS].domain,
            copy_source="x-amz-copy-source" in request.headers,
        )
        resource = s3.resource
        request[S3_REQUEST] = s3  # the operation, for the access log and the span
        request[OPERATION] = s3.op
        auth = authenticate_v2(
            method=request.method,
            path=request.raw_path.split("?", 1)[0],
            query=list(request.query.items()),
            headers=request.headers,
            lookup=lookup_credentials(app[USERS]),
            bucket=split_host_bucket(request.host, app[SETTINGS].domain),
        ) or authenticate(
            method=request.method,
            path=request.raw_path.split("?", 1)[0],
            query=list(request.query.items()),
            headers=request.headers,
            lookup=lookup_credentials(app[USERS]),
            region=app[SETTINGS].region,
        )
        user = app[USERS].lookup(auth.credentials.access_key) if auth.credentials else None
        request[USER] = user.name if user else "anonymous"  # for the access log
        ctx = Ctx(request, s3, auth, user, app[STORE], app[USERS], app[SETTINGS], rid)
        await access.check(ctx)
        return await app[HANDLERS][s3.op](ctx)
    except S3Error as exc:
        return error_response(exc, resource, rid, request.method)
    except StorageError as exc:
        log_read_failure(exc, resource)
        return error_response(from_storage(exc), resource, rid, request.method)
    except (ConnectionError, web.HTTPException):  # the client went away: not our error
        raise
    except Exception:
        log.exception("request %s %s failed (request id %s)", request.method, request.path, rid)
        return error_response(
            S3Error("InternalError", "We encountered an internal error. Please try again."),
            resource,
            rid,
            request.method,
        )


def error_response(exc: S3Error, resource: str, rid: str, method: str) -> web.Response:
    """S3's <Error> document; extra items named "header:<Name>" become response headers."""
    headers = {k[7:]: v for k, v in exc.extra.items() if k.startswith("header:")}
    if exc.status == 304:
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/xml"
    if method == "HEAD":
        return web.Response(status=exc.status, headers=headers)
    body = render(
        add(
            element("Error"),
            ("Code", exc.code),
            ("Message", exc.message),
            [(k, v) for k, v in exc.extra.items() if not k.startswith("header:")],
            ("Resource", resource),
            ("RequestId", rid),
        ),
        namespace=False,
    )
    return web.Response(status=exc.status, body=body, headers=headers)
