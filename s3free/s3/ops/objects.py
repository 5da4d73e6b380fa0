"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, CopyObject,
and the object ACL calls."""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import unquote

from aiohttp import web

from s3free.appkeys import Ctx
from s3free.engine.types import ObjectInfo
from s3free.errors import NoSuchKey, StorageError
from s3free.s3 import access, conditions, encryption
from s3free.s3.body import open_body, read_small_body
from s3free.s3.checksums import checksum_type
from s3free.s3.errors import S3Error, from_storage
from s3free.s3.numbers import parse_uint
from s3free.s3.ops.acl import policy, requested_canned
from s3free.s3.ops.common import (
    bucket_owner,
    check_version_id,
    quote_etag,
    stored_headers,
    user_metadata,
    xml_reply,
)
from s3free.s3.ops.tagging import header_tags
from s3free.s3.readfail import log_read_failure
from s3free.s3.xmlio import add, child_text, children, element, http_date, iso8601, parse_body_async

log = logging.getLogger(__name__)

MAX_COPY_SIZE = 5 * 1024**3
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")  # ASCII digits only (\d is any digit)
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a satisfiable single range; None to send the whole object
    (no header, or one S3 ignores: not bytes=, several ranges); InvalidRange if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    # A number too long to be a position means "larger than any object" (RFC 9110 14.1.1).
    if first == "":
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - suffix), size - 1
    start = _position(first)
    end = _position(last) if last else size - 1
    if last and end < start:
        return None  # syntactically invalid: ignored, like S3
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _position(digits: str) -> int:
    value = parse_uint(digits, saturate=True)
    assert value is not None  # the pattern matched digits
    return value


def _unsatisfiable(size: int) -> S3Error:
    return S3Error(
        "InvalidRange",
        "The requested range is not satisfiable",
        fields={"header:Content-Range": f"bytes */{size}"},
        ActualObjectSize=str(size),
    )


def object_headers(info: ObjectInfo, checksums: bool) -> dict[str, str]:
    headers = {
        "ETag": quote_etag(info.etag),
        "Last-Modified": http_date(info.last_modified_ms),
        "Content-Type": info.content_type or DEFAULT_CONTENT_TYPE,
        "Accept-Ranges": "bytes",
    }
    for name, value in info.http_headers.items():
        if name.startswith("x-amz-"):
            continue  # kept for access control, not returned
        headers["-".join(p.capitalize() for p in name.split("-"))] = value
    for name, value in info.user_metadata.items():
        headers[f"x-amz-meta-{name}"] = value
    if info.tags:
        headers["x-amz-tagging-count"] = str(len(info.tags))
    if checksums:
        for algorithm, value in info.checksums.items():
            headers[f"x-amz-checksum-{algorithm.lower()}"] = value
            headers["x-amz-checksum-type"] = checksum_type(value)
    return headers


async def _open(ctx: Ctx, *, head: bool):
    """Look the object up and decide the range on the version that will be read."""
    # A caller who may read only public-read objects learns nothing before the ACL check.
    public_only = ctx.public_object_only
    if not public_only:
        check_version_id(ctx.s3.query)
    encryption.refuse_on_read(ctx.request.headers)
    q = ctx.s3.query
    part_number = None
    if "partNumber" in q:
        part_number = parse_uint(q["partNumber"], max_digits=5)
        if part_number is None or not 1 <= part_number <= 10000:
            raise S3Error("InvalidArgument", "partNumber must be between 1 and 10000")
    range_header = ctx.request.headers.get("Range")
    if part_number is not None and range_header:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber")
    decided: dict = {}

    def prepare(info: ObjectInfo):
        access.check_object_read(ctx, info)
        if public_only:
            check_version_id(ctx.s3.query)
        conditions.check_read(ctx.request.headers, info)
        rng = parse_range(range_header, info.size) if part_number is None else None
        decided["range"] = rng
        return rng

    reader = await ctx.store.open_object(
        ctx.s3.bucket, ctx.s3.key, part_number=part_number, prepare=prepare, prefetch=not head
    )
    return reader, decided.get("range"), part_number


def _response_headers(ctx: Ctx, reader, rng, part_number) -> tuple[int, dict[str, str]]:
    info = reader.info
    full = rng is None and part_number is None
    checksum_mode = ctx.request.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
    headers = object_headers(info, checksums=checksum_mode and full)
    status = 200
    if not full:
        status = 206
        headers["Content-Range"] = f"bytes {reader.start}-{reader.end}/{info.size}"
    if part_number is not None:
        headers["x-amz-mp-parts-count"] = str(info.parts_count)
    for param, header in _RESPONSE_OVERRIDES.items():
        if param in ctx.s3.query:
            headers[header] = ctx.s3.query[param]
    return status, headers


SMALL_BODY = 256 * 1024  # sent in one write, headers and body together


async def get_object(ctx: Ctx) -> web.StreamResponse:
    reader, rng, part_number = await _open(ctx, head=False)
    chunks = None
    try:
        status, headers = _response_headers(ctx, reader, rng, part_number)
        if reader.content_length <= SMALL_BODY:
            # Small: read (bounded) first, so a read error is still an S3 error response,
            # and send everything at once.
            return web.Response(status=status, headers=headers, body=await reader.read_all())
        # The first block is read and verified before the status goes out, so a version
        # whose shards are lost or offline still gets its S3 error response.
        chunks = aiter(reader)
        first = await anext(chunks)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = reader.content_length
        await response.prepare(ctx.request)
        try:
            await response.write(first)
            async for chunk in chunks:
                await response.write(chunk)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            _cut(ctx, exc)
            await _close(reader, chunks)
            return response  # aiohttp finds the transport closed and sends nothing more
        await response.write_eof()
        return response
    except BaseException:
        await _close(reader, chunks)
        raise


async def _close(reader, chunks) -> None:
    """Stop a read early: the iteration first (it waits for the blocks still being read
    ahead, which open shard files, then closes the files), then the reader. Closing only
    the reader while blocks were still being read left their files open (a client gone
    mid-GET leaked descriptors)."""
    if chunks is not None:
        await chunks.aclose()
    await reader.aclose()


def _cut(ctx: Ctx, exc: Exception) -> None:
    """A read failed after the status and part of the body went out: no error response can
    follow, so the connection is aborted (the client sees fewer bytes than Content-Length,
    never wrong ones, and retries)."""
    if isinstance(exc, StorageError):
        log_read_failure(exc, ctx.s3.resource, after_headers=True)
    else:
        log.exception("GET %s failed after the response headers were sent", ctx.s3.resource)
    transport = ctx.request.transport
    if transport is not None:
        transport.abort()


async def head_object(ctx: Ctx) -> web.StreamResponse:
    reader, rng, part_number = await _open(ctx, head=True)
    await reader.aclose()
    status, headers = _response_headers(ctx, reader, rng, part_number)
    headers["Content-Length"] = str(reader.content_length)
    return web.Response(status=status, headers=headers)


def _canned_acl(ctx: Ctx) -> str:
    """The x-amz-acl of a write; grants and ACLs other than private/public-read are refused."""
    headers = ctx.request.headers
    for name in headers:
        if name.lower().startswith("x-amz-grant-"):
            raise S3Error(
                "NotImplemented", "s3free supports only the canned ACLs private and public-read"
            )
    value = headers.get("x-amz-acl", "private")
    if value not in ("private", "public-read"):
        raise S3Error(
            "NotImplemented", f"the canned ACL {value!r} is not supported (private, public-read)"
        )
    return value


def _refuse_unsupported(ctx: Ctx) -> None:
    headers = ctx.request.headers
    storage_class = headers.get("x-amz-storage-class", "STANDARD")
    if storage_class != "STANDARD":
        raise S3Error("NotImplemented", f"storage class {storage_class} is not supported")
    encryption.refuse_on_write(headers)
    for name in (
        "x-amz-object-lock-mode",
        "x-amz-object-lock-legal-hold",
        "x-amz-website-redirect-location",
    ):
        if name in headers:
            raise S3Error("NotImplemented", f"{name} is not supported by s3free")


def new_object_fields(ctx: Ctx) -> dict:
    """content_type, user_metadata, http_headers and tags of a new object from the request."""
    headers = ctx.request.headers
    stored = stored_headers(headers)
    acl_value = _canned_acl(ctx)
    if acl_value != "private":
        stored[access.ACL_HEADER] = acl_value
    return {
        "content_type": headers.get("Content-Type", ""),
        "user_metadata": user_metadata(headers),
        "http_headers": stored,
        "tags": header_tags(ctx),
    }


async def put_object(ctx: Ctx) -> web.StreamResponse:
    _refuse_unsupported(ctx)
    fields = new_object_fields(ctx)
    precondition = conditions.write_precondition(ctx.request.headers)
    body = await open_body(ctx)
    info = await ctx.store.put_object(
        ctx.s3.bucket,
        ctx.s3.key,
        body.stream,
        expected_size=body.expected_size,
        expected_md5=body.expected_md5,
        checksums=body.checksums,
        precondition=precondition,
        **fields,
    )
    headers = {"ETag": quote_etag(info.etag)}
    for algorithm, value in info.checksums.items():
        headers[f"x-amz-checksum-{algorithm.lower()}"] = value
        headers["x-amz-checksum-type"] = checksum_type(value)
    return web.Response(status=200, headers=headers)


async def delete_object(ctx: Ctx) -> web.StreamResponse:
    check_version_id(ctx.s3.query)
    await ctx.store.delete_object(ctx.s3.bucket, ctx.s3.key)
    return web.Response(status=204)


async def delete_objects(ctx: Ctx) -> web.StreamResponse:
    root = await parse_body_async(await read_small_body(ctx), "Delete")
    quiet = (child_text(root, "Quiet", "false") or "").strip().lower() == "true"
    objects = children(root, "Object")
    if not objects:
        raise S3Error("MalformedXML", "Delete needs at least one Object")
    if len(objects) > 1000:
        raise S3Error("MalformedXML", "Delete takes at most 1000 objects")
    result = element("DeleteResult")
    for obj in objects:
        key = child_text(obj, "Key")
        version = child_text(obj, "VersionId")
        if not key:
            raise S3Error("MalformedXML", "every Object needs a Key")
        if version not in (None, "null"):
            failure = add(
                element("Error"),
                ("Key", key),
                ("VersionId", version),
                ("Code", "NoSuchVersion"),
                ("Message", "The specified version does not exist."),
            )
            add(result, failure)
            continue
        try:
            await ctx.store.delete_object(ctx.s3.bucket, key)
        except (S3Error, StorageError) as exc:  # one key's failure must not fail the others
            err = exc if isinstance(exc, S3Error) else from_storage(exc)
            log.warning("DeleteObjects %s/%s: %s", ctx.s3.bucket, key, exc)
            add(
                result,
                add(element("Error"), ("Key", key), ("Code", err.code), ("Message", err.message)),
            )
            continue
        if not quiet:
            add(result, add(element("Deleted"), ("Key", key), ("VersionId", version)))
    return xml_reply(result)


def parse_copy_source(value: str) -> tuple[str, str, bool]:
    """(bucket, key, whether the version asked for can exist: none or "null")."""
    # Split off the query before decoding: an encoded '?' (%3F) belongs to the key.
    raw, _, query = value.partition("?")
    source = unquote(raw)
    source = source.lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must name a bucket and a key")
    return bucket, key, not query or query == "versionId=null"


def _no_such_source_version() -> S3Error:
    return S3Error("NoSuchVersion", "the specified version does not exist", status=404)


async def open_copy_source(ctx: Ctx, start=None, end=None, *, range_header: str | None = None):
    """A reader for the copy source. The requester's right to read it is decided first;
    only then its version, x-amz-copy-source-if-* conditions and range, so a requester
    without that right learns nothing from them (existence, ETag, date or size)."""
    bucket, key, version_ok = parse_copy_source(ctx.request.headers["x-amz-copy-source"])
    full = await access.check_source_bucket(ctx, bucket, key)
    if full and not version_ok:
        raise _no_such_source_version()
    decided: dict = {}

    def prepare(info: ObjectInfo):
        decided["info"] = info
        if not full:
            access.check_source_object(info)
            if not version_ok:
                raise _no_such_source_version()
        conditions.check_read(ctx.request.headers, info, prefix="x-amz-copy-source-")
        if range_header is not None:
            match = _RANGE.fullmatch(range_header.strip())
            first = parse_uint(match.group(1)) if match else None
            last = parse_uint(match.group(2)) if match else None
            if first is None or last is None:
                raise S3Error(
                    "InvalidArgument",
                    "x-amz-copy-source-range must be bytes=first-last, each at most 19 ASCII "
                    "digits",
                    ArgumentName="x-amz-copy-source-range",
                )
            if last < first or last >= info.size:
                raise S3Error("InvalidRange", "The requested range is not satisfiable")
            return first, last
        return None

    try:
        reader = await ctx.store.open_object(bucket, key, prepare=prepare)
    except NoSuchKey:
        raise S3Error("NoSuchKey", "The specified key does not exist.") from None
    return bucket, key, reader


async def copy_object(ctx: Ctx) -> web.StreamResponse:
    _refuse_unsupported(ctx)
    headers = ctx.request.headers
    directive = headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "x-amz-metadata-directive must be COPY or REPLACE")
    tagging = headers.get("x-amz-tagging-directive", "COPY").upper()
    if tagging not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "x-amz-tagging-directive must be COPY or REPLACE")
    new_tags = header_tags(ctx)  # checked before the source is opened
    src_bucket, src_key, reader = await open_copy_source(ctx)
    try:
        info = reader.info
        if info.size > MAX_COPY_SIZE:
            raise S3Error(
                "InvalidRequest",
                "The specified copy source is larger than the maximum allowable size "
                f"for a copy source: {MAX_COPY_SIZE}",
            )
        if directive == "COPY":
            if (src_bucket, src_key) == (ctx.s3.bucket, ctx.s3.key) and "x-amz-acl" not in headers:
                raise S3Error(
                    "InvalidRequest",
                    "This copy request is illegal because it is trying to copy an object to "
                    "itself without changing the object's metadata, storage class, website "
                    "redirect location or encryption attributes.",
                )
            kept = {k: v for k, v in info.http_headers.items() if k != access.ACL_HEADER}
            acl_value = _canned_acl(ctx)
            if acl_value != "private":
                kept[access.ACL_HEADER] = acl_value
            fields = {
                "content_type": info.content_type,
                "user_metadata": dict(info.user_metadata),
                "http_headers": kept,
            }
        else:
            fields = new_object_fields(ctx)
        # The tagging directive is independent of the metadata directive, as in S3.
        fields["tags"] = dict(info.tags) if tagging == "COPY" else new_tags
        result = await ctx.store.put_object(
            ctx.s3.bucket,
            ctx.s3.key,
            reader,
            expected_size=reader.content_length,
            checksums=dict(info.checksums) if directive == "COPY" else {},
            precondition=conditions.write_precondition(headers),
            **fields,
        )
    finally:
        await reader.aclose()
    body = add(
        element("CopyObjectResult"),
        ("LastModified", iso8601(result.last_modified_ms)),
        ("ETag", quote_etag(result.etag)),
    )
    return xml_reply(body)


async def get_object_acl(ctx: Ctx) -> web.StreamResponse:
    check_version_id(ctx.s3.query)
    info = await ctx.store.head_object(ctx.s3.bucket, ctx.s3.key)
    bucket = ctx.bucket
    return xml_reply(
        policy(bucket_owner(ctx, bucket), info.http_headers.get(access.ACL_HEADER, "private"))
    )


async def put_object_acl(ctx: Ctx) -> web.StreamResponse:
    check_version_id(ctx.s3.query)
    value = await requested_canned(ctx)
    info = await ctx.store.head_object(ctx.s3.bucket, ctx.s3.key)
    stored = {k: v for k, v in info.http_headers.items() if k != access.ACL_HEADER}
    if value != "private":
        stored[access.ACL_HEADER] = value
    await ctx.store.update_object_headers(ctx.s3.bucket, ctx.s3.key, stored)
    return web.Response(status=200)
