"""Connection limits: what keeps an unauthenticated client from stopping the server by opening
or holding connections (issue 12). aiohttp closes idle keep-alive connections
(`keepalive_timeout`, here `idle_timeout_s`, also before a connection's first request) but has
no header-read timeout, no cap on connections and no timeout on a client that stops reading a
response, so every connection's protocol is wrapped here (`ConnectionGuard.factory`):

- header timeout: a request head (request line and headers) must be complete within
  `header_timeout_s` of its first byte, else 408 and the connection is closed (slowloris);
- stall timeout: a request whose client reads nothing of the response (the send buffer stays
  full) or sends nothing of the body the handler waits for, for `stall_timeout_s`, is aborted,
  so its shard files and buffers are freed;
- `connections_max`: at the cap a new connection closes the one idle the longest (no request
  in progress: an idle flood churns through itself while real clients get in, as nginx reuses
  keep-alive connections); when every connection is busy the new one gets 503 SlowDown-style
  `Retry-After: 1` and is closed. The default is derived from the descriptor limit
  (`derived_connections_max`), which `raise_fd_limit` raises to the hard limit at start;
- asyncio's "socket.accept() out of system resource" is logged at most once a minute
  (`limit_accept_errors`), and so are the guard's own closes.

A client that goes away mid-request costs one INFO line, not aiohttp's ERROR traceback
(`middleware`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from s3free.obs.ratelimit import LogLimiter

log = logging.getLogger(__name__)

FD_RESERVE_BASE = 192  # the store's own files (index, logs, pipes) and an accept burst:
# asyncio accepts up to the listen backlog (128) sockets before the guard sees the first
FD_RESERVE_PER_DISK = 16  # ...and per disk: probes, scrub and heal files, format.json
CONNECTIONS_CEILING = 10_000  # the derived cap never goes above this (memory, not fds)
CONNECTIONS_FLOOR = 8
CLIENT_CLOSED = 499  # nginx's code for "the client went away first" (access log, metrics)

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 46\r\n\r\n"
    b"too many connections at once, try again later\n"
)
_HEAD_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 43\r\n\r\nrequest header not complete within timeout\n"
)


@dataclass(frozen=True)
class ConnLimits:
    connections_max: int
    header_timeout_s: float = 30.0
    idle_timeout_s: float = 60.0
    stall_timeout_s: float = 120.0


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; (before, now)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    big = 1 << 20  # what "unlimited" is taken as (Linux's default fs.nr_open)
    before = big if soft == resource.RLIM_INFINITY else soft
    target = big if hard == resource.RLIM_INFINITY else hard
    if before < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return before, target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the file descriptor limit to %d: %s", target, exc)
    return before, before


def fd_reserve(disks: int) -> int:
    """Descriptors kept for the store's own files, never given to connections."""
    return FD_RESERVE_BASE + FD_RESERVE_PER_DISK * disks


def derived_connections_max(fd_limit: int, disks: int) -> int:
    """The default cap: what the reserve leaves, shared so that every connection can hold its
    socket and a shard file on each disk (a GET reads from them all) at once."""
    room = (fd_limit - fd_reserve(disks)) // (1 + disks)
    return max(CONNECTIONS_FLOOR, min(CONNECTIONS_CEILING, room))


def plan(configured: int, fd_limit: int, disks: int) -> tuple[int, str]:
    """The cap to use (`configured`, 0 meaning derived) and a warning ("" for none) when it
    leaves too few descriptors for the store."""
    if configured == 0:
        cap = derived_connections_max(fd_limit, disks)
        if fd_limit - fd_reserve(disks) < cap * (1 + disks):
            return cap, (
                f"the file descriptor limit {fd_limit} is low for {disks} disks: raise it "
                f"(ulimit -n, LimitNOFILE=) to at least {fd_reserve(disks) + 64 * (1 + disks)}"
            )
        return cap, ""
    if configured > fd_limit - fd_reserve(disks):
        return configured, (
            f"connections_max {configured} leaves fewer than {fd_reserve(disks)} of the "
            f"{fd_limit} file descriptors for the store's own files: a flood of connections "
            "can make its disk I/O fail (leave connections_max at 0 to derive it)"
        )
    return configured, ""


class GuardedProtocol(asyncio.Protocol):
    """One connection: aiohttp's RequestHandler behind it, plus what the guard watches."""

    def __init__(self, guard: ConnectionGuard, handler: RequestHandler) -> None:
        self.guard = guard
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.refused = False
        self.busy = False  # a request is in the app (set by the guard's middleware)
        self.head_since: float | None = None  # first byte of an incomplete request head
        self.last_rx = time.monotonic()
        self.paused_since: float | None = None  # the send buffer has been full since

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.guard._admit(self):
            self.refused = True
            _shut(self.transport, _BUSY)
            return
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard._forget(self)
        if not self.refused:
            self.handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        handler = self.handler
        now = self.last_rx = time.monotonic()
        self.guard._touch(self)
        if self.head_since is None and not self.busy and _idle(handler):
            self.head_since = now
        handler.data_received(data)
        if not _idle(handler):
            self.head_since = None

    def eof_received(self) -> bool | None:
        if not self.refused:
            self.handler.eof_received()  # returns None: the transport closes itself
        return None

    def pause_writing(self) -> None:
        self.paused_since = time.monotonic()
        if not self.refused:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.paused_since = None
        if not self.refused:
            self.handler.resume_writing()


def _idle(handler: RequestHandler) -> bool:
    """No request parsed and waiting, none in its handler."""
    return not (
        getattr(handler, "_messages", None)
        or getattr(handler, "_request_in_progress", False)
        or getattr(handler, "_current_request", None) is not None
    )


def _waits_for_body(handler: RequestHandler) -> bool:
    request = getattr(handler, "_current_request", None)
    return request is not None and getattr(request.content, "_waiter", None) is not None


def _shut(transport: asyncio.Transport | None, message: bytes = b"") -> None:
    """Close now: send `message` if the socket takes it, and never wait on a client that
    reads nothing (a transport's close() would wait for its buffer to drain)."""
    if transport is None or transport.is_closing():
        return
    if message:
        with contextlib.suppress(Exception):
            transport.write(message)
    if transport.get_write_buffer_size():
        transport.abort()
    else:
        transport.close()


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectionGuard:
    """The connections of one server and the limits they are held to (module docstring)."""

    def __init__(self, limits: ConnLimits) -> None:
        self.limits = limits
        # Every admitted connection, the least recently active first (eviction order).
        self._conns: OrderedDict[GuardedProtocol, None] = OrderedDict()
        self._of: dict[RequestHandler, GuardedProtocol] = {}
        self.refused = 0
        self.evicted = 0
        self.head_timeouts = 0
        self.stalled = 0
        self._log = LogLimiter(60.0)
        self._task: asyncio.Task | None = None
        self._trim = False  # something was cut: give its freed buffers back at the next tick

    @property
    def open(self) -> int:
        return len(self._conns)

    def factory(self, make_handler: Callable[[], RequestHandler]) -> Callable[[], GuardedProtocol]:
        """The protocol factory for loop.create_server: aiohttp's, wrapped."""
        return lambda: GuardedProtocol(self, make_handler())

    # -- admission -----------------------------------------------------------------------------

    def _admit(self, conn: GuardedProtocol) -> bool:
        if len(self._conns) >= self.limits.connections_max:
            victim = next((c for c in self._conns if not c.busy and _idle(c.handler)), None)
            if victim is None:
                self.refused += 1
                self._note("refused", "new connection refused with 503: all %d connections busy")
                return False
            self.evicted += 1
            self._note("evicted", "at the cap of %d connections: closed the one idle the longest")
            self._drop(victim)
            _shut(victim.transport)
        self._conns[conn] = None
        self._of[conn.handler] = conn
        return True

    def _drop(self, conn: GuardedProtocol) -> None:
        self._conns.pop(conn, None)
        self._of.pop(conn.handler, None)

    def _forget(self, conn: GuardedProtocol) -> None:
        self._drop(conn)

    def _touch(self, conn: GuardedProtocol) -> None:
        if conn in self._conns:
            self._conns.move_to_end(conn)

    def _note(self, kind: str, text: str) -> None:
        skipped = self._log.admit(kind)
        if skipped is not None:
            more = f" ({skipped} more like it since the last line)" if skipped else ""
            log.info(text + "%s", self.limits.connections_max, more)

    # -- the middleware: busy marks, and a client that went away -------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Outermost: marks the connection busy while its request is in the app (never
        evicted, never timed out for its header), and turns a client that went away into
        one INFO line and a 499 in the access log, instead of aiohttp's ERROR traceback."""
        conn = self._of.get(request.protocol)
        if conn is not None:
            conn.busy, conn.head_since = True, None
        try:
            return await handler(request)
        except ConnectionError as exc:
            transport = request.transport
            if transport is not None and not transport.is_closing():
                raise  # not the client's connection: a real error, reported as such
            log.info(
                "%s %s: the client closed the connection before the response was complete (%s)",
                request.method,
                request.path,
                str(exc) or type(exc).__name__,
            )
            return web.Response(status=CLIENT_CLOSED)  # never sent: the access log's status
        finally:
            if conn is not None:
                conn.busy, conn.head_since = False, None
                self._touch(conn)

    # -- the timeouts ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        lim = self.limits
        tick = max(0.05, min(1.0, min(lim.header_timeout_s, lim.stall_timeout_s) / 4))
        while True:
            await asyncio.sleep(tick)
            try:
                self.sweep(time.monotonic())
            except Exception:  # never let one bad connection stop the guard
                log.exception("connection sweep failed")

    def sweep(self, now: float) -> None:
        """Close what overran a timeout (called every tick)."""
        lim = self.limits
        if self._trim:
            self._trim = False
            release_memory()
        for conn in list(self._conns):
            handler = conn.handler
            if not conn.busy and _idle(handler):
                if conn.head_since is not None and now - conn.head_since > lim.header_timeout_s:
                    self.head_timeouts += 1
                    self._note_timeout(
                        "head", "closed a connection: request header not complete within %g s"
                    )
                    self._drop(conn)
                    _shut(conn.transport, _HEAD_TIMEOUT)
                continue
            stalled = ""
            if conn.paused_since is not None and now - conn.paused_since > lim.stall_timeout_s:
                stalled = "the client read nothing of the response"
            elif _waits_for_body(handler) and now - conn.last_rx > lim.stall_timeout_s:
                stalled = "the client sent nothing of the request body"
            if stalled:
                self.stalled += 1
                self._trim = True
                self._note_timeout("stall", f"aborted a request: {stalled} for %g s")
                self._drop(conn)
                if conn.transport is not None:
                    conn.transport.abort()

    def _note_timeout(self, kind: str, text: str) -> None:
        seconds = self.limits.header_timeout_s if kind == "head" else self.limits.stall_timeout_s
        skipped = self._log.admit(kind)
        if skipped is not None:
            more = f" ({skipped} more like it since the last line)" if skipped else ""
            log.info(text + "%s", seconds, more)


def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


_MALLOC_TRIM = _libc_trim()


def release_memory() -> None:
    """Give the memory freed by cut requests back to the system (glibc's malloc_trim): their
    send buffers and read-ahead blocks are large, and glibc keeps such freed memory in its
    arenas, so the process would stay as large as at the worst moment of a stall attack."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


ACCEPT_ERROR = "socket.accept() out of system resource"


def limit_accept_errors(loop: asyncio.AbstractEventLoop, every_s: float = 60.0) -> None:
    """asyncio logs an ERROR with a traceback for every failed accept (thousands a second
    when descriptors run out): one line per `every_s` instead, with the count."""
    limiter = LogLimiter(every_s)
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if str(context.get("message", "")).startswith(ACCEPT_ERROR):
            skipped = limiter.admit()
            if skipped is not None:
                more = f" ({skipped} more since the last line)" if skipped else ""
                log.error(
                    "accepting a connection failed: %s; accepting pauses 1 s%s (raise the fd "
                    "limit or lower connections_max)",
                    context.get("exception"),
                    more,
                )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose sites serve through the guard: `server`, which TCPSite uses as the
    protocol factory, is aiohttp's Server wrapped (its connections, shutdown and cleanup are
    aiohttp's as before)."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs) -> None:
        super().__init__(app, keepalive_timeout=guard.limits.idle_timeout_s, **kwargs)
        self.guard = guard

    @property
    def server(self) -> Any:  # TCPSite's protocol factory: the guard's, around aiohttp's Server
        inner = super().server
        return None if inner is None else self.guard.factory(inner)
