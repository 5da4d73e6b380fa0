"""Conditional requests (RFC 7232 as S3 applies it): reads, copy sources and writes."""

from __future__ import annotations

from collections.abc import Mapping

from s3free.engine.types import ObjectInfo
from s3free.errors import NoSuchKey, PreconditionFailed
from s3free.s3.errors import S3Error
from s3free.s3.ops.common import parse_http_date, quote_etag, unquote_etag
from s3free.s3.xmlio import http_date


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [unquote_etag(part) for part in header.split(",")]
    return "*" in candidates or etag in candidates


def _seconds(ms: int) -> int:
    return ms // 1000  # HTTP dates have whole seconds


def check_read(headers: Mapping[str, str], info: ObjectInfo, *, prefix: str = "") -> None:
    """GET/HEAD (prefix "") or a copy source (prefix "x-amz-copy-source-"): raise 412
    PreconditionFailed or 304 NotModified as S3 does.

    S3's precedence: If-Match true and If-Unmodified-Since false -> proceed; If-None-Match
    false and If-Modified-Since true -> 304."""
    if_match = headers.get(prefix + "if-match")
    if_none_match = headers.get(prefix + "if-none-match")
    modified_since = headers.get(prefix + "if-modified-since")
    unmodified_since = headers.get(prefix + "if-unmodified-since")
    mtime = _seconds(info.last_modified_ms)
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Match",
            )
    elif unmodified_since is not None:
        when = parse_http_date(unmodified_since)
        if when is not None and mtime > _seconds(when):
            raise S3Error(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
                Condition="If-Unmodified-Since",
            )
    if if_none_match is not None:
        if _etag_matches(if_none_match, info.etag):
            _not_modified(info, prefix)
    elif modified_since is not None:
        when = parse_http_date(modified_since)
        if when is not None and mtime <= _seconds(when):
            _not_modified(info, prefix)


def _not_modified(info: ObjectInfo, prefix: str) -> None:
    if prefix:  # a copy source never answers 304
        raise S3Error(
            "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
        )
    raise S3Error(
        "NotModified",
        "Not Modified",
        fields={
            "header:ETag": quote_etag(info.etag),
            "header:Last-Modified": http_date(info.last_modified_ms),
        },
    )


def write_precondition(headers: Mapping[str, str]):
    """The engine precondition for a conditional write (If-None-Match: * / If-Match: ETag),
    checked under the key's lock at commit time; None when the write is unconditional."""
    if_none_match = headers.get("if-none-match")
    if_match = headers.get("if-match")
    if if_none_match is None and if_match is None:
        return None
    if if_none_match is not None and if_none_match.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on a write supports only '*'")

    def check(current: ObjectInfo | None) -> None:
        if if_none_match is not None and current is not None:
            raise PreconditionFailed("an object already exists at this key (If-None-Match: *)")
        if if_match is not None:
            if current is None:
                raise NoSuchKey("no object at this key for If-Match")
            if not _etag_matches(if_match, current.etag):
                raise PreconditionFailed("the object's ETag does not match If-Match")

    return check
