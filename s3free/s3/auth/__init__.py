"""Request authentication: SigV4 (`sigv4.py`) and SigV2 (`sigv2.py`) verification over one
shared skeleton (`common.py`), and the entry point both the S3 and the admin handler use.

The verifiers take plain values (method, raw path, decoded query, headers), so they are
tested without a server; `authenticate_request` feeds them from an aiohttp request.
"""

from __future__ import annotations

from aiohttp import web

from s3free.appkeys import AuthResult, Credentials
from s3free.meta.users import UserStore
from s3free.s3.auth.common import Lookup
from s3free.s3.auth.sigv2 import authenticate_v2
from s3free.s3.auth.sigv4 import authenticate
from s3free.s3.request import split_host_bucket


def lookup_credentials(users: UserStore) -> Lookup:
    def lookup(access_key: str) -> Credentials | None:
        user = users.lookup(access_key)
        return Credentials(user.access_key, user.secret_key, user.name) if user else None

    return lookup


def authenticate_request(
    request: web.Request,
    users: UserStore,
    *,
    region: str,
    domain: str | None = None,
    v2: bool = True,
) -> AuthResult:
    """Who signed `request`: SigV2 when it uses SigV2 and `v2` allows it (S3), else SigV4
    (the admin API takes SigV4 only); anonymous comes back with no credentials."""
    path = request.raw_path.split("?", 1)[0]
    query = list(request.query.items())
    lookup = lookup_credentials(users)
    if v2:
        auth = authenticate_v2(
            method=request.method,
            path=path,
            query=query,
            headers=request.headers,
            lookup=lookup,
            bucket=split_host_bucket(request.host, domain),
        )
        if auth is not None:
            return auth
    return authenticate(
        method=request.method,
        path=path,
        query=query,
        headers=request.headers,
        lookup=lookup,
        region=region,
    )
