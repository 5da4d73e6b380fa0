"""The web layer's shared vocabulary: the typed aiohttp app keys and the per-request context.

It sits below both `s3/` and `admin/` (and above heal and the engine, whose types it names),
so the S3 handler, the admin handler and the server that wires them meet here instead of
importing each other. It holds data and small state objects only, no behaviour of either
handler.

Keys defined elsewhere, on purpose: `obs.live.LIVE` and `obs.endpoints.METRICS` (observability
is the lowest layer and cannot import this module), `admin.info.REBUILDER` (its type is the
admin API's own rebuilder, set and read only by the admin layer). The request keys the
observability layer reads (request id, operation, user) stay in `obs/requestkeys.py` for the
same reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from aiohttp import web
from multidict import MultiDictProxy

from s3free.engine import ObjectStore
from s3free.engine.diskmonitor import DiskMonitor
from s3free.engine.types import BucketInfo
from s3free.heal import HealService
from s3free.meta.users import User, UserStore
from s3free.obs.requestkeys import S3_REQUEST


@dataclass
class Settings:
    """What the S3 layer needs of the configuration, fixed for the server's life."""

    region: str = "us-east-1"
    domain: str | None = None


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


class RequestLimiter:
    """The request limit (`requests_max`, s3free/s3/limits.py): S3 requests in their handler
    now (`active`), the limit (0: none; a SIGHUP may change it), and how many were refused
    since start (`refused`)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.active = 0
        self.refused = 0


@dataclass(frozen=True)
class S3Request:
    """A parsed S3 request (s3free/s3/request.py `parse`): which operation on what."""

    method: str
    op: str
    bucket: str
    key: str
    query: MultiDictProxy[str]
    raw_path: str  # path as sent, percent-encoded, without the query string

    @property
    def resource(self) -> str:
        """The <Resource> of an error: /bucket/key as S3 reports it."""
        if not self.bucket:
            return "/"
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    user: str


@dataclass(frozen=True)
class AuthResult:
    """Who signed the request, and what a chunked body needs to verify its chunk signatures.

    `credentials` is None for an anonymous request (no Authorization header and no presigned
    query). `payload` is the `x-amz-content-sha256` value (a lowercase hex SHA-256, or one of
    `s3.auth.sigv4.PAYLOAD_LITERALS`); for presigned URLs it is "UNSIGNED-PAYLOAD" unless the
    URL signed an `X-Amz-Content-Sha256` parameter. `seed_signature` is the verified request
    signature that chunk signatures chain from; `scope` is "YYYYMMDD/region/s3/aws4_request".
    """

    credentials: Credentials | None
    payload: str
    presigned: bool
    signing_key: bytes = field(default=b"", repr=False)
    seed_signature: str = ""
    amz_date: str = ""
    scope: str = ""

    @property
    def anonymous(self) -> bool:
        return self.credentials is None


@dataclass
class Ctx:
    """Everything an S3 operation handler needs for one request."""

    request: web.Request
    s3: S3Request
    auth: AuthResult
    user: User | None
    store: ObjectStore
    users: UserStore
    settings: Settings
    request_id: str
    # Set by access.check: the bucket's record (every operation on a bucket has one), and
    # whether only a public-read object may be read (the rights did not cover the bucket).
    bucket_info: BucketInfo | None = None
    public_object_only: bool = False

    @property
    def signer(self) -> User:
        """Who signed: for the operations access.check refuses to anonymous requests."""
        if self.user is None:
            raise RuntimeError(f"{self.s3.op} reached its handler unsigned")
        return self.user

    @property
    def bucket(self) -> BucketInfo:
        """The bucket access.check looked up; only for operations on a bucket."""
        if self.bucket_info is None:
            raise RuntimeError(f"{self.s3.op} has no bucket looked up by access.check")
        return self.bucket_info


PARSED = cast("web.RequestKey[S3Request]", S3_REQUEST)
"""The parsed request on the aiohttp request: obs's S3_REQUEST key (the access log and the span
read it), typed here, where S3Request can be named."""

OpHandler = Callable[[Ctx], Awaitable[web.StreamResponse]]
"""An S3 operation handler (s3free/s3/ops): the context in, the response out."""

STORE = web.AppKey("store", ObjectStore)
USERS = web.AppKey("users", UserStore)
SETTINGS = web.AppKey("settings", Settings)
INFLIGHT = web.AppKey("inflight", InFlight)
LIMITER = web.AppKey("limiter", RequestLimiter)
DISKS = web.AppKey("disks", DiskMonitor)  # set by the server; the admin disk routes need it
HEAL = web.AppKey("heal", HealService)  # absent when the heal service is not running
STARTED_AT = web.AppKey("started_at", float)  # time.time() when the server started
