"""AWS Signature Version 4 verification for S3, independent of the HTTP framework.

Plain values in, an `AuthResult` (or an `S3Error`) out:

- `authenticate()` checks an `Authorization: AWS4-HMAC-SHA256 ...` header or a presigned URL
  (`X-Amz-Algorithm`/`X-Amz-Credential`/`X-Amz-Date`/`X-Amz-Expires`/`X-Amz-SignedHeaders`/
  `X-Amz-Signature`) the way S3 does, and says who signed (or that the request is anonymous);
- `verify_payload_sha256()` wraps a body stream and fails at its end when the body does not
  hash to the signed `x-amz-content-sha256`;
- `chunk_string_to_sign()` / `trailer_string_to_sign()` are what `chunked.py` signs chunks with.

Canonical request as S3 builds it: the URI is the URI-encoding of the *decoded* request path
('/' kept, no dot-segment or '//' normalisation); the query is every (name, value) pair
URI-encoded and sorted; the headers are the signed ones, lowercased, values trimmed with inner
runs of whitespace collapsed and repeated headers joined by ','; the last line is the
`x-amz-content-sha256` value ("UNSIGNED-PAYLOAD" for presigned URLs).

Every signature comparison is constant-time; derived signing keys are cached per
(secret, date, region) in a small LRU.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import quote, quote_from_bytes, unquote_plus, unquote_to_bytes

from s3free.appkeys import AuthResult
from s3free.appkeys import Credentials as Credentials  # re-exported: callers sign with it
from s3free.s3.auth.common import (
    ISO,
    MAX_PRESIGN_EXPIRES,
    MAX_SKEW,
    SIGNATURE_MISMATCH,
    UNSIGNED_PAYLOAD,
    V4_QUERY,
    Lookup,
    check_skew,
    lookup_key,
    mechanism,
    no_valid_date,
    parse_amz_date,
    parse_http_date,
    utc,
)
from s3free.s3.errors import S3Error
from s3free.s3.numbers import parse_uint

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_STREAMING_ECDSA = (
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
)
PAYLOAD_LITERALS = frozenset(
    (UNSIGNED_PAYLOAD, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)
)

_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_DATE8 = re.compile(r"[0-9]{8}")
_SAFE_QUERY = "-_.~"  # RFC 3986 unreserved besides letters and digits (quote never escapes those)
_SAFE_PATH = "-_.~/"

_CREDENTIAL_FORM = 'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
_HEADER_MALFORMED = "The authorization header is malformed; "
_QUERY_MALFORMED = "Error parsing the X-Amz-Credential parameter; "
_SIGV4_ONLY = (
    "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
)
_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)


# ---------------------------------------------------------------------------------------------
# Primitives


@lru_cache(maxsize=256)
def signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"),
    cached per (secret, date, region, service): one derivation per key and day, not per request."""
    k = hmac.digest(("AWS4" + secret_key).encode(), date.encode(), "sha256")
    k = hmac.digest(k, region.encode(), "sha256")
    k = hmac.digest(k, service.encode(), "sha256")
    return hmac.digest(k, TERMINATOR.encode(), "sha256")


def sign(key: bytes, string_to_sign: str) -> str:
    """The lowercase hex HMAC-SHA256 of a string to sign."""
    return hmac.new(key, string_to_sign.encode("utf-8", "surrogateescape"), "sha256").hexdigest()


def signatures_equal(expected: str, provided: str) -> bool:
    """Constant-time comparison of two hex signatures (case-insensitive)."""
    return hmac.compare_digest(
        expected.lower().encode("ascii"), provided.lower().encode("ascii", "replace")
    )


def chunk_string_to_sign(
    amz_date: str, scope: str, previous_signature: str, chunk_sha256_hex: str
) -> str:
    """String to sign of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)."""
    return (
        f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous_signature}\n"
        f"{EMPTY_SHA256}\n{chunk_sha256_hex}"
    )


def trailer_string_to_sign(
    amz_date: str, scope: str, previous_signature: str, trailer_sha256_hex: str
) -> str:
    """String to sign of the trailing headers (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER);
    the hash is over the trailers canonicalised as "name:value\\n" each."""
    return (
        f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous_signature}\n{trailer_sha256_hex}"
    )


def uri_encode_path(raw_path: str) -> str:
    """The canonical URI of a request path as received on the wire (percent-encoded): decode it,
    then URI-encode every byte except unreserved characters and '/'. No normalisation."""
    if not raw_path:
        return "/"
    decoded = unquote_to_bytes(raw_path.encode("utf-8", "surrogateescape"))
    return quote_from_bytes(decoded, safe=_SAFE_PATH)


def _encode_query_part(s: str) -> str:
    return quote(s, safe=_SAFE_QUERY, encoding="utf-8", errors="surrogateescape")


def canonical_query(query: list[tuple[str, str]], *, skip: str | None = None) -> str:
    """Every (name, value) pair URI-encoded (including '/'), sorted by name then value."""
    pairs = sorted((_encode_query_part(k), _encode_query_part(v)) for k, v in query if k != skip)
    return "&".join(f"{k}={v}" for k, v in pairs)


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs of a raw query string, in order, blank values kept, '+' read
    as a space as S3 (and aiohttp's request.query) does. Same result as
    list(request.query.items()) in aiohttp."""
    out: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        out.append((unquote_plus(name), unquote_plus(value)))
    return out


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [] if value is None else [value]


def _canonical_headers(headers: Mapping[str, str], signed: list[str]) -> str:
    lines = []
    for name in signed:
        value = ",".join(" ".join(v.split()) for v in _header_values(headers, name))
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def canonical_request(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload: str,
    *,
    skip_query: str | None = None,
) -> str:
    return "\n".join(
        (
            method.upper(),
            uri_encode_path(path),
            canonical_query(query, skip=skip_query),
            _canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload,
        )
    )


def string_to_sign(amz_date: str, scope: str, creq: str) -> str:
    digest = hashlib.sha256(creq.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def is_sha256_hex(value: str) -> bool:
    return bool(_HEX64.fullmatch(value))


# ---------------------------------------------------------------------------------------------
# Request authentication


@dataclass(frozen=True)
class _Scope:
    access_key: str
    date: str
    region: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{SERVICE}/{TERMINATOR}"


def _parse_credential(value: str, region: str, *, code: str, prefix: str) -> _Scope:
    parts = value.split("/")
    if len(parts) != 5 or not parts[0]:
        raise S3Error(code, f"{prefix}the Credential is mal-formed; {_CREDENTIAL_FORM}")
    access_key, date, cred_region, service, terminal = parts
    if not _DATE8.fullmatch(date):
        raise S3Error(
            code,
            f"{prefix}incorrect date format '{date}'. This date in the credential must be in "
            'the format "yyyyMMdd".',
        )
    if cred_region != region:
        raise S3Error(
            code,
            f"{prefix}the region '{cred_region}' is wrong; expecting '{region}'",
            Region=region,
        )
    if service != SERVICE:
        raise S3Error(
            code, f"{prefix}incorrect service '{service}'. This endpoint belongs to '{SERVICE}'."
        )
    if terminal != TERMINATOR:
        raise S3Error(
            code, f"{prefix}incorrect terminal '{terminal}'. This endpoint uses '{TERMINATOR}'."
        )
    return _Scope(access_key, date, cred_region)


def _parse_signed_headers(value: str, *, code: str, prefix: str) -> list[str]:
    names = value.split(";")
    if not value or any(not n or n != n.strip().lower() for n in names):
        raise S3Error(
            code, f"{prefix}SignedHeaders must be a ';'-separated list of lowercase header names."
        )
    return names


def _check_signed_headers(headers: Mapping[str, str], signed: list[str]) -> None:
    """S3 insists that host and every x-amz-* header sent are covered by the signature."""
    signed_set = set(signed)
    missing = sorted({k.lower() for k in headers if k.lower().startswith("x-amz-")} - signed_set)
    if "host" not in signed_set:
        missing.insert(0, "host")
    if missing:
        raise S3Error(
            "AccessDenied",
            "There were headers present in the request which were not signed",
            HeadersNotSigned=", ".join(missing),
        )


def _verify(expected: str, provided: str, access_key: str, sts: str, creq: str) -> None:
    if not signatures_equal(expected, provided):
        raise S3Error(
            "SignatureDoesNotMatch",
            SIGNATURE_MISMATCH,
            AWSAccessKeyId=access_key,
            StringToSign=sts,
            SignatureProvided=provided,
            CanonicalRequest=creq,
        )


def authenticate(
    *,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    lookup: Lookup,
    region: str,
    now: datetime | None = None,
) -> AuthResult:
    """Verify a request's SigV4 signature (Authorization header or presigned URL).

    `path`: the request path as received (percent-encoded, no query string: aiohttp's
    `request.raw_path.split("?")[0]`). `query`: decoded (name, value) pairs in wire order,
    blank values as "" (`list(request.query.items())` or `parse_query(raw_query)`).
    `headers`: case-insensitive mapping (a multidict gives repeated headers too).
    Returns who signed; anonymous requests (neither header nor presigned query) come back with
    `credentials=None` for the caller's policy to judge. Raises S3Error otherwise.
    """
    now = utc(now)
    how, names = mechanism(headers, query, V4_QUERY)
    if how == "header":
        authorization = headers["authorization"]
        return _header_auth(method, path, query, headers, authorization, lookup, region, now)
    if how == "query":
        return _query_auth(method, path, query, headers, lookup, region, now)
    if "Signature" in names and "AWSAccessKeyId" in names:
        raise S3Error("InvalidRequest", _SIGV4_ONLY)  # SigV2 presigned URL
    return AuthResult(
        credentials=None,
        payload=headers.get("x-amz-content-sha256") or UNSIGNED_PAYLOAD,
        presigned=False,
    )


def _parse_authorization(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm == "AWS":
        raise S3Error("InvalidRequest", _SIGV4_ONLY)
    if algorithm == "AWS4-ECDSA-P256-SHA256":
        raise S3Error("NotImplemented", "SigV4a (AWS4-ECDSA-P256-SHA256) signing is not supported.")
    if algorithm != ALGORITHM:
        raise S3Error(
            "InvalidArgument",
            "Unsupported Authorization Type",
            ArgumentName="Authorization",
            ArgumentValue=value,
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        name, eq, field = part.partition("=")
        name = name.strip()
        if not eq or name in fields:
            fields = {}
            break
        fields[name] = field.strip()
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f"{_HEADER_MALFORMED}the authorization header requires three components: "
            "Credential, SignedHeaders, and Signature.",
        )
    return fields


def _validate_payload(payload: str | None) -> str:
    if payload is None:
        raise S3Error(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256"
        )
    if payload in PAYLOAD_LITERALS:
        return payload
    if is_sha256_hex(payload):
        return payload.lower()
    if payload in _STREAMING_ECDSA:
        raise S3Error("NotImplemented", f"{payload} (SigV4a) payload signing is not supported.")
    raise S3Error(
        "InvalidArgument",
        "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, "
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
        ArgumentName="x-amz-content-sha256",
        ArgumentValue=payload,
    )


def _header_auth(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    authorization: str,
    lookup: Lookup,
    region: str,
    now: datetime,
) -> AuthResult:
    code = "AuthorizationHeaderMalformed"
    fields = _parse_authorization(authorization)
    scope = _parse_credential(fields["Credential"], region, code=code, prefix=_HEADER_MALFORMED)
    signed = _parse_signed_headers(fields["SignedHeaders"], code=code, prefix=_HEADER_MALFORMED)
    provided = fields["Signature"]
    raw_payload = headers.get("x-amz-content-sha256")
    payload = _validate_payload(raw_payload)

    creds = lookup_key(lookup, scope.access_key)

    amz_date_header = headers.get("x-amz-date")
    if amz_date_header is not None:
        amz_date = amz_date_header.strip()
        when = parse_amz_date(amz_date)
    else:
        when = parse_http_date(headers.get("date"))
        amz_date = when.strftime(_AMZ_DATE) if when is not None else ""
    if when is None:
        raise no_valid_date()
    if amz_date[:8] != scope.date:
        raise S3Error(
            code, f"{_HEADER_MALFORMED}Invalid credential date. Date is not the same as X-Amz-Date."
        )
    check_skew(now, when, amz_date)
    _check_signed_headers(headers, signed)

    # The canonical request's last line is the header as sent (a hex hash in any case).
    creq = canonical_request(method, path, query, headers, signed, raw_payload or "")
    sts = string_to_sign(amz_date, scope.scope, creq)
    key = signing_key(creds.secret_key, scope.date, scope.region)
    expected = sign(key, sts)
    _verify(expected, provided, scope.access_key, sts, creq)
    return AuthResult(
        credentials=creds,
        payload=payload,
        presigned=False,
        signing_key=key,
        seed_signature=expected,
        amz_date=amz_date,
        scope=scope.scope,
    )


def _query_auth(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    lookup: Lookup,
    region: str,
    now: datetime,
) -> AuthResult:
    code = "AuthorizationQueryParametersError"
    params: dict[str, str] = {}
    for name, value in query:
        if name in _QUERY_AUTH_PARAMS or name == "X-Amz-Content-Sha256":
            if name in params:
                raise S3Error(code, f"{name} must be given once.")
            params[name] = value
    if any(p not in params for p in _QUERY_AUTH_PARAMS):
        raise S3Error(
            code,
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters.",
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise S3Error(code, 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    scope = _parse_credential(
        params["X-Amz-Credential"], region, code=code, prefix=_QUERY_MALFORMED
    )
    when = parse_amz_date(params["X-Amz-Date"])
    if when is None:
        raise S3Error(
            code, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
        )
    expires_s = params["X-Amz-Expires"]
    if expires_s.startswith("-") and parse_uint(expires_s[1:], saturate=True) is not None:
        raise S3Error(code, "X-Amz-Expires must be non-negative")
    expires = parse_uint(expires_s, saturate=True)
    if expires is None:
        raise S3Error(code, "X-Amz-Expires should be a number (ASCII digits)")
    if expires > MAX_PRESIGN_EXPIRES:
        raise S3Error(
            code,
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}",
        )
    signed = _parse_signed_headers(params["X-Amz-SignedHeaders"], code=code, prefix="")
    amz_date = params["X-Amz-Date"]
    if amz_date[:8] != scope.date:
        raise S3Error(
            code, f"{_QUERY_MALFORMED}Invalid credential date. Date is not the same as X-Amz-Date."
        )

    creds = lookup_key(lookup, scope.access_key)

    if when - now > MAX_SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet")
    if now > when + timedelta(seconds=expires):
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            fields={"X-Amz-Expires": expires_s},
            Expires=(when + timedelta(seconds=expires)).strftime(ISO),
            ServerTime=now.strftime(ISO),
        )
    _check_signed_headers(headers, signed)

    payload = params.get("X-Amz-Content-Sha256", UNSIGNED_PAYLOAD)
    creq = canonical_request(
        method, path, query, headers, signed, payload, skip_query="X-Amz-Signature"
    )
    sts = string_to_sign(amz_date, scope.scope, creq)
    key = signing_key(creds.secret_key, scope.date, scope.region)
    expected = sign(key, sts)
    _verify(expected, params["X-Amz-Signature"], scope.access_key, sts, creq)
    return AuthResult(
        credentials=creds,
        payload=_validate_payload(payload),
        presigned=True,
        signing_key=key,
        seed_signature=expected,
        amz_date=amz_date,
        scope=scope.scope,
    )


# ---------------------------------------------------------------------------------------------
# Body verification


async def verify_payload_sha256(
    stream: AsyncIterable[bytes], expected_hex: str
) -> AsyncIterator[bytes]:
    """Pass the body through, hashing it; when it ends, raise XAmzContentSHA256Mismatch unless
    it hashes to `expected_hex`. The error comes before the consumer sees the end of the
    stream, so a writer that only commits at end-of-stream never commits a bad body."""
    h = hashlib.sha256()
    async for chunk in stream:
        h.update(chunk)
        yield chunk
    got = h.hexdigest()
    if not hmac.compare_digest(got.encode(), expected_hex.lower().encode("ascii", "replace")):
        raise S3Error(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ClientComputedContentSHA256=expected_hex,
            S3ComputedContentSHA256=got,
        )


# ---------------------------------------------------------------------------------------------
# Signing (for our own clients: the admin CLI and the load benchmark)


def sign_headers(
    *,
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    access_key: str,
    secret_key: str,
    region: str,
    payload: str = UNSIGNED_PAYLOAD,
    extra: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers (Host, x-amz-date, x-amz-content-sha256, Authorization, and `extra`, all
    signed) that make a SigV4 header-authenticated request; `path` is percent-encoded as sent."""
    moment = utc(now)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    headers = {k.lower(): v for k, v in (extra or {}).items()}
    headers.update({"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date})
    signed = sorted(headers)
    creq = canonical_request(method, path, query, headers, signed, payload)
    scope = f"{amz_date[:8]}/{region}/{SERVICE}/{TERMINATOR}"
    signature = sign(
        signing_key(secret_key, amz_date[:8], region), string_to_sign(amz_date, scope, creq)
    )
    headers["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return headers
