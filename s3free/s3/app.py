"""The aiohttp application: one catch-all route that parses the request into an S3 operation,
authenticates it, checks access, and hands it to the operation's handler (s3free/s3/ops).

Requests for s3free's own endpoints under /_s3free/ on the service host go to the `admin`
handler the server passes in (this layer never imports the admin API); on a bucket's virtual
host the same path is an object key. The request id, the request limit, the in-flight count,
tracing and the mapping of errors to S3 XML are middlewares (s3free/s3/middlewares.py). Every
response carries x-amz-request-id and x-amz-id-2.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11

from s3free.appkeys import INFLIGHT, PARSED, SETTINGS, STORE, USERS, Ctx, InFlight, Settings
from s3free.engine import ObjectStore
from s3free.meta.users import UserStore
from s3free.obs.requestkeys import OPERATION, REQUEST_ID, USER
from s3free.s3 import access
from s3free.s3.auth import authenticate_request
from s3free.s3.middlewares import CHAIN
from s3free.s3.ops import HANDLERS
from s3free.s3.request import is_admin_path, parse

RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    store: ObjectStore | None,
    users: UserStore | None,
    settings: Settings,
    *,
    admin: RequestHandler | None = None,
) -> web.Application:
    """The S3 application. `store` and `users` may be None when the server opens them at
    start-up (it sets STORE and USERS then). Its own middlewares are added when it starts, so
    they run inside any the server installs before or during start-up (the connection guard,
    metrics)."""
    # auto_decompress off: an object sent with Content-Encoding: gzip is stored as sent.
    app = web.Application(
        client_max_size=0, handler_args={"max_field_size": 64 * 1024, "auto_decompress": False}
    )
    if store is not None:
        app[STORE] = store
    if users is not None:
        app[USERS] = users
    app[SETTINGS] = settings
    app[INFLIGHT] = InFlight()
    handler = _route(admin) if admin is not None else dispatch
    # keys may hold newlines
    app.router.add_route("*", r"/{tail:[\s\S]*}", handler, expect_handler=_expect_continue)
    app.on_response_prepare.append(_stamp)
    app.on_startup.append(_innermost_middlewares)  # after the cleanup contexts have run
    return app


async def _expect_continue(request: web.Request) -> None:
    """`Expect: 100-continue` gets its interim response, so the client sends the body; any
    other Expect value is ignored, as S3 does (aiohttp's default handler answers it 417)."""
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version == HttpVersion11 and expect.lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim response is not the reply's body


async def _innermost_middlewares(app: web.Application) -> None:
    app.middlewares.extend(CHAIN)


def _route(admin: RequestHandler) -> RequestHandler:
    """s3free's own endpoints to `admin`, everything else to S3."""

    async def route(request: web.Request) -> web.StreamResponse:
        if is_admin_path(request.path, request.host, request.app[SETTINGS].domain):
            return await admin(request)
        return await dispatch(request)

    return route


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    rid = request.get(REQUEST_ID, "")
    response.headers["x-amz-request-id"] = rid
    response.headers["x-amz-id-2"] = rid
    response.headers["Server"] = "s3free"
    if request.app[INFLIGHT].draining:
        response.headers["Connection"] = "close"


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Parse, authenticate, check access, run the operation (errors: the s3_errors
    middleware)."""
    app = request.app
    settings = app[SETTINGS]
    s3 = parse(
        request.method,
        request.raw_path.split("?", 1)[0],
        request.query,
        request.host,
        domain=settings.domain,
        copy_source="x-amz-copy-source" in request.headers,
    )
    request[PARSED] = s3  # the operation, for the access log, the span and errors
    request[OPERATION] = s3.op
    users = app[USERS]
    auth = authenticate_request(request, users, region=settings.region, domain=settings.domain)
    user = users.lookup(auth.credentials.access_key) if auth.credentials else None
    request[USER] = user.name if user else "anonymous"  # for the access log
    ctx = Ctx(request, s3, auth, user, app[STORE], users, settings, request[REQUEST_ID])
    await access.check(ctx)
    return await HANDLERS[s3.op](ctx)
