"""Small pieces every operation handler uses: XML replies, owners, ETags, header parsing."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime

from aiohttp import web
from multidict import CIMultiDictProxy

from s3free.appkeys import Ctx
from s3free.s3.errors import S3Error
from s3free.s3.numbers import parse_uint
from s3free.s3.xmlio import add, element, render

MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values, as S3 limits them
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)


def xml_reply(root: ET.Element, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=render(root),
        headers={"Content-Type": "application/xml", **(headers or {})},
    )


def owner_id(user_id: str) -> str:
    """A stable 64-hex canonical user id for a user id (S3 shows owners this way; users
    recorded before ids, and root, have their name as their id)."""
    return hashlib.sha256(b"s3free user " + user_id.encode()).hexdigest()


def owner_element(user_id: str, name: str, tag: str = "Owner") -> ET.Element:
    return add(element(tag), ("ID", owner_id(user_id)), ("DisplayName", name))


def bucket_owner(ctx: Ctx, bucket) -> tuple[str, str]:
    """(user id, display name) of a bucket's owner ("" in old records: root)."""
    user_id = bucket.owner or ctx.users.root.id
    return user_id, ctx.users.display_name(user_id)


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def unquote_etag(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def user_metadata(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    meta = {
        k.lower()[len("x-amz-meta-") :]: v
        for k, v in headers.items()
        if k.lower().startswith("x-amz-meta-")
    }
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if size > MAX_USER_METADATA:
        raise S3Error(
            "MetadataTooLarge",
            f"your metadata headers are {size} bytes; the limit is {MAX_USER_METADATA}",
        )
    return meta


def stored_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """The standard headers S3 stores with an object and returns on GET/HEAD."""
    out = {name: headers[name] for name in STORED_HEADERS if name in headers}
    encoding = out.get("content-encoding")
    if encoding is not None:
        # aws-chunked is transport framing, not a property of the object.
        kept = [e.strip() for e in encoding.split(",") if e.strip() and e.strip() != "aws-chunked"]
        if kept:
            out["content-encoding"] = ", ".join(kept)
        else:
            del out["content-encoding"]
    return out


def parse_http_date(value: str) -> int | None:
    """Milliseconds since the epoch, or None for a date that does not parse (ignored, as S3
    ignores an unparseable conditional date)."""
    try:
        return int(parsedate_to_datetime(value).timestamp() * 1000)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def int_param(query, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = parse_uint(raw, saturate=True)
    if value is None:
        raise S3Error(
            "InvalidArgument", f"{name} must be a whole number in ASCII digits, got {raw[:40]!r}"
        )
    if value < low or (high is not None and value > high):
        raise S3Error("InvalidArgument", f"{name} must be between {low} and {high}")
    return value


def check_version_id(query) -> None:
    """Until versioning exists every object is its own "null" version."""
    version = query.get("versionId")
    if version is not None and version != "null":
        raise S3Error("NoSuchVersion", "the specified version does not exist", status=404)
