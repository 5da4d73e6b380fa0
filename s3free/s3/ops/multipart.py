"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
CompleteMultipartUpload, AbortMultipartUpload, ListParts."""

from __future__ import annotations

import re

from aiohttp import web

from s3free.appkeys import Ctx
from s3free.s3 import conditions
from s3free.s3.body import open_body, read_small_body
from s3free.s3.checksums import HEADERS, ChecksumStream, checksum_request
from s3free.s3.errors import S3Error
from s3free.s3.numbers import parse_uint
from s3free.s3.ops.common import bucket_owner, int_param, owner_element, quote_etag, xml_reply
from s3free.s3.ops.objects import _refuse_unsupported, new_object_fields, open_copy_source
from s3free.s3.xmlio import add, child_text, children, element, iso8601, parse_body_async

MAX_PART_SIZE = 5 * 1024**3


def _upload_id(ctx: Ctx) -> str:
    upload_id = ctx.s3.query.get("uploadId", "")
    if not upload_id:
        raise S3Error("NoSuchUpload", "The specified upload does not exist.")
    return upload_id


def _part_number(ctx: Ctx) -> int:
    number = parse_uint(ctx.s3.query.get("partNumber"), max_digits=5)
    if number is None or not 1 <= number <= 10000:
        raise S3Error(
            "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive"
        )
    return number


async def create_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    _refuse_unsupported(ctx)
    fields = new_object_fields(ctx)
    # Each part's checksum is verified as it arrives (UploadPart); the whole object's
    # composite checksum is not kept, so GetObject returns none for multipart objects.
    algorithm = ctx.request.headers.get("x-amz-checksum-algorithm")
    upload_id = await ctx.store.create_multipart_upload(ctx.s3.bucket, ctx.s3.key, **fields)
    root = add(
        element("InitiateMultipartUploadResult"),
        ("Bucket", ctx.s3.bucket),
        ("Key", ctx.s3.key),
        ("UploadId", upload_id),
    )
    headers = {"x-amz-checksum-algorithm": algorithm.upper()} if algorithm else {}
    return xml_reply(root, headers=headers)


async def upload_part(ctx: Ctx) -> web.StreamResponse:
    upload_id = _upload_id(ctx)
    number = _part_number(ctx)
    body = await open_body(ctx)
    if body.expected_size is not None and body.expected_size > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    part = await ctx.store.upload_part(
        ctx.s3.bucket,
        ctx.s3.key,
        upload_id,
        number,
        body.stream,
        expected_size=body.expected_size,
        expected_md5=body.expected_md5,
    )
    headers = {"ETag": quote_etag(part.etag)}
    for algorithm, value in body.checksums.items():
        headers[f"x-amz-checksum-{algorithm.lower()}"] = value
    return web.Response(status=200, headers=headers)


async def upload_part_copy(ctx: Ctx) -> web.StreamResponse:
    upload_id = _upload_id(ctx)
    number = _part_number(ctx)
    _, _, reader = await open_copy_source(
        ctx, range_header=ctx.request.headers.get("x-amz-copy-source-range")
    )
    try:
        if reader.content_length > MAX_PART_SIZE:
            raise S3Error("EntityTooLarge", "a part may be at most 5 GiB")
        part = await ctx.store.upload_part(
            ctx.s3.bucket,
            ctx.s3.key,
            upload_id,
            number,
            reader,
            expected_size=reader.content_length,
        )
    finally:
        await reader.aclose()
    root = add(
        element("CopyPartResult"),
        ("LastModified", iso8601(part.last_modified_ms)),
        ("ETag", quote_etag(part.etag)),
    )
    return xml_reply(root)


def _full_object_check(headers):
    """A full-object x-amz-checksum-* sent with CompleteMultipartUpload is verified by reading
    the assembled object back before it becomes visible (BadDigest, and the upload stays as it
    was, on a mismatch). Composite values ("checksum of checksums-N") need the parts' own
    checksums, which s3free does not keep: NotImplemented rather than unchecked."""
    given = [
        (name, value)
        for name, value in headers.items()
        if name.lower() in {h.lower() for h in HEADERS.values()}
    ]
    if not given:
        return None
    kind = headers.get("x-amz-checksum-type", "FULL_OBJECT").upper()
    if kind == "COMPOSITE" or any(re.search(r"-\d+$", value.strip()) for _, value in given):
        raise S3Error(
            "NotImplemented",
            "composite multipart checksums are not supported; send a full-object checksum",
        )
    wanted = checksum_request(headers)
    # `given` holds an x-amz-checksum-* header, so a value was asked for
    assert wanted is not None and wanted.expected is not None
    algorithm, expected = wanted.algorithm, wanted.expected

    async def verify(stream) -> None:
        checked = ChecksumStream(stream, [algorithm], expected={algorithm: expected})
        async for _ in checked:
            pass

    return verify


async def complete_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    upload_id = _upload_id(ctx)
    root = await parse_body_async(await read_small_body(ctx), "CompleteMultipartUpload")
    parts = []
    for part in children(root, "Part"):
        number_text = child_text(part, "PartNumber")
        etag = child_text(part, "ETag")
        number = parse_uint((number_text or "").strip(), max_digits=5)
        if number is None:
            raise S3Error("MalformedXML", "PartNumber must be an integer from 1 to 10000")
        if etag is None:
            raise S3Error("MalformedXML", "every Part needs an ETag")
        parts.append((number, etag))
    if not parts:
        raise S3Error("MalformedXML", "The XML you provided did not have any Part elements")
    info = await ctx.store.complete_multipart_upload(
        ctx.s3.bucket,
        ctx.s3.key,
        upload_id,
        parts,
        precondition=conditions.write_precondition(ctx.request.headers),
        verify=_full_object_check(ctx.request.headers),
    )
    host = ctx.request.host
    result = add(
        element("CompleteMultipartUploadResult"),
        ("Location", f"{ctx.request.scheme}://{host}/{ctx.s3.bucket}/{ctx.s3.key}"),
        ("Bucket", ctx.s3.bucket),
        ("Key", ctx.s3.key),
        ("ETag", quote_etag(info.etag)),
    )
    return xml_reply(result)


async def abort_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    await ctx.store.abort_multipart_upload(ctx.s3.bucket, ctx.s3.key, _upload_id(ctx))
    return web.Response(status=204)


async def list_parts(ctx: Ctx) -> web.StreamResponse:
    upload_id = _upload_id(ctx)
    q = ctx.s3.query
    marker = int_param(q, "part-number-marker", 0, low=0, high=10000)
    max_parts = min(int_param(q, "max-parts", 1000, low=0), 1000)
    parts, truncated, next_marker = await ctx.store.list_parts(
        ctx.s3.bucket, ctx.s3.key, upload_id, part_number_marker=marker, max_parts=max_parts
    )
    owner = bucket_owner(ctx, ctx.bucket)
    root = add(
        element("ListPartsResult"),
        ("Bucket", ctx.s3.bucket),
        ("Key", ctx.s3.key),
        ("UploadId", upload_id),
        owner_element(*owner, "Initiator"),
        owner_element(*owner),
        ("StorageClass", "STANDARD"),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", next_marker),
        ("MaxParts", max_parts),
        ("IsTruncated", truncated),
        [
            add(
                element("Part"),
                ("PartNumber", p.number),
                ("LastModified", iso8601(p.last_modified_ms)),
                ("ETag", quote_etag(p.etag)),
                ("Size", p.size),
            )
            for p in parts
        ],
    )
    return xml_reply(root)
