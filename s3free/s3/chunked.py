"""Decoding of aws-chunked request bodies, with chunk and trailer signature verification.

Wire format (all four variants):

    <hex-size>[;chunk-signature=<64 hex>]\\r\\n <size bytes> \\r\\n     (repeated)
    0[;chunk-signature=<64 hex>]\\r\\n                                  (last chunk)
    <name>:<value>\\r\\n                                                (trailers, if any)
    [x-amz-trailer-signature:<64 hex>\\r\\n]
    \\r\\n

Variants, by `x-amz-content-sha256` (or Content-Encoding):

- STREAMING-AWS4-HMAC-SHA256-PAYLOAD: every chunk (the empty last one too) carries a signature
  chained from the request's seed signature: HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\\n" + date +
  scope + previous signature + SHA256("") + SHA256(chunk data)).
- STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the same, then trailers and an
  `x-amz-trailer-signature` = HMAC(key, "AWS4-HMAC-SHA256-TRAILER\\n" + date + scope + last
  chunk signature + SHA256("name:value\\n" for each trailer)).
- STREAMING-UNSIGNED-PAYLOAD-TRAILER: no signatures; trailers (normally a checksum).
- plain aws-chunked (Content-Encoding: aws-chunked with a hex or UNSIGNED-PAYLOAD
  x-amz-content-sha256): framing only; a hex payload hash covers the *encoded* body, so wrap the
  raw stream in sigv4.verify_payload_sha256 before decoding.

Memory is bounded: data is yielded in pieces of at most `piece_size` bytes however big a chunk
is, and a chunk's signature is checked (incrementally hashed) when its last byte has been read.
Data is therefore yielded before its chunk's signature is verified: the consumer must only
commit once the decoder is exhausted without error (the engine's writers do).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

from s3free.s3.auth.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    AuthResult,
    chunk_string_to_sign,
    sign,
    signatures_equal,
    trailer_string_to_sign,
)
from s3free.s3.errors import S3Error

AWS_CHUNKED = "aws-chunked"
"""Variant name for a body that is only Content-Encoding: aws-chunked (no chunk signatures)."""

STREAMING_VARIANTS = frozenset(
    (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
)
VARIANTS = STREAMING_VARIANTS | {AWS_CHUNKED}

TRAILER_SIGNATURE = "x-amz-trailer-signature"
MAX_LINE = 4096  # bytes of a chunk-size or trailer line (MinIO's limit too)
MAX_TRAILERS = 64
MAX_CHUNK_SIZE = 5 * 1024**3  # a chunk is never larger than the largest single PUT
PIECE_SIZE = 1024 * 1024
_READ_SIZE = 64 * 1024
_CHUNK_SIG_PREFIX = b"chunk-signature="
_HEX = frozenset(b"0123456789abcdefABCDEF")


def chunked_variant(payload: str, content_encoding: str | None) -> str | None:
    """Which aws-chunked variant a request body uses (None: a plain body), from the
    authenticated x-amz-content-sha256 value and the Content-Encoding header."""
    if payload in STREAMING_VARIANTS:
        return payload
    if content_encoding and AWS_CHUNKED in _encodings(content_encoding):
        return AWS_CHUNKED
    return None


def strip_aws_chunked(content_encoding: str | None) -> str | None:
    """The Content-Encoding to store for the object: the header without 'aws-chunked' (S3
    does not keep it), or None when nothing else is left."""
    if not content_encoding:
        return None
    rest = [
        e
        for e in (p.strip() for p in content_encoding.split(","))
        if e and e.lower() != AWS_CHUNKED
    ]
    return ", ".join(rest) or None


def declared_trailers(x_amz_trailer: str | None) -> list[str] | None:
    """The trailer names an `x-amz-trailer` header announces (lowercased), None if absent."""
    if x_amz_trailer is None:
        return None
    return [n for n in (p.strip().lower() for p in x_amz_trailer.split(",")) if n]


def _encodings(value: str) -> list[str]:
    return [p.strip().lower() for p in value.split(",")]


def _malformed(what: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {what}")


def _incomplete(what: str) -> S3Error:
    return S3Error("IncompleteBody", f"The request body ended early: {what}")


def _signature_mismatch(what: str) -> S3Error:
    return S3Error(
        "SignatureDoesNotMatch",
        f"The {what} signature we calculated does not match the signature you provided.",
    )


class _Source:
    """Buffered reads over an object with `async read(n)` (aiohttp / asyncio StreamReader) or
    over an async iterable of bytes."""

    def __init__(self, source: Any):
        read = getattr(source, "read", None)
        self._read = read if callable(read) else None
        self._iter: Any = None if self._read is not None else source.__aiter__()
        self._buf = b""
        self._pos = 0
        self.eof = False

    async def _more(self, n: int) -> bytes:
        if self.eof:
            return b""
        if self._read is not None:
            data = await self._read(n)
        else:
            while True:  # an iterator may yield empty pieces: only StopAsyncIteration ends it
                try:
                    data = await self._iter.__anext__()
                except StopAsyncIteration:
                    data = b""
                    break
                if data:
                    break
        if not data:
            self.eof = True
            return b""
        return bytes(data)

    async def line(self, limit: int, *, eof_ok: bool = False) -> bytes | None:
        """The next line without its line end (CRLF, or a bare LF), at most `limit` bytes.
        Returns None at a clean end of input if `eof_ok` and nothing of the line was read."""
        while True:
            nl = self._buf.find(b"\n", self._pos, self._pos + limit + 2)
            if nl >= 0:
                line = self._buf[self._pos : nl]
                self._pos = nl + 1
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) - self._pos > limit + 1:
                raise _malformed(f"a line is longer than {limit} bytes")
            more = await self._more(_READ_SIZE)
            if not more:
                if eof_ok and self._pos == len(self._buf):
                    return None
                raise _incomplete("in the middle of a chunk header or trailer line")
            self._buf = self._buf[self._pos :] + more
            self._pos = 0

    async def exact(self, n: int) -> bytes:
        """Exactly n bytes (small n)."""
        while len(self._buf) - self._pos < n:
            more = await self._more(max(_READ_SIZE, n))
            if not more:
                raise _incomplete(f"expected {n - (len(self._buf) - self._pos)} more byte(s)")
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    async def pieces(self, n: int, piece_size: int) -> AsyncIterator[bytes]:
        """Exactly n bytes, as pieces of at most piece_size bytes."""
        remaining = n
        while remaining:
            avail = len(self._buf) - self._pos
            if avail:
                take = min(avail, remaining, piece_size)
                piece = self._buf[self._pos : self._pos + take]
                self._pos += take
                if self._pos == len(self._buf):
                    self._buf, self._pos = b"", 0
            else:
                piece = await self._more(min(remaining, piece_size))
                if not piece:
                    raise _incomplete(f"{remaining} byte(s) of a chunk are missing")
                if len(piece) > remaining or len(piece) > piece_size:
                    take = min(remaining, piece_size)
                    self._buf, self._pos = piece, take
                    piece = piece[:take]
            remaining -= len(piece)
            yield piece

    async def at_end(self) -> bool:
        if self._pos < len(self._buf):
            return False
        return not await self._more(1)


class AwsChunkedDecoder:
    """Decode an aws-chunked body: `async for data in decoder` yields the object's bytes.

    `source`: an object with `async read(n)` (aiohttp's request.content, asyncio.StreamReader)
    or an async iterable of bytes. `variant`: one of VARIANTS (see `chunked_variant`).
    `auth`: the request's AuthResult, required for the signed variants (header auth only).
    `decoded_length`: the x-amz-decoded-content-length value, if sent (checked: IncompleteBody).
    `expected_trailers`: the names announced by x-amz-trailer (`declared_trailers()`); when
    given, exactly those must arrive. After the iteration ends, `trailers` holds the trailing
    headers (lowercased names, x-amz-trailer-signature excluded) and `decoded_size` the byte count.
    """

    def __init__(
        self,
        source: Any,
        *,
        variant: str,
        auth: AuthResult | None = None,
        decoded_length: int | None = None,
        expected_trailers: Iterable[str] | None = None,
        piece_size: int = PIECE_SIZE,
        max_chunk_size: int = MAX_CHUNK_SIZE,
        check_end: bool = True,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"unknown aws-chunked variant {variant!r}")
        self.variant = variant
        self.signed = variant in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
        if self.signed and (
            auth is None or auth.credentials is None or auth.presigned or not auth.signing_key
        ):
            raise S3Error(
                "InvalidRequest",
                f"{variant} requires a request signed with an AWS4-HMAC-SHA256 "
                "Authorization header.",
            )
        if decoded_length is not None and decoded_length < 0:
            raise S3Error(
                "InvalidArgument", "x-amz-decoded-content-length must be a non-negative integer"
            )
        self._source = _Source(source)
        self._auth = auth
        self._decoded_length = decoded_length
        self._expected = (
            None if expected_trailers is None else [t.lower() for t in expected_trailers]
        )
        self._piece_size = max(1, piece_size)
        self._max_chunk = max_chunk_size
        self._check_end = check_end
        self.trailers: dict[str, str] = {}
        self.decoded_size = 0
        self.done = False
        self._iterating = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._iterating:
            raise RuntimeError("an AwsChunkedDecoder can be iterated once")
        self._iterating = True
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        src = self._source
        auth = self._auth
        previous = auth.seed_signature if self.signed and auth is not None else ""
        while True:
            line = await src.line(MAX_LINE)
            assert line is not None
            size, signature = self._parse_size_line(line)
            if size > self._max_chunk:
                raise _malformed(
                    f"a chunk of {size} bytes is larger than the {self._max_chunk} allowed"
                )
            if self._decoded_length is not None and self.decoded_size + size > self._decoded_length:
                raise S3Error(
                    "IncompleteBody",
                    f"The decoded body is longer than x-amz-decoded-content-length "
                    f"({self._decoded_length} bytes).",
                )
            h = hashlib.sha256() if self.signed else None
            if size:
                async for piece in src.pieces(size, self._piece_size):
                    if h is not None:
                        h.update(piece)
                    self.decoded_size += len(piece)
                    yield piece
            if h is not None and auth is not None:
                expected = sign(
                    auth.signing_key,
                    chunk_string_to_sign(auth.amz_date, auth.scope, previous, h.hexdigest()),
                )
                if signature is None or not signatures_equal(expected, signature):
                    raise _signature_mismatch("chunk")
                previous = expected
            if size == 0:
                break
            if await src.exact(2) != b"\r\n":
                raise _malformed("chunk data is not followed by CRLF")
        await self._read_trailers(previous)
        if self._decoded_length is not None and self.decoded_size != self._decoded_length:
            raise S3Error(
                "IncompleteBody",
                f"The decoded body has {self.decoded_size} bytes; x-amz-decoded-content-length "
                f"announced {self._decoded_length}.",
            )
        if self._check_end and not await src.at_end():
            raise _malformed("data follows the end of the aws-chunked body")
        self.done = True

    def _parse_size_line(self, line: bytes) -> tuple[int, str | None]:
        line = line.rstrip(b" \t")
        size_part, semi, ext = line.partition(b";")
        size_part = size_part.strip(b" \t")
        if not size_part or len(size_part) > 16 or not set(size_part) <= _HEX:
            raise _malformed(f"bad chunk size {size_part[:32]!r}")
        size = int(size_part, 16)
        signature = None
        if self.signed:
            if not semi or not ext.startswith(_CHUNK_SIG_PREFIX):
                raise _signature_mismatch("chunk (missing chunk-signature)")
            sig = ext[len(_CHUNK_SIG_PREFIX) :]
            if len(sig) != 64 or not set(sig) <= _HEX:
                raise _signature_mismatch("chunk (malformed chunk-signature)")
            signature = sig.decode("ascii")
        return size, signature

    async def _read_trailers(self, previous_signature: str) -> None:
        src = self._source
        lines: list[tuple[str, str]] = []
        trailer_signature: str | None = None
        while True:
            line = await src.line(MAX_LINE, eof_ok=True)
            if not line:  # the blank line that ends the body (or a clean end of input there)
                break
            if len(lines) >= MAX_TRAILERS:
                raise _malformed("too many trailing headers")
            name_b, colon, value_b = line.partition(b":")
            name = name_b.strip().decode("latin-1").lower()
            if not colon or not name:
                raise _malformed(f"bad trailer line {line[:64]!r}")
            value = value_b.strip().decode("latin-1")
            if name == TRAILER_SIGNATURE:
                if trailer_signature is not None:
                    raise _malformed("x-amz-trailer-signature given twice")
                trailer_signature = value
                continue
            if name in self.trailers:
                raise _malformed(f"trailer {name} given twice")
            lines.append((name, value))
            self.trailers[name] = value
        if self.variant == STREAMING_SIGNED and (lines or trailer_signature is not None):
            raise _malformed(f"{STREAMING_SIGNED} bodies carry no trailers")
        if self._expected is not None:
            undeclared = [n for n, _ in lines if n not in self._expected]
            if undeclared:
                raise S3Error(
                    "InvalidRequest",
                    f"The trailer {undeclared[0]} was not declared in the x-amz-trailer header.",
                )
            missing = [n for n in self._expected if n not in self.trailers]
            if missing:
                raise S3Error(
                    "InvalidRequest",
                    f"The trailer {missing[0]} declared in the x-amz-trailer header was not sent.",
                )
        if self.variant == STREAMING_SIGNED_TRAILER:
            if trailer_signature is None:
                raise _signature_mismatch("trailer (missing x-amz-trailer-signature)")
            self._verify_trailer_signature(lines, trailer_signature, previous_signature)

    def _verify_trailer_signature(
        self, lines: list[tuple[str, str]], provided: str, previous: str
    ) -> None:
        auth = self._auth
        assert auth is not None
        # Senders sign the trailers in the order they send them (SDKs sort them by name);
        # accept either order, both are covered by the same key.
        orders = [lines]
        if sorted(lines) != lines:
            orders.append(sorted(lines))
        ok = False
        for order in orders:
            canonical = "".join(f"{n}:{v}\n" for n, v in order).encode("latin-1")
            expected = sign(
                auth.signing_key,
                trailer_string_to_sign(
                    auth.amz_date, auth.scope, previous, hashlib.sha256(canonical).hexdigest()
                ),
            )
            ok |= signatures_equal(expected, provided)
        if not ok:
            raise _signature_mismatch("trailer")
