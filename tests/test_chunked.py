"""aws-chunked decoding: AWS's published examples, bodies from an encoder written here from the
spec, and a real botocore aws-chunked upload; signatures, trailers, truncation, bad framing,
and big chunks streamed in bounded pieces."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import random
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.httpchecksum import AwsChunkedWrapper, CrtCrc32cChecksum, Sha256Checksum
from multidict import CIMultiDict

from s3free.s3.auth.sigv4 import (
    STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    AuthResult,
    Credentials,
    authenticate,
    parse_query,
)
from s3free.s3.checksums import ChecksumStream
from s3free.s3.chunked import (
    AWS_CHUNKED,
    AwsChunkedDecoder,
    chunked_variant,
    declared_trailers,
    strip_aws_chunked,
)
from s3free.s3.errors import S3Error

DOC_AK, DOC_SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_DATE, DOC_SCOPE = "20130524T000000Z", "20130524/us-east-1/s3/aws4_request"
EMPTY = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def derive_key(secret: str, date: str, region: str) -> bytes:
    k = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, "s3", "aws4_request"):
        k = _hmac(k, part)
    return k


DOC_KEY = derive_key(DOC_SK, DOC_DATE[:8], "us-east-1")


def doc_auth(seed: str) -> AuthResult:
    return AuthResult(
        credentials=Credentials(DOC_AK, DOC_SK, "doc"),
        payload=STREAMING_SIGNED,
        presigned=False,
        signing_key=DOC_KEY,
        seed_signature=seed,
        amz_date=DOC_DATE,
        scope=DOC_SCOPE,
    )


# --- an encoder written from the spec (independent of the code under test) ------------------


def encode(
    chunks: list[bytes],
    variant: str,
    *,
    auth: AuthResult | None = None,
    trailers: list[tuple[str, str]] = (),
    corrupt_chunk: int | None = None,
    corrupt_trailer_sig: bool = False,
) -> bytes:
    """An aws-chunked body: `chunks` then the empty final chunk, then the trailers."""
    signed = variant in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER)
    out = bytearray()
    prev = auth.seed_signature if signed else ""
    for i, data in enumerate([*chunks, b""]):
        if signed:
            sts = "\n".join(
                ("AWS4-HMAC-SHA256-PAYLOAD", auth.amz_date, auth.scope, prev, EMPTY,
                 hashlib.sha256(data).hexdigest())
            )  # fmt: skip
            prev = hmac.new(auth.signing_key, sts.encode(), hashlib.sha256).hexdigest()
            sig = prev if i != corrupt_chunk else ("f" * 64 if prev[0] != "f" else "e" * 64)
            out += f"{len(data):x};chunk-signature={sig}\r\n".encode()
        else:
            out += f"{len(data):x}\r\n".encode()
        if data:
            out += data + b"\r\n"
    canonical = "".join(f"{n}:{v}\n" for n, v in trailers)
    for n, v in trailers:
        out += f"{n}:{v}\r\n".encode()
    if variant == STREAMING_SIGNED_TRAILER:
        sts = "\n".join(
            ("AWS4-HMAC-SHA256-TRAILER", auth.amz_date, auth.scope, prev,
             hashlib.sha256(canonical.encode()).hexdigest())
        )  # fmt: skip
        sig = hmac.new(auth.signing_key, sts.encode(), hashlib.sha256).hexdigest()
        if corrupt_trailer_sig:
            sig = sig[::-1]
        out += f"x-amz-trailer-signature:{sig}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


# --- sources ---------------------------------------------------------------------------------


def stream_reader(body: bytes) -> asyncio.StreamReader:
    """An asyncio.StreamReader holding the body then EOF (must be made inside the loop)."""
    r = asyncio.StreamReader(limit=2**16)
    r.feed_data(body)
    r.feed_eof()
    return r


async def random_pieces(body: bytes, seed: int, max_piece: int = 70_000) -> AsyncIterator[bytes]:
    rnd = random.Random(seed)
    i = 0
    while i < len(body):
        n = rnd.choice([0, 1, 2, 7, 100, rnd.randrange(1, max_piece)])
        yield body[i : i + n]
        i += n


async def decode(body: bytes | Callable[[], object], **kw) -> tuple[bytes, AwsChunkedDecoder]:
    source = stream_reader(body) if isinstance(body, bytes) else body()
    dec = AwsChunkedDecoder(source, **kw)
    out = bytearray()
    async for piece in dec:
        out += piece
    assert dec.done
    return bytes(out), dec


async def decode_error(body: bytes, **kw) -> S3Error:
    with pytest.raises(S3Error) as info:
        await decode(body, **kw)
    return info.value


# ---------------------------------------------------------------------------------------------
# AWS's published examples (sigv4-streaming.html, sigv4-streaming-trailers.html)

DOC_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
DOC_BODY = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n"
    + b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n"
    + b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n"
)


async def test_aws_doc_chunked_upload_example():
    """The documented PUT of 65 KiB of 'a' in 64 KiB chunks: seed signature from the request,
    then each chunk's published signature, chained."""
    headers = CIMultiDict(
        {
            "Host": "s3.amazonaws.com",
            "x-amz-date": DOC_DATE,
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={DOC_AK}/{DOC_SCOPE},SignedHeaders=content-encoding;"
                "content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
                f"x-amz-storage-class,Signature={DOC_SEED}"
            ),
            "x-amz-content-sha256": STREAMING_SIGNED,
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "Content-Length": "66824",
        }
    )
    assert len(DOC_BODY) == 66824  # the layout above is the documented one, byte for byte
    auth = authenticate(
        method="PUT", path="/examplebucket/chunkObject.txt", query=[], headers=headers,
        lookup={DOC_AK: Credentials(DOC_AK, DOC_SK, "doc")}.get, region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )  # fmt: skip
    assert auth.seed_signature == DOC_SEED and auth.signing_key == DOC_KEY
    variant = chunked_variant(auth.payload, headers["Content-Encoding"])
    assert variant == STREAMING_SIGNED
    data, dec = await decode(DOC_BODY, variant=variant, auth=auth, decoded_length=66560)
    assert data == b"a" * 66560 and dec.trailers == {} and dec.decoded_size == 66560
    # One byte of data changed: the chunk signature no longer matches.
    tampered = DOC_BODY.replace(b"a", b"b", 1)
    assert (
        await decode_error(tampered, variant=variant, auth=auth)
    ).code == "SignatureDoesNotMatch"
    # The chain binds the order: the same chunks signed from another seed fail at once.
    err = await decode_error(DOC_BODY, variant=variant, auth=doc_auth("0" * 64))
    assert err.code == "SignatureDoesNotMatch"


TRAILER_SEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
TRAILER_CHUNKS = (
    b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n"
    + b"a" * 65536
    + b"\r\n"
    + b"400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
    + b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
)
# The trailer signature by the documented algorithm ("AWS4-HMAC-SHA256-TRAILER" line); the same
# value appears in the test suites of other S3 implementations verifying this example.
TRAILER_SIG = "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
# The value printed in the AWS page, which hashes the trailer under the PAYLOAD algorithm line.
DOC_PRINTED_TRAILER_SIG = "63bddb248ad2590c92712055f51b8e78ab024eead08276b24f010b0efd74843f"


async def test_aws_doc_trailer_example():
    headers = CIMultiDict(
        {
            "Host": "s3.amazonaws.com",
            "x-amz-date": DOC_DATE,
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={DOC_AK}/{DOC_SCOPE},SignedHeaders=content-encoding;"
                "host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
                f"x-amz-storage-class;x-amz-trailer,Signature={TRAILER_SEED}"
            ),
            "x-amz-content-sha256": STREAMING_SIGNED_TRAILER,
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": "66560",
            "x-amz-trailer": "x-amz-checksum-crc32c",
            "Content-Length": "66946",
        }
    )
    auth = authenticate(
        method="PUT", path="/examplebucket/chunkObject.txt", query=[], headers=headers,
        lookup={DOC_AK: Credentials(DOC_AK, DOC_SK, "doc")}.get, region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )  # fmt: skip
    assert auth.seed_signature == TRAILER_SEED and auth.payload == STREAMING_SIGNED_TRAILER
    body = TRAILER_CHUNKS + f"x-amz-trailer-signature:{TRAILER_SIG}\r\n\r\n".encode()
    assert len(body) == 66946  # the documented Content-Length
    kw = {
        "variant": STREAMING_SIGNED_TRAILER,
        "auth": auth,
        "decoded_length": 66560,
        "expected_trailers": declared_trailers(headers["x-amz-trailer"]),
    }

    async def upload() -> tuple[bytes, ChecksumStream]:
        dec = AwsChunkedDecoder(stream_reader(body), **kw)
        cs = ChecksumStream(dec, ["crc32c"], expected_at_end=lambda: dec.trailers)
        return b"".join([p async for p in cs]), cs

    data, cs = await upload()
    assert data == b"a" * 66560 and cs.values == {"CRC32C": "sOO8/Q=="}

    # The page's printed trailer signature is the PAYLOAD-line HMAC of the same trailer; SDKs
    # and S3 use the TRAILER line, so it is refused.
    sts = "\n".join(
        ("AWS4-HMAC-SHA256-PAYLOAD", DOC_DATE, DOC_SCOPE,
         "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
         hashlib.sha256(b"x-amz-checksum-crc32c:sOO8/Q==\n").hexdigest())
    )  # fmt: skip
    assert hmac.new(DOC_KEY, sts.encode(), hashlib.sha256).hexdigest() == DOC_PRINTED_TRAILER_SIG
    printed = TRAILER_CHUNKS + f"x-amz-trailer-signature:{DOC_PRINTED_TRAILER_SIG}\r\n\r\n".encode()
    assert (await decode_error(printed, **kw)).code == "SignatureDoesNotMatch"
    # A changed trailer value breaks the trailer signature.
    changed = body.replace(b"sOO8/Q==", b"AAAAAA==")
    assert (await decode_error(changed, **kw)).code == "SignatureDoesNotMatch"


# ---------------------------------------------------------------------------------------------
# All variants, encoded here from the spec

KEY = derive_key("test-secret", "20300101", "eu-test-1")
AUTH = AuthResult(
    credentials=Credentials("AK", "test-secret", "alice"),
    payload=STREAMING_SIGNED,
    presigned=False,
    signing_key=KEY,
    seed_signature=hashlib.sha256(b"seed").hexdigest(),
    amz_date="20300101T120000Z",
    scope="20300101/eu-test-1/s3/aws4_request",
)
VARIANTS = [STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER, AWS_CHUNKED]


def random_chunks(seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    sizes = rnd.choice(
        [[], [1], [8192, 8192, 1], [65536, 100], [rnd.randrange(1, 300_000) for _ in range(4)]]
    )
    return [rnd.randbytes(n) for n in sizes]


@pytest.mark.parametrize("variant", VARIANTS)
async def test_variants_round_trip_over_any_split(variant):
    for seed in range(12):
        chunks = random_chunks(seed)
        data = b"".join(chunks)
        trailers = (
            [] if variant == STREAMING_SIGNED else [("x-amz-checksum-crc32", crc32_b64(data))]
        )
        body = encode(chunks, variant, auth=AUTH, trailers=trailers)
        piece = 1 if len(data) < 20_000 else random.Random(seed).choice([1000, 65536, 1 << 20])
        kw = {
            "variant": variant,
            "auth": AUTH,
            "decoded_length": len(data),
            "expected_trailers": [n for n, _ in trailers],
            "piece_size": piece,
        }
        for source in (body, lambda b=body, s=seed: random_pieces(b, s)):
            out, dec = await decode(source, **kw)
            assert out == data, (variant, seed)
            assert dec.trailers == dict(trailers) and dec.decoded_size == len(data)


async def test_decoder_reads_aiohttp_stream_reader():
    """aiohttp's StreamReader (request.content) as the source."""
    from aiohttp import StreamReader
    from aiohttp.base_protocol import BaseProtocol

    chunks = [b"x" * 70_000, b"y" * 5]
    body = encode(chunks, STREAMING_SIGNED, auth=AUTH)

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        reader = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
        reader.feed_data(body[:1000])
        reader.feed_data(body[1000:])
        reader.feed_eof()
        dec = AwsChunkedDecoder(reader, variant=STREAMING_SIGNED, auth=AUTH, decoded_length=70_005)
        return b"".join([p async for p in dec])

    assert await main() == b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# Signatures


async def test_bad_chunk_signature_in_the_middle_stops_there():
    chunks = [bytes([i]) * 10_000 for i in range(5)]
    body = encode(chunks, STREAMING_SIGNED, auth=AUTH, corrupt_chunk=2)

    async def main() -> tuple[bytes, S3Error | None]:
        out = bytearray()
        try:
            async for piece in AwsChunkedDecoder(
                stream_reader(body), variant=STREAMING_SIGNED, auth=AUTH
            ):
                out += piece
        except S3Error as e:
            return bytes(out), e
        return bytes(out), None

    out, err = await main()
    assert err is not None and err.code == "SignatureDoesNotMatch" and err.status == 403
    assert out == b"".join(chunks[:3])  # chunk 2 was passed on, then refused at its end
    # The last (empty) chunk is signed too.
    body = encode(chunks, STREAMING_SIGNED, auth=AUTH, corrupt_chunk=len(chunks))
    assert (
        await decode_error(body, variant=STREAMING_SIGNED, auth=AUTH)
    ).code == "SignatureDoesNotMatch"


async def test_swapped_or_unsigned_chunks_are_refused():
    a = encode([b"A" * 100, b"B" * 100], STREAMING_SIGNED, auth=AUTH)
    first_end = a.index(b"\r\n", a.index(b"\r\n") + 2) + 2
    second_end = a.index(b"\r\n", a.index(b"\r\n", first_end) + 2) + 2
    swapped = a[first_end:second_end] + a[:first_end] + a[second_end:]
    assert (
        await decode_error(swapped, variant=STREAMING_SIGNED, auth=AUTH)
    ).code == "SignatureDoesNotMatch"
    unsigned = encode([b"A" * 100], AWS_CHUNKED)
    assert (
        await decode_error(unsigned, variant=STREAMING_SIGNED, auth=AUTH)
    ).code == "SignatureDoesNotMatch"
    short_sig = a.replace(b"chunk-signature=", b"chunk-signature=00", 1)
    assert (
        await decode_error(short_sig, variant=STREAMING_SIGNED, auth=AUTH)
    ).code == "SignatureDoesNotMatch"


async def test_trailer_signature_checks():
    chunks = [b"data" * 1000]
    trailers = [("x-amz-checksum-crc32", crc32_b64(chunks[0]))]
    kw = {"variant": STREAMING_SIGNED_TRAILER, "auth": AUTH}
    good = encode(chunks, STREAMING_SIGNED_TRAILER, auth=AUTH, trailers=trailers)
    assert (await decode(good, **kw))[1].trailers == dict(trailers)
    bad = encode(
        chunks, STREAMING_SIGNED_TRAILER, auth=AUTH, trailers=trailers, corrupt_trailer_sig=True
    )
    assert (await decode_error(bad, **kw)).code == "SignatureDoesNotMatch"
    missing = good[: good.index(b"x-amz-trailer-signature")] + b"\r\n"
    assert (await decode_error(missing, **kw)).code == "SignatureDoesNotMatch"
    # Two trailers sent (and signed) in sorted order, or in another order: both verify.
    two = [("x-amz-checksum-crc32", crc32_b64(chunks[0])), ("x-amz-meta-late", "v")]
    for order in (two, two[::-1]):
        body = encode(chunks, STREAMING_SIGNED_TRAILER, auth=AUTH, trailers=order)
        assert (await decode(body, **kw))[1].trailers == dict(two)
    # An extra trailer spliced into a signed body is caught.
    spliced = good.replace(
        b"x-amz-trailer-signature", b"x-amz-meta-evil:1\r\nx-amz-trailer-signature"
    )
    assert (await decode_error(spliced, **kw)).code == "SignatureDoesNotMatch"


async def test_declared_trailers_must_match():
    chunks = [b"z" * 10]
    body = encode(
        chunks,
        STREAMING_UNSIGNED_TRAILER,
        trailers=[("x-amz-checksum-crc32", crc32_b64(chunks[0]))],
    )
    kw = {"variant": STREAMING_UNSIGNED_TRAILER}
    assert (await decode(body, **kw, expected_trailers=["x-amz-checksum-crc32"]))[1].trailers
    err = await decode_error(body, **kw, expected_trailers=["x-amz-checksum-sha256"])
    assert err.code == "InvalidRequest" and "not declared" in err.message
    no_trailer = encode(chunks, STREAMING_UNSIGNED_TRAILER)
    err = await decode_error(no_trailer, **kw, expected_trailers=["x-amz-checksum-crc32"])
    assert err.code == "InvalidRequest" and "was not sent" in err.message
    # Trailers where the variant has none.
    signed = encode(chunks, STREAMING_SIGNED, auth=AUTH)
    with_trailer = signed[:-2] + b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    assert (
        await decode_error(with_trailer, variant=STREAMING_SIGNED, auth=AUTH)
    ).code == "InvalidRequest"


def test_signed_variants_need_header_auth():
    for variant in (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER):
        for auth in (
            None,
            AuthResult(None, variant, False),
            AuthResult(AUTH.credentials, variant, True, KEY),
        ):
            with pytest.raises(S3Error) as info:
                AwsChunkedDecoder(io.BytesIO(), variant=variant, auth=auth)
            assert info.value.code == "InvalidRequest"


# ---------------------------------------------------------------------------------------------
# Truncation, lengths, framing


@pytest.mark.parametrize("variant", VARIANTS)
async def test_every_truncation_is_an_incomplete_body(variant):
    chunks = [b"abc" * 30, b"xy"]
    data = b"".join(chunks)
    trailers = [] if variant == STREAMING_SIGNED else [("x-amz-checksum-crc32", crc32_b64(data))]
    body = encode(chunks, variant, auth=AUTH, trailers=trailers)
    last = body.index(b"\r\n0")  # the final chunk's size line starts after this CRLF
    kw = {"variant": variant, "auth": AUTH, "decoded_length": len(data)}
    for cut in range(last + 3):  # ... up to a final size line missing its CRLF
        err = await decode_error(body[:cut], **kw)
        assert err.code == "IncompleteBody" and err.status == 400, (cut, err.message)
    # Cut inside the trailer line: incomplete too.
    if trailers:
        t = body.index(b"x-amz-checksum-crc32")
        assert (await decode_error(body[: t + 10], **kw)).code == "IncompleteBody"
    # Only the final blank line missing: everything (signatures, trailers) was received.
    out, dec = await decode(body[:-2], **kw)
    assert out == data and dec.trailers == dict(trailers)


async def test_decoded_length_must_match():
    chunks = [b"q" * 1000, b"r" * 24]
    body = encode(chunks, STREAMING_SIGNED, auth=AUTH)
    kw = {"variant": STREAMING_SIGNED, "auth": AUTH}
    for wrong in (0, 1023, 1025, 10**9):
        err = await decode_error(body, **kw, decoded_length=wrong)
        assert err.code == "IncompleteBody", wrong
    assert (await decode(body, **kw, decoded_length=1024))[0] == b"".join(chunks)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"zz\r\nab\r\n0\r\n\r\n", "bad hex"),
        (b"-1\r\n", "negative size"),
        (b"\r\n", "empty size"),
        (b"1" * 17 + b"\r\n", "17 hex digits"),
        (b"2\r\nab!!0\r\n\r\n", "no CRLF after data"),
        (b"2\r\nab\n0\r\n\r\n", "bare LF after data"),
        (b"2\r\nabX\n0\r\n\r\n", "CR of the CRLF replaced"),
        (b"2\r\nab\r\n0\r\n\r\nextra", "data after the end"),
        (b"1" * 5000, "endless size line"),
        (b"0\r\n" + b"x-amz-meta-a:" + b"v" * 5000 + b"\r\n\r\n", "huge trailer line"),
        (b"0\r\nno-colon-here\r\n\r\n", "trailer without colon"),
        (
            b"0\r\n" + b"".join(b"x-amz-meta-%d:v\r\n" % i for i in range(100)) + b"\r\n",
            "too many trailers",
        ),
        (b"0\r\nx-amz-meta-a:1\r\nx-amz-meta-a:2\r\n\r\n", "repeated trailer"),
        (b"20000000\r\n", "over the chunk size limit"),
    ],
)
async def test_garbage_framing_is_refused(body, what):
    err = await decode_error(body, variant=AWS_CHUNKED, max_chunk_size=1 << 28)
    assert err.code == "InvalidRequest" and "Malformed" in err.message, (what, err.message)


# ---------------------------------------------------------------------------------------------
# Big chunks stream through in bounded pieces


async def test_big_chunk_streams_in_bounded_pieces_with_bounded_memory():
    """One 48 MiB chunk, generated on the fly: pieces never exceed piece_size, and the decoder
    never holds the chunk (traced peak allocation stays far below its size)."""
    block = bytes(range(256)) * 256  # 64 KiB
    n_blocks = 768  # 48 MiB
    size = len(block) * n_blocks
    h = hashlib.sha256()
    for _ in range(n_blocks):
        h.update(block)
    sts = "\n".join(
        (
            "AWS4-HMAC-SHA256-PAYLOAD",
            AUTH.amz_date,
            AUTH.scope,
            AUTH.seed_signature,
            EMPTY,
            h.hexdigest(),
        )
    )
    sig1 = hmac.new(KEY, sts.encode(), hashlib.sha256).hexdigest()
    sts = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", AUTH.amz_date, AUTH.scope, sig1, EMPTY, EMPTY))
    sig2 = hmac.new(KEY, sts.encode(), hashlib.sha256).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        yield f"{size:x};chunk-signature={sig1}\r\n".encode() + block[:1000]
        yield block[1000:]
        for _ in range(n_blocks - 1):
            yield block
        yield f"\r\n0;chunk-signature={sig2}\r\n\r\n".encode()

    async def main() -> tuple[int, int, str]:
        dec = AwsChunkedDecoder(
            body(), variant=STREAMING_SIGNED, auth=AUTH, decoded_length=size, piece_size=256 * 1024
        )
        total, biggest, out = 0, 0, hashlib.sha256()
        async for piece in dec:
            total += len(piece)
            biggest = max(biggest, len(piece))
            out.update(piece)
        return total, biggest, out.hexdigest()

    tracemalloc.start()
    try:
        total, biggest, digest = await main()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size and digest == h.hexdigest()
    assert biggest <= 256 * 1024
    assert peak < 4 * 1024 * 1024, peak


async def test_one_big_source_read_is_cut_into_pieces():
    chunks = [b"k" * 3_000_000]
    body = encode(chunks, STREAMING_UNSIGNED_TRAILER)

    async def one_piece() -> AsyncIterator[bytes]:
        yield body

    async def main() -> list[int]:
        dec = AwsChunkedDecoder(one_piece(), variant=STREAMING_UNSIGNED_TRAILER, piece_size=1 << 20)
        return [len(p) async for p in dec]

    sizes = await main()
    assert sum(sizes) == 3_000_000 and max(sizes) <= 1 << 20


# ---------------------------------------------------------------------------------------------
# botocore's own aws-chunked encoder and a real boto3 upload


@pytest.mark.parametrize("checksum_cls", [CrtCrc32cChecksum, Sha256Checksum, None])
@pytest.mark.parametrize("chunk_size", [1, 1000, 65536, None])
async def test_botocore_aws_chunked_wrapper_bodies(checksum_cls, chunk_size):
    data = random.Random(chunk_size or 0).randbytes(150_001 if chunk_size != 1 else 3000)
    name = "x-amz-checksum-" + ("crc32c" if checksum_cls is CrtCrc32cChecksum else "sha256")
    wrapper = AwsChunkedWrapper(
        io.BytesIO(data), checksum_cls=checksum_cls, checksum_name=name, chunk_size=chunk_size
    )
    body = wrapper.read()
    algorithm = [name] if checksum_cls else []

    async def main() -> tuple[bytes, ChecksumStream, AwsChunkedDecoder]:
        dec = AwsChunkedDecoder(
            stream_reader(body), variant=STREAMING_UNSIGNED_TRAILER, decoded_length=len(data),
            expected_trailers=algorithm,
        )  # fmt: skip
        cs = ChecksumStream(dec, algorithm, expected_at_end=lambda: dec.trailers)
        return b"".join([p async for p in cs]), cs, dec

    out, cs, dec = await main()
    assert out == data
    if checksum_cls:
        c = checksum_cls()
        c.update(data)
        assert dec.trailers == {name: c.b64digest()}
        assert list(cs.values.values()) == [c.b64digest()]


async def test_real_boto3_streaming_upload_decodes_and_verifies():
    """boto3 over https streams a file body as STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32
    trailer; the request is captured before it is sent, then authenticated and decoded."""
    ak, sk = "AKIDSTREAM", "stream-secret"
    client = boto3.client(
        "s3", endpoint_url="https://127.0.0.1:9", region_name="eu-test-1",
        aws_access_key_id=ak, aws_secret_access_key=sk,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )  # fmt: skip
    captured = []

    class Captured(Exception):
        pass

    def capture(request, **kwargs):
        captured.append(request)
        raise Captured

    client.meta.events.register("before-send.s3", capture)
    data = random.Random(5).randbytes(2_500_000)
    with pytest.raises(Captured):
        client.put_object(Bucket="bkt", Key="dir/a file+1", Body=io.BytesIO(data))
    req = captured[0]
    parts = urlsplit(req.url)
    headers = CIMultiDict(
        (k, v.decode() if isinstance(v, bytes) else v) for k, v in req.headers.items()
    )
    auth = authenticate(
        method=req.method, path=parts.path, query=parse_query(parts.query), headers=headers,
        lookup={ak: Credentials(ak, sk, "bob")}.get, region="eu-test-1",
    )  # fmt: skip
    variant = chunked_variant(auth.payload, headers.get("Content-Encoding"))
    assert variant == STREAMING_UNSIGNED_TRAILER
    assert strip_aws_chunked(headers.get("Content-Encoding")) is None
    body = req.body.read()
    trailers = declared_trailers(headers["x-amz-trailer"])

    async def main() -> tuple[bytes, dict]:
        dec = AwsChunkedDecoder(
            random_pieces(body, 1), variant=variant, auth=auth,
            decoded_length=int(headers["x-amz-decoded-content-length"]), expected_trailers=trailers,
        )  # fmt: skip
        cs = ChecksumStream(dec, trailers, expected_at_end=lambda: dec.trailers)
        return b"".join([p async for p in cs]), cs.values

    out, values = await main()
    assert out == data and values == {"CRC32": crc32_b64(data)}
    # A flipped bit in the body: the trailer checksum catches it.
    i = body.index(b"\r\n") + 1000
    flipped = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]

    async def flipped_upload() -> None:
        dec = AwsChunkedDecoder(
            stream_reader(flipped), variant=variant, auth=auth, expected_trailers=trailers
        )
        async for _ in ChecksumStream(dec, trailers, expected_at_end=lambda: dec.trailers):
            pass

    with pytest.raises(S3Error) as info:
        await flipped_upload()
    assert info.value.code == "BadDigest"


def test_helpers():
    assert chunked_variant("UNSIGNED-PAYLOAD", None) is None
    assert chunked_variant("UNSIGNED-PAYLOAD", "gzip, aws-chunked") == AWS_CHUNKED
    assert chunked_variant(EMPTY, "AWS-Chunked") == AWS_CHUNKED
    assert chunked_variant(STREAMING_SIGNED, None) == STREAMING_SIGNED
    assert strip_aws_chunked("aws-chunked, gzip") == "gzip"
    assert strip_aws_chunked("gzip,aws-chunked,br") == "gzip, br"
    assert strip_aws_chunked("aws-chunked") is None and strip_aws_chunked(None) is None
    assert declared_trailers(" X-Amz-Checksum-CRC32 , x-amz-meta-a") == [
        "x-amz-checksum-crc32",
        "x-amz-meta-a",
    ]
    assert declared_trailers(None) is None
