"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
CompleteMultipartUpload, AbortMultipartUpload, ListParts."""

from __future__ import annotations

import hmac

from aiohttp import web

from s3free.appkeys import Ctx
from s3free.s3 import conditions
from s3free.s3.body import open_body, read_small_body
from s3free.s3.checksums import (
    ALGORITHMS,
    COMPOSITE_VALUE,
    HEADERS,
    Checksum,
    ChecksumStream,
    checksum_type,
    decode_value,
)
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
    # Each part's checksum is verified as it arrives (UploadPart); the whole object's is made
    # at CompleteMultipartUpload (_complete_checksum), where the type asked for here is given
    # again, as S3's clients do.
    algorithm = ctx.request.headers.get("x-amz-checksum-algorithm")
    upload_id = await ctx.store.create_multipart_upload(ctx.s3.bucket, ctx.s3.key, **fields)
    root = add(
        element("InitiateMultipartUploadResult"),
        ("Bucket", ctx.s3.bucket),
        ("Key", ctx.s3.key),
        ("UploadId", upload_id),
    )
    headers = {"x-amz-checksum-algorithm": algorithm.upper()} if algorithm else {}
    kind = _requested_type(ctx.request.headers)
    if kind is not None:
        headers["x-amz-checksum-type"] = kind
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


CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")


def _requested_type(headers) -> str | None:
    value = headers.get("x-amz-checksum-type")
    if value is None:
        return None
    kind = value.strip().upper()
    if kind not in CHECKSUM_TYPES:
        raise S3Error("InvalidRequest", "Value for x-amz-checksum-type header is invalid.")
    return kind


def _check_type(algorithm: str, kind: str) -> None:
    """S3's pairs: CRC64NVME is only FULL_OBJECT, SHA1/SHA256 only COMPOSITE."""
    if kind == "COMPOSITE" and algorithm == "CRC64NVME":
        raise S3Error(
            "InvalidRequest",
            "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
        )
    if kind == "FULL_OBJECT" and algorithm in ("SHA1", "SHA256"):
        raise S3Error(
            "InvalidRequest",
            f"The FULL_OBJECT checksum type cannot be used with the {algorithm.lower()} "
            "checksum algorithm.",
        )


async def _part_digests(stream, sizes: list[int], algorithm: str) -> list[bytes]:
    """Each part's checksum digest, the assembled object's bytes cut at the part sizes."""
    digests: list[bytes] = []
    rest = iter(sizes)
    current, left = Checksum(algorithm), next(rest)
    async for chunk in stream:
        view = memoryview(chunk)
        while view.nbytes:
            while left == 0:
                digests.append(current.digest())
                current, left = Checksum(algorithm), next(rest)
            take = min(left, view.nbytes)
            current.update(view[:take])
            view, left = view[take:], left - take
    digests.append(current.digest())
    digests.extend(Checksum(algorithm).digest() for _ in rest)
    return digests


def _complete_checksum(headers, numbers: list[int], listed: dict[int, dict[str, str]]):
    """The check of a CompleteMultipartUpload's checksums, or None when it asks for none.

    A full-object x-amz-checksum-* is compared with the assembled object; a composite one
    ("<checksum of the parts' checksums>-N") with the checksum of the parts' digests; each
    part's Checksum<ALG> in the request document with that part as stored (InvalidPart if it
    differs). Both are computed by reading the assembled object back before it becomes
    visible (BadDigest, and the upload stays as it was, on a mismatch), and the result is
    stored with the object (returned by HeadObject/GetObject with ChecksumMode=ENABLED).
    Which type: x-amz-checksum-type, else the value's "-N" suffix, else S3's default for
    the algorithm (FULL_OBJECT for CRC64NVME, COMPOSITE for the others)."""
    given = [(alg, headers[h].strip()) for alg, h in HEADERS.items() if headers.get(h) is not None]
    if len(given) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    in_parts = {alg for per in listed.values() for alg in per}
    if len(in_parts) > 1 or (given and in_parts and in_parts != {given[0][0]}):
        raise S3Error("InvalidRequest", "The parts' checksums must all use the upload's algorithm")
    if given:
        algorithm, expected = given[0]
    elif in_parts:
        algorithm, expected = in_parts.pop(), None
    else:
        return None
    composite = COMPOSITE_VALUE.match(expected) if expected is not None else None
    kind = _requested_type(headers) or (
        "COMPOSITE"
        if composite or (expected is None and algorithm != "CRC64NVME")
        else "FULL_OBJECT"
    )
    _check_type(algorithm, kind)
    if expected is not None:
        if kind == "COMPOSITE" and composite is None:
            raise S3Error(
                "InvalidRequest",
                f"Value for {HEADERS[algorithm]} header is invalid: a COMPOSITE checksum "
                "ends in -<number of parts>.",
            )
        if kind == "FULL_OBJECT" and composite is not None:
            raise S3Error(
                "InvalidRequest",
                f"Value for {HEADERS[algorithm]} header is invalid: a FULL_OBJECT checksum "
                "has no -<number of parts> suffix.",
            )
        decode_value(algorithm, composite.group(1) if composite else expected)
    for per in listed.values():
        for alg, value in per.items():
            decode_value(alg, value)

    async def verify(stream, sizes) -> dict[str, str]:
        if kind == "FULL_OBJECT":
            checked = ChecksumStream(
                stream, [algorithm], expected={algorithm: expected} if expected else None
            )
            async for _ in checked:
                pass
            return {algorithm: checked.values[algorithm]}
        digests = await _part_digests(stream, list(sizes), algorithm)
        for number, digest in zip(numbers, digests, strict=True):
            value = listed.get(number, {}).get(algorithm)
            if value is not None and not hmac.compare_digest(
                decode_value(algorithm, value), digest
            ):
                raise S3Error(
                    "InvalidPart",
                    f"part {number}'s {algorithm} checksum differs from the one listed",
                )
        whole = Checksum(algorithm)
        whole.update(b"".join(digests))
        value = f"{whole.digest_b64()}-{len(digests)}"
        if expected is not None and expected != value:
            raise S3Error(
                "BadDigest", f"The {algorithm} you specified did not match the calculated checksum."
            )
        return {algorithm: value}

    return verify


async def complete_multipart_upload(ctx: Ctx) -> web.StreamResponse:
    upload_id = _upload_id(ctx)
    root = await parse_body_async(await read_small_body(ctx), "CompleteMultipartUpload")
    parts = []
    listed: dict[int, dict[str, str]] = {}
    for part in children(root, "Part"):
        number_text = child_text(part, "PartNumber")
        etag = child_text(part, "ETag")
        number = parse_uint((number_text or "").strip(), max_digits=5)
        if number is None:
            raise S3Error("MalformedXML", "PartNumber must be an integer from 1 to 10000")
        if etag is None:
            raise S3Error("MalformedXML", "every Part needs an ETag")
        parts.append((number, etag))
        for algorithm in ALGORITHMS:
            value = child_text(part, "Checksum" + algorithm)
            if value is not None:
                listed.setdefault(number, {})[algorithm] = value.strip()
    if not parts:
        raise S3Error("MalformedXML", "The XML you provided did not have any Part elements")
    info = await ctx.store.complete_multipart_upload(
        ctx.s3.bucket,
        ctx.s3.key,
        upload_id,
        parts,
        precondition=conditions.write_precondition(ctx.request.headers),
        verify=_complete_checksum(ctx.request.headers, [n for n, _ in parts], listed),
    )
    host = ctx.request.host
    result = add(
        element("CompleteMultipartUploadResult"),
        ("Location", f"{ctx.request.scheme}://{host}/{ctx.s3.bucket}/{ctx.s3.key}"),
        ("Bucket", ctx.s3.bucket),
        ("Key", ctx.s3.key),
        ("ETag", quote_etag(info.etag)),
        [("Checksum" + alg, value) for alg, value in sorted(info.checksums.items())],
        [("ChecksumType", checksum_type(v)) for v in list(info.checksums.values())[:1]],
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
