"""Admin HTTP API, served beside S3 under /_s3free/admin/v1/ (a path no bucket can have).

Requests are signed with SigV4 like S3 requests and only the root user may call them.
JSON in and out; errors are {"error": CODE, "message": TEXT} with a fitting HTTP status.

    GET    /_s3free/admin/v1/users            -> {"users": [{"name", "access_key", "created_ms"}]}
    PUT    /_s3free/admin/v1/users/<name>     {"access_key", "secret_key"} -> 200 {"name", ...}
    DELETE /_s3free/admin/v1/users/<name>     -> 204
    GET    /_s3free/admin/v1/config           -> {"settings": [{"key", "value", "source",
                                                  "reload", "secret"}], "pending", "file",
                                                  "ec_in_force": {"value", "note"}, ...}

Disks, healing jobs and object verification: s3free/admin/disks.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from urllib.parse import unquote

from aiohttp import web

from s3free.admin.disks import handle_disks
from s3free.admin.info import handle_info
from s3free.appkeys import HEAL, LIMITER, SETTINGS, STORE, USERS
from s3free.errors import InvalidArgument, StorageError
from s3free.meta.users import NoSuchUser, UserExists
from s3free.obs.live import LIVE
from s3free.obs.logs import access_log_enabled
from s3free.obs.requestkeys import USER
from s3free.s3.auth import authenticate_request
from s3free.s3.auth.sigv4 import is_sha256_hex
from s3free.s3.errors import S3Error

API = "/_s3free/admin/v1/"
MAX_BODY = 64 * 1024


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def handle_admin(request: web.Request) -> web.Response:
    users = request.app[USERS]
    try:
        auth = authenticate_request(request, users, region=request.app[SETTINGS].region, v2=False)
    except S3Error as exc:
        return _error(exc.status, exc.code, exc.message)
    if auth.credentials is None or auth.credentials.access_key != users.root.access_key:
        return _error(403, "AccessDenied", "the admin API is for the root user only")
    request[USER] = users.root.name  # for the access log
    body = await request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        return _error(413, "TooLarge", "admin request bodies are limited to 64 KiB")
    # The signature covers the body only through x-amz-content-sha256: check it, and accept
    # a body only when its hash was signed.
    if body or is_sha256_hex(auth.payload):
        if not is_sha256_hex(auth.payload):
            return _error(400, "InvalidRequest", "admin request bodies must be signed (SHA-256)")
        if not hmac.compare_digest(hashlib.sha256(body).hexdigest(), auth.payload.lower()):
            return _error(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
    raw = request.raw_path.split("?", 1)[0]
    path = unquote(raw)
    if not raw.startswith(API):
        return _error(404, "NotFound", f"no admin endpoint at {path}")
    parts = [unquote(p) for p in raw[len(API) :].split("/")]
    if parts[0] in ("disks", "jobs", "objects"):
        return await handle_disks(request, parts, body)
    if parts[0] in ("info", "buckets", "index"):
        return await handle_info(request, parts, body)
    if parts == ["config"] and request.method == "GET":
        return _config(request)
    try:
        if parts == ["users"] and request.method == "GET":
            return web.json_response(
                {
                    "users": [
                        {"access_key": u.access_key, "created_ms": u.created_ms, "name": u.name}
                        for u in users.list()
                    ]
                }
            )
        if len(parts) == 2 and parts[0] == "users" and request.method == "PUT":
            try:
                spec = json.loads(body or b"{}")
                access_key, secret_key = spec["access_key"], spec["secret_key"]
            except (ValueError, KeyError, TypeError):
                return _error(
                    400, "BadRequest", 'body must be {"access_key": ..., "secret_key": ...}'
                )
            user = await users.add(parts[1], access_key, secret_key)
            return web.json_response(
                {"access_key": user.access_key, "created_ms": user.created_ms, "name": user.name}
            )
        if len(parts) == 2 and parts[0] == "users" and request.method == "DELETE":
            await users.remove(parts[1])
            return web.Response(status=204)
    except UserExists as exc:
        return _error(409, "UserExists", str(exc))
    except NoSuchUser as exc:
        return _error(404, "NoSuchUser", str(exc))
    except InvalidArgument as exc:
        return _error(400, "InvalidArgument", str(exc))
    except StorageError as exc:
        return _error(503, "StorageError", str(exc))
    return _error(404, "NotFound", f"no admin endpoint {request.method} {path}")


def _config(request: web.Request) -> web.Response:
    """The running configuration, secrets masked (s3free/config.py `describe`)."""
    live = request.app.get(LIVE)
    if live is None:
        return _error(501, "NotBuilt", "this server was started without a configuration")
    # What the running parts really use, read from them (not from the config): a reload that
    # did not reach a part shows here.
    limiter = request.app[LIMITER]
    running = {
        "log_level": logging.getLevelName(logging.getLogger().level).lower(),
        "access_log": access_log_enabled(),
        "requests_max": limiter.limit,
        "requests_active": limiter.active,
        "requests_refused": limiter.refused,
    }
    heal = request.app.get(HEAL)
    if heal is not None:
        for name in ("scrub_rate_mb_s", "scrub_files_per_s", "scrub_interval_s", "orphan_grace_s"):
            running[name] = getattr(heal.config, name)
    config = live.config
    return web.json_response(
        {
            "settings": config.describe(),
            "pending": live.pending,
            "file": config.file,
            "reloads": live.reloads,
            "running": running,
            "ec_in_force": _ec_in_force(request, config.ec),
        }
    )


def _ec_in_force(request: web.Request, asked: str | None) -> dict:
    """The erasure code the set really uses (its format), and why, for `config show`: the
    `ec` setting alone says "-" when it was left to the default."""
    diskset = request.app[STORE].diskset
    note = f"default for {len(diskset.slots)} disks" if asked is None else ""
    return {"value": f"{diskset.k}+{diskset.m}", "note": note}
