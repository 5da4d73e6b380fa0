"""A request body as the engine wants it: an async stream of the object's bytes, checked on the
way through, with the size and MD5 the client announced.

What is checked, all while streaming (nothing is held whole): the payload SHA-256 when the
request signed one; every chunk signature of an aws-chunked body (and its trailer); the
decoded length; Content-MD5 (by the engine, which computes the MD5 anyway); and any
x-amz-checksum-* value, sent as a header or as a trailer. A failed check raises before the
stream ends, so the engine commits nothing. A client that disconnects mid-body gives
IncompleteBody.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from s3free.s3.auth.sigv4 import is_sha256_hex, verify_payload_sha256
from s3free.s3.checksums import HEADER_PREFIX, HEADERS, ChecksumStream, checksum_request
from s3free.s3.chunked import AwsChunkedDecoder, chunked_variant, declared_trailers
from s3free.s3.errors import S3Error
from s3free.s3.numbers import parse_uint
from s3free.s3.xmlio import body_limit

READ_SIZE = 256 * 1024


@dataclass
class Body:
    stream: AsyncIterator[bytes]
    expected_size: int | None
    expected_md5: bytes | None
    checksums: dict[str, str] = field(default_factory=dict)  # filled when the stream ends


async def _raw(request) -> AsyncIterator[bytes]:
    try:
        while True:
            data = await request.content.readany()
            if not data:
                return
            yield data
    except (
        ClientPayloadError,
        RequestPayloadError,  # what the server side's payload raises (a short or bad body)
        ConnectionResetError,
        HttpProcessingError,
    ) as exc:
        raise S3Error("IncompleteBody", f"the request body ended early: {exc}") from None


def _content_md5(headers) -> bytes | None:
    value = headers.get("Content-MD5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified was invalid.")
    return digest


def _int_header(headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    number = parse_uint(value.strip())
    if number is None:
        raise S3Error(
            "InvalidArgument", f"{name} must be a whole number of at most 19 ASCII digits"
        )
    return number


# x-amz-checksum-* request headers that are not a checksum value of the body.
_CHECKSUM_PARAMETERS = frozenset(
    ("x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-checksum-mode")
)


def _refuse_unknown_checksums(headers) -> None:
    """A checksum value we cannot compute (x-amz-checksum-sha512, ...) must not be acknowledged
    as if it had been verified."""
    known = set(HEADERS.values()) | _CHECKSUM_PARAMETERS
    for name in headers:
        lowered = name.lower()
        if lowered.startswith(HEADER_PREFIX) and lowered not in known:
            raise S3Error("InvalidRequest", f"The {lowered} header is not supported.")


async def open_body(ctx, *, body_checksums: bool = True) -> Body:
    """`body_checksums`: whether x-amz-checksum-* headers are checksums of this body (False for
    CompleteMultipartUpload, where they are the whole object's)."""
    request = ctx.request
    headers = request.headers
    payload = ctx.auth.payload
    expected_md5 = _content_md5(headers)
    variant = chunked_variant(payload, headers.get("Content-Encoding"))
    stream: AsyncIterator[bytes] = _raw(request)
    decoder: AwsChunkedDecoder | None = None
    if variant is None:
        size = request.content_length
        if is_sha256_hex(payload):
            stream = verify_payload_sha256(stream, payload)
    else:
        if is_sha256_hex(payload):
            stream = verify_payload_sha256(stream, payload)  # covers the encoded body
        size = _int_header(headers, "x-amz-decoded-content-length")
        if size is None and payload.startswith("STREAMING-"):
            raise S3Error("MissingContentLength", "x-amz-decoded-content-length is required")
        decoder = AwsChunkedDecoder(
            stream,
            variant=variant,
            auth=ctx.auth,
            decoded_length=size,
            expected_trailers=declared_trailers(headers.get("x-amz-trailer")),
        )
        stream = decoder.__aiter__()
    wanted = None
    if body_checksums:
        _refuse_unknown_checksums(headers)
        wanted = checksum_request(headers)
    body = Body(stream, size, expected_md5)
    if wanted is not None:
        checked = ChecksumStream(
            stream,
            [wanted.algorithm],
            expected={wanted.algorithm: wanted.expected} if wanted.expected else None,
            expected_at_end=(lambda: decoder.trailers) if wanted.in_trailer and decoder else None,
        )
        body.stream = checked.__aiter__()
        body.checksums = checked.values
    return body


async def read_small_body(ctx) -> bytes:
    """A small body (XML documents) in memory, with every check of open_body applied, up to
    the operation's cap (xmlio.BODY_LIMITS): a larger one is refused before it is read whole."""
    limit = body_limit(ctx.s3.op)
    too_big = S3Error(
        "MaxMessageLengthExceeded",
        f"Your request was too big: {ctx.s3.op} accepts a body of at most {limit} bytes.",
    )
    # The checksum headers of CompleteMultipartUpload describe the object, not the XML.
    body = await open_body(ctx, body_checksums=ctx.s3.op != "CompleteMultipartUpload")
    if body.expected_size is not None and body.expected_size > limit:
        raise too_big
    pieces: list[bytes] = []
    total = 0
    async for piece in body.stream:
        total += len(piece)
        if total > limit:
            raise too_big
        pieces.append(piece)
    data = b"".join(pieces)
    if body.expected_size is not None and total != body.expected_size:
        raise S3Error("IncompleteBody", "the request body is shorter than announced")
    if body.expected_md5 is not None:
        import hashlib

        if hashlib.md5(data).digest() != body.expected_md5:
            raise S3Error(
                "BadDigest", "The Content-MD5 you specified did not match what we received."
            )
    return data
