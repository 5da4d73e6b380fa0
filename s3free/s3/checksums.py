"""S3 additional checksums: CRC32, CRC32C, CRC64NVME, SHA1, SHA256.

Values travel as base64 of the big-endian digest (`x-amz-checksum-crc32: 4waSgw==`), in a
request header or in an aws-chunked trailer. `Checksum` computes one; `checksum_request()`
reads what a request asks for from its headers; `ChecksumStream` computes several over a body
and, when the body ends, compares them with the values the client sent (given up front, or read
from the chunked decoder's trailers at the end) and raises BadDigest on a mismatch. Its
`values` dict (algorithm -> base64) is filled in place when the stream ends, so it can be handed
to `ObjectStore.put_object(checksums=...)` before the upload runs.

CRC32 is zlib's; CRC32C comes from the `crc32c` package; CRC64NVME from `awscrt.checksums`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import crc32c as _crc32c
from awscrt import checksums as _crt

from s3free.s3.errors import S3Error

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
DIGEST_SIZE = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
HEADER_PREFIX = "x-amz-checksum-"
HEADERS = {alg: HEADER_PREFIX + alg.lower() for alg in ALGORITHMS}
_BY_HEADER = {h: alg for alg, h in HEADERS.items()}
# A multipart object's composite checksum: base64 of the checksum of its parts' digests, "-N".
COMPOSITE_VALUE = re.compile(r"^(.+)-([0-9]{1,5})$")


def checksum_type(value: str) -> str:
    """COMPOSITE for a stored "checksum of checksums-N", else FULL_OBJECT: the type S3 reports
    (x-amz-checksum-type, ChecksumType) follows from the stored value alone."""
    return "COMPOSITE" if COMPOSITE_VALUE.match(value) else "FULL_OBJECT"


def header_name(algorithm: str) -> str:
    """ "CRC32" -> "x-amz-checksum-crc32"."""
    return HEADERS[normalize_algorithm(algorithm)]


def normalize_algorithm(name: str, *, source: str = "x-amz-sdk-checksum-algorithm") -> str:
    """The algorithm ("CRC32", ...) for a name as clients write it: "crc32", "CRC32",
    "x-amz-checksum-crc32". Unknown names: InvalidRequest naming `source`."""
    n = name.strip().lower()
    if n.startswith(HEADER_PREFIX):
        n = n[len(HEADER_PREFIX) :]
    alg = n.upper()
    if alg not in DIGEST_SIZE:
        raise S3Error("InvalidRequest", f"Value for {source} header is invalid.")
    return alg


def decode_value(algorithm: str, value: str) -> bytes:
    """The digest a base64 checksum value stands for; InvalidRequest if it is not valid base64
    of the algorithm's digest size."""
    alg = normalize_algorithm(algorithm)
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != DIGEST_SIZE[alg]:
        raise S3Error("InvalidRequest", f"Value for {HEADERS[alg]} header is invalid.")
    return raw


class Checksum:
    """One running checksum. `update(data)` then `digest()` / `digest_b64()` (which do not end
    it: more data may follow)."""

    __slots__ = ("_crc", "_fn", "_hash", "_width", "header", "name")

    def __init__(self, algorithm: str):
        self.name = normalize_algorithm(algorithm)
        self.header = HEADERS[self.name]
        self._crc = 0
        self._hash: Any = None  # a hashlib object, for the algorithms that are not CRCs
        self._fn: Callable[[Any, int], int] | None
        if self.name == "CRC32":
            self._fn, self._width = zlib.crc32, 4
        elif self.name == "CRC32C":
            self._fn, self._width = _crc32c.crc32c, 4
        elif self.name == "CRC64NVME":
            self._fn, self._width = _crt.crc64nvme, 8
        else:
            self._fn, self._width = None, 0
            self._hash = hashlib.new(self.name.lower())

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._fn is not None:
            self._crc = self._fn(data, self._crc)
        else:
            self._hash.update(data)

    def digest(self) -> bytes:
        if self._fn is not None:
            return (self._crc & ((1 << (8 * self._width)) - 1)).to_bytes(self._width, "big")
        return self._hash.digest()

    def digest_b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")

    def __repr__(self) -> str:
        return f"Checksum({self.name}={self.digest_b64()})"


def new_checksum(name: str) -> Checksum:
    """A Checksum from an algorithm or header name ("CRC32C", "crc32c", "x-amz-checksum-crc32c")."""
    return Checksum(name)


def checksum_of(name: str, data: bytes) -> str:
    c = Checksum(name)
    c.update(data)
    return c.digest_b64()


@dataclass(frozen=True)
class ChecksumRequest:
    """What a request asks for: the algorithm, and the value when it came in a header
    (`in_trailer`: the value will come as an aws-chunked trailer)."""

    algorithm: str
    expected: str | None = None
    in_trailer: bool = False


def checksum_request(headers: Mapping[str, str]) -> ChecksumRequest | None:
    """Read the checksum headers of an upload request (PutObject, UploadPart):
    x-amz-checksum-<alg> (value), x-amz-sdk-checksum-algorithm, and x-amz-trailer naming an
    x-amz-checksum-* trailer. None when the request asks for no checksum. Raises InvalidRequest
    for several checksum values, a malformed value, or an algorithm header naming another
    algorithm than the value."""
    given = [(alg, headers[h]) for alg, h in HEADERS.items() if headers.get(h) is not None]
    trailer_names = []
    trailer = headers.get("x-amz-trailer")
    if trailer:
        trailer_names = [
            n
            for n in (p.strip().lower() for p in trailer.split(","))
            if n.startswith(HEADER_PREFIX)
        ]
    if len(given) + len(trailer_names) > 1:
        raise S3Error(
            "InvalidRequest",
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        )
    sdk = headers.get("x-amz-sdk-checksum-algorithm")
    sdk_alg = normalize_algorithm(sdk) if sdk else None
    if given:
        alg, value = given[0]
        decode_value(alg, value)
        if sdk_alg is not None and sdk_alg != alg:
            raise S3Error(
                "InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid."
            )
        return ChecksumRequest(alg, value.strip())
    if trailer_names:
        alg = normalize_algorithm(trailer_names[0], source="x-amz-trailer")
        if sdk_alg is not None and sdk_alg != alg:
            raise S3Error(
                "InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid."
            )
        return ChecksumRequest(alg, None, in_trailer=True)
    if sdk_alg is not None:
        return ChecksumRequest(sdk_alg)
    return None


def _expected_from(values: Mapping[str, str]) -> dict[str, str]:
    """Algorithm -> value for the checksum entries of a mapping (headers or trailers; other
    names, such as x-amz-checksum-type or unrelated trailers, are ignored)."""
    out: dict[str, str] = {}
    for name, value in values.items():
        n = name.strip().lower()
        if n.startswith(HEADER_PREFIX):
            if n in _BY_HEADER:
                out[_BY_HEADER[n]] = value
            elif n != "x-amz-checksum-type":
                raise S3Error("InvalidRequest", f"Unsupported checksum {name}.")
        elif n.upper() in DIGEST_SIZE:
            out[n.upper()] = value
    return out


class ChecksumStream:
    """Pass a body through, computing checksums; at its end, verify the expected values.

    `algorithms`: what to compute (names as `normalize_algorithm` takes them); every algorithm
    with an expected value is computed too. `expected`: values known up front (algorithm or
    header names -> base64). `expected_at_end`: called once the body has ended, returns more
    (e.g. `lambda: decoder.trailers`); an algorithm found there must have been asked for.
    On a mismatch raises BadDigest before the consumer sees the end of the stream.
    `values` (algorithm -> base64 of what was computed) is filled in place at the end.
    """

    def __init__(
        self,
        source: AsyncIterable[bytes],
        algorithms: Iterable[str] = (),
        *,
        expected: Mapping[str, str] | None = None,
        expected_at_end: Callable[[], Mapping[str, str]] | None = None,
    ):
        self._source = source
        self._expected = _expected_from(expected or {})
        for alg, value in self._expected.items():
            decode_value(alg, value)
        names = [normalize_algorithm(a) for a in algorithms] + list(self._expected)
        self.checksums: dict[str, Checksum] = {n: Checksum(n) for n in dict.fromkeys(names)}
        self._expected_at_end = expected_at_end
        self.values: dict[str, str] = {}
        self.size = 0
        self.done = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        updates = [c.update for c in self.checksums.values()]
        async for data in self._source:
            for update in updates:
                update(data)
            self.size += len(data)
            yield data
        self.finish()

    def finish(self) -> None:
        """Compare and publish (called at the end of the iteration)."""
        expected = dict(self._expected)
        if self._expected_at_end is not None:
            for alg, value in _expected_from(self._expected_at_end()).items():
                if alg not in self.checksums:
                    raise S3Error(
                        "InvalidRequest",
                        f"The {HEADERS[alg]} trailer was not announced by the request headers.",
                    )
                expected[alg] = value
        computed = {alg: c.digest() for alg, c in self.checksums.items()}
        for alg, value in expected.items():
            if not hmac.compare_digest(decode_value(alg, value), computed[alg]):
                raise S3Error(
                    "BadDigest", f"The {alg} you specified did not match the calculated checksum."
                )
        self.values.update(
            (alg, base64.b64encode(d).decode("ascii")) for alg, d in computed.items()
        )
        self.done = True
