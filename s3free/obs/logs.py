"""Server logging: one handler on stderr, text or JSON lines, the request id on every line
logged while a request is handled, an access log, and a filter that redacts secrets.

- Text: ``2025-05-01T12:00:00.123Z WARNING s3free.engine.writer rid=1A2B...: message``, one
  line per record (newlines in the message are escaped; a traceback follows indented).
- JSON: one object per line: time, level, logger, message, request_id (inside a request),
  exception (when any), and for access lines the fields below.
- The request id comes from `s3free.obs.context.REQUEST_ID`, set by the S3 app for each
  request and carried into the engine's worker threads by `ContextExecutor`.
- Access log: one INFO line per HTTP request on logger "s3free.access" (method, path with the
  signature and credential query parameters removed, status, bytes in/out, duration, request
  id, user name, client address). It has its own switch, independent of the log level.
- Secrets never reach the output: `RedactFilter` (on the handler, so it sees every record,
  the libraries' too) masks Authorization values, signatures, credentials, secret keys,
  tokens, and the literal secrets registered with `add_secret`.

Live changes (SIGHUP reload) call `set_level(level)` and `set_access_log(enabled)`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TYPE_CHECKING, TextIO
from urllib.parse import unquote

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from s3free.obs.context import REQUEST_ID
from s3free.obs.requestkeys import REQUEST_ID as REQUEST_ID_KEY
from s3free.obs.requestkeys import USER

if TYPE_CHECKING:
    from s3free.config import Config

ACCESS = logging.getLogger("s3free.access")
LEVELS = ("debug", "info", "warning", "error")
REDACTED = "[REDACTED]"

_access_enabled = True

# Query parameters that carry a signature or a credential (SigV4 and SigV2 presigned URLs).
_SECRET_PARAMS = frozenset(
    {"x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "awsaccesskeyid"}
)
# name (quoted or not) then ":" or "=", then the value: the value is masked.
_SEP = r"""["']?\s*[:=]\s*["']?"""
_PATTERNS = (
    # Authorization header values run to the end of the value (they hold commas and spaces).
    re.compile(rf"(?i)(\bauthorization{_SEP})[^\"'\r\n]+"),
    re.compile(
        rf"(?i)(\b(?:(?:x-amz-)?(?:signature|credential|security-token)|awsaccesskeyid)"
        rf"{_SEP})[^\s\"',&;}}]+"
    ),
    re.compile(
        rf"(?i)(\b(?:aws_)?(?:secret[_-]?(?:access[_-]?)?key|metrics[_-]?token|password)"
        rf"{_SEP})[^\s\"',&;}}]+"
    ),
    re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+"),
)
# Any of these words must be present for a pattern above to match: one search skips the
# patterns on ordinary lines (most of them).
_TRIGGER = re.compile(
    r"(?i)authorization|signature|credential|security-token|awsaccesskeyid|secret|token"
    r"|password|bearer"
)
_literal: re.Pattern[str] | None = None
_secrets: set[str] = set()


def add_secret(value: str | None) -> None:
    """Mask this exact string wherever it appears (root secret key, metrics token). Values
    shorter than 8 characters are ignored: they would mask ordinary words."""
    global _literal
    if not value or len(value) < 8 or value in _secrets:
        return
    _secrets.add(value)
    ordered = sorted(_secrets, key=len, reverse=True)
    _literal = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """The text with every secret-looking value replaced by [REDACTED]."""
    if _literal is not None:
        text = _literal.sub(REDACTED, text)
    if _TRIGGER.search(text):
        for pattern in _PATTERNS:
            text = pattern.sub(_mask, text)
    return text


def _mask(match: re.Match[str]) -> str:
    return match.group(1) + REDACTED


class RedactFilter(logging.Filter):
    """The last defence: masks secrets in the formatted message and the exception text, so
    nothing a caller passed as an argument slips through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the line (or its arguments' secrets)
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = getattr(record, "access", None)
        if fields and "path" in fields:  # the only access field a client chooses freely
            record.access = {**fields, "path": redact(fields["path"])}
        return True


class RequestIdFilter(logging.Filter):
    """Stamps the current request id (if any) on the record, in whatever thread logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


_PLAIN = logging.Formatter()


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
        f".{int(record.msecs):03d}Z"
    )


class TextFormatter(logging.Formatter):
    """One readable line per record; a traceback, if any, on the indented lines after it."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        rid = getattr(record, "request_id", None)
        where = f"{record.name} rid={rid}" if rid else record.name
        line = f"{_timestamp(record)} {record.levelname} {where}: {message}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n    " + record.exc_text.replace("\n", "\n    ")
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            out["request_id"] = rid
        fields = getattr(record, "access", None)
        if fields:
            out.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


_HANDLER_MARK = "_s3free_handler"


def setup(config: Config, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record to stderr (or `stream`) in the configured format and level,
    replacing a handler an earlier call installed; returns the handler."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else TextFormatter())
    root.addHandler(handler)
    set_level(config.log_level)
    set_access_log(config.access_log)
    add_secret(config.metrics_token)
    return handler


def set_level(level: str) -> None:
    """Change the level of every logger but the access log (debug, info, warning, error)."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} must be one of {', '.join(LEVELS)}")
    logging.getLogger().setLevel(level.upper())


def set_access_log(enabled: bool) -> None:
    """Turn the access log on or off, live (it then ignores the log level)."""
    global _access_enabled
    _access_enabled = enabled
    ACCESS.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)


def access_log_enabled() -> bool:
    return _access_enabled


def loggable_path(raw_path: str) -> str:
    """The request target as sent (percent-encoded: one line, the key included) without the
    query parameters that hold a signature or a credential."""
    path, sep, query = raw_path.partition("?")
    if not sep:
        return path
    kept = [
        p for p in query.split("&") if unquote(p.partition("=")[0]).lower() not in _SECRET_PARAMS
    ]
    return f"{path}?{'&'.join(kept)}" if kept else path


class AccessLogger(AbstractAccessLogger):
    """aiohttp calls `log` once a response is sent (or the client went away). Give it to the
    runner: web.AppRunner(app, access_log_class=AccessLogger, access_log=ACCESS)."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if not _access_enabled:
            return
        fields = {
            "method": request.method,
            "path": loggable_path(request.raw_path),
            "status": response.status,
            "bytes_in": getattr(request.content, "total_bytes", 0),
            "bytes_out": response.body_length,
            "duration_ms": round(time * 1000, 3),
            "user": request.get(USER) or "-",
            "client": request.remote or "-",
        }
        self.logger.info(
            "%(method)s %(path)s %(status)s in=%(bytes_in)s out=%(bytes_out)s "
            "%(duration_ms).1fms user=%(user)s client=%(client)s",
            fields,
            extra={"access": fields, "request_id": request.get(REQUEST_ID_KEY)},
        )
