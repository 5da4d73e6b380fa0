"""A small synchronous client for the admin API (`s3free/admin/api.py`), for `s3free admin`.

Standard library only (urllib + ssl): requests are SigV4-signed by
`s3free.s3.auth.sigv4.sign_headers` (host, x-amz-date, x-amz-content-sha256 and content-type
signed; the body's SHA-256 is the payload hash). Environment proxies are not used: the admin
API is spoken to directly.

Every failure is an `AdminError` whose message is fit to show a person: `ConfigError` when the
call cannot be made as asked (bad endpoint, unusable CA bundle, no credentials), `Unreachable`
when no HTTP answer came back (connection refused, DNS, TLS verification, timeout).
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any
from urllib.parse import quote, urlsplit

from s3free.s3.auth.sigv4 import sign_headers

API = "/_s3free/admin/v1/"
DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
DEFAULT_REGION = "us-east-1"


class AdminError(Exception):
    """A failed admin call. `status` is the HTTP status (0 when none came back), `code` the
    API's error code ("" when none)."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Unreachable(AdminError):
    pass


class ConfigError(AdminError):
    """The call could not be made as asked: bad endpoint, unusable CA bundle, no credentials."""


class MissingCredentials(ConfigError):
    pass


def credentials_from_env(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Root (access key, secret key): S3FREE_ACCESS_KEY / S3FREE_SECRET_KEY, else
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. A pair is taken whole, never mixed."""
    env = os.environ if env is None else env
    for access_name, secret_name in (
        ("S3FREE_ACCESS_KEY", "S3FREE_SECRET_KEY"),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ):
        access, secret = env.get(access_name), env.get(secret_name)
        if access and secret:
            return access, secret
        if access or secret:
            missing = secret_name if access else access_name
            raise MissingCredentials(f"{missing} is not set (it goes with the other one)")
    raise MissingCredentials(
        "no root credentials: set S3FREE_ACCESS_KEY and S3FREE_SECRET_KEY "
        "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a signed request is not replayed elsewhere


class AdminClient:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        region: str = DEFAULT_REGION,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"endpoint {endpoint!r} must look like http://HOST:PORT")
        if parts.query or parts.fragment:
            raise ConfigError(f"endpoint {endpoint!r} must not have a query or fragment")
        self.endpoint = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.ProxyHandler({}),
            _NoRedirect(),
        ]
        if parts.scheme == "https":
            try:
                context = ssl.create_default_context(cafile=ca_bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot use CA bundle {ca_bundle}: {exc}") from None
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    # -- API ------------------------------------------------------------------------------

    def list_users(self) -> list[dict[str, Any]]:
        return self.call("GET", "users")["users"]

    def add_user(self, name: str, access_key: str, secret_key: str) -> dict[str, Any]:
        body = json.dumps({"access_key": access_key, "secret_key": secret_key}).encode()
        return self.call("PUT", _user_path(name), body)

    def remove_user(self, name: str) -> None:
        self.call("DELETE", _user_path(name))

    def config(self) -> dict[str, Any]:
        """The running configuration: settings (key, value, source, reload, secret), pending."""
        return self.call("GET", "config")

    # -- disks and healing (s3free/admin/disks.py) ---------------------------------------

    def disk_status(self) -> dict[str, Any]:
        return self.call("GET", "disks")

    def start_scrub(self, bucket: str | None, rate_mb_s: float | None) -> dict[str, Any]:
        return self.call("POST", "disks/scrub", _json({"bucket": bucket, "rate_mb_s": rate_mb_s}))[
            "job"
        ]

    def start_repair(
        self, bucket: str | None, key: str | None, rate_mb_s: float | None = None
    ) -> dict[str, Any]:
        body = _json({"bucket": bucket, "key": key, "rate_mb_s": rate_mb_s})
        return self.call("POST", "disks/repair", body)["job"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.call("GET", f"jobs/{quote(job_id, safe='')}")["job"]

    def verify(self, bucket: str, key: str) -> dict[str, Any]:
        return self.call("POST", "objects/verify", _json({"bucket": bucket, "key": key}))["health"]

    def disk_action(
        self, action: str, disk: str | None, rate_mb_s: float | None = None
    ) -> dict[str, Any]:
        """replace, its heal pass paced at rate_mb_s if given (add and remove answer 501
        NotBuilt)."""
        doc: dict[str, Any] = {"disk": disk}
        if rate_mb_s is not None:
            doc["rate_mb_s"] = rate_mb_s
        return self.call("POST", f"disks/{action}", _json(doc))

    def quarantine(self) -> dict[str, Any]:
        return self.call("GET", "disks/quarantine")

    def purge_quarantine(self, older_than_s: float, force: bool) -> dict[str, Any]:
        body = _json({"older_than_s": older_than_s, "force": force})
        return self.call("POST", "disks/quarantine/purge", body)

    # -- info, usage, rebuild-index (s3free/admin/info.py) -------------------------------

    def server_info(self) -> dict[str, Any]:
        return self.call("GET", "info")

    def bucket_usage(self, bucket: str | None = None) -> dict[str, Any]:
        """One bucket's usage, or {"buckets": [...], "total": {...}} for all."""
        if bucket is None:
            return self.call("GET", "buckets/usage")
        if not bucket or "/" in bucket:
            raise AdminError(f"invalid request: bucket name {bucket!r} is not allowed", 400)
        return self.call("GET", f"buckets/{quote(bucket, safe='')}/usage")

    def start_rebuild(self) -> dict[str, Any]:
        return self.call("POST", "index/rebuild", b"{}")["job"]

    def rebuild_job(self, job_id: str) -> dict[str, Any]:
        return self.call("GET", f"index/rebuild/{quote(job_id, safe='')}")["job"]

    # -- transport ------------------------------------------------------------------------

    def call(self, method: str, path: str, body: bytes = b"") -> Any:
        """Send a signed request to API + path; the decoded JSON answer (None for 204)."""
        url = self.endpoint + API + path
        parts = urlsplit(url)
        headers = sign_headers(
            method=method,
            host=parts.netloc,
            path=parts.path,
            query=[],
            access_key=self.access_key,
            secret_key=self.secret_key,
            region=self.region,
            payload=hashlib.sha256(body).hexdigest(),  # the admin API insists on a signed body
            extra={"content-type": "application/json"} if body else None,
        )
        request = urllib.request.Request(url, data=body or None, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
            exc.close()
        except urllib.error.URLError as exc:
            raise Unreachable(f"cannot reach {self.endpoint}: {_reason(exc.reason)}") from None
        except (OSError, HTTPException) as exc:  # timeouts, resets, garbage instead of HTTP
            raise Unreachable(f"cannot reach {self.endpoint}: {_reason(exc)}") from None
        if 200 <= status < 300:
            if not data:
                return None
            try:
                return json.loads(data)
            except ValueError:
                raise AdminError(
                    f"{self.endpoint} answered {status} with something other than JSON "
                    "(is it an s3free server?)",
                    status,
                ) from None
        raise _error(status, data, self.endpoint)


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def _user_path(name: str) -> str:
    # The name is one path segment, and the server decodes %2F before splitting the path.
    if not name or "/" in name:
        raise AdminError(f"invalid request: user name {name!r} is not allowed (no '/')", 400)
    return f"users/{quote(name, safe='')}"


def _reason(reason: object) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (
            f"{reason.verify_message or reason} "
            "(for a self-signed certificate pass it with --ca-bundle FILE)"
        )
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the server running?)"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _error(status: int, data: bytes, endpoint: str) -> AdminError:
    code, message = "", ""
    try:
        doc = json.loads(data)
        code, message = str(doc.get("error", "")), str(doc.get("message", ""))
    except (ValueError, AttributeError):
        pass
    if not code:  # not the admin API's JSON: an S3 XML error or another server
        text = data.decode("utf-8", "replace").strip()
        detail = text[:200] if text else "no details"
        return AdminError(
            f"{endpoint} answered HTTP {status} ({detail}); is it an s3free server?", status
        )
    detail = f"{code}: {message}" if message else code
    if status == 403:
        return AdminError(f"access denied: {detail}", status, code)
    if status == 409:
        return AdminError(message or detail, status, code)
    if status in (404, 501, 503) and code != "NotFound" and message:
        return AdminError(message, status, code)
    if status == 400:
        return AdminError(f"invalid request: {message or code}", status, code)
    return AdminError(f"server error (HTTP {status}): {detail}", status, code)
