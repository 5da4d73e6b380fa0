"""AWS Signature Version 2 verification for S3 (HMAC-SHA1), beside `sigv4.py` (what both
share: `common.py`).

Two forms, as in AWS's "Signing and Authenticating REST Requests":

- header: `Authorization: AWS <AccessKeyId>:<Base64(HMAC-SHA1(secret, StringToSign))>`;
- query ("presigned URL", what boto3's `generate_presigned_url` makes by default for
  us-east-1): `?AWSAccessKeyId=...&Expires=<epoch seconds>&Signature=...`.

    StringToSign = Method \\n Content-MD5 \\n Content-Type \\n Date \\n
                   CanonicalizedAmzHeaders CanonicalizedResource

- Date: the `Date` header; when `x-amz-date` is sent it is the request time and the Date
  position is empty (AWS's rule; s3cmd, boto 2, Ceph RGW) -- the `Date` header's value is
  accepted there too when one is sent (botocore, MinIO). For query auth it is `Expires`.
- CanonicalizedAmzHeaders: every `x-amz-*` header, name lowercased, values stripped and joined
  by ',', sorted by name, one "name:value\\n" each. Query auth adds the `x-amz-*` query
  parameters (botocore's presigner moves such headers into the query).
- CanonicalizedResource: ["/" + bucket when virtual-hosted] + the request path exactly as sent
  (not decoded or re-encoded) + "?" + the sub-resource parameters present (`SUBRESOURCES`),
  sorted by name, as `name` or `name=value` with the value decoded.

Header auth requires a Date/x-amz-date within 15 minutes of the server's clock; query auth
requires `Expires` not passed. The payload is never signed ("UNSIGNED-PAYLOAD"; Content-MD5 is
what protects a body). Signatures are compared in constant time.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from s3free.appkeys import AuthResult
from s3free.s3.auth.common import (
    ISO,
    MAX_PRESIGN_EXPIRES,
    MAX_SKEW,
    ONE_MECHANISM,
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

ALGORITHM_V2 = "AWS"

# Query parameters that name a sub-resource and so are part of the CanonicalizedResource: the
# list in AWS's SigV2 documentation, botocore's HmacV1Auth.QSAOfInterest and minio-go's
# resourceList (a client signs what its list holds; a parameter left out is simply unsigned).
SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete", "encryption",
        "inventory", "legal-hold", "lifecycle", "location", "logging", "metrics",
        "notification", "object-lock", "partNumber", "policy", "replication", "requestPayment",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
        "response-content-language", "response-content-type", "response-expires", "restore",
        "retention", "select", "select-type", "storageClass", "tagging", "torrent", "uploadId",
        "uploads", "versionId", "versioning", "versions", "website",
    }
)  # fmt: skip

_QUERY_PARAMS = ("AWSAccessKeyId", "Signature", "Expires")
_QUERY_REQUIRED = (
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"
)


def is_v2(headers: Mapping[str, str], query: list[tuple[str, str]]) -> bool:
    """Does the request use SigV2 (an `AWS ` Authorization header, or a Signature or
    AWSAccessKeyId query parameter)?"""
    authorization = headers.get("authorization")
    if authorization is not None:
        return authorization.startswith(ALGORITHM_V2 + " ")
    return any(name in ("Signature", "AWSAccessKeyId") for name, _ in query)


def sign_v2(secret_key: str, string_to_sign: str) -> str:
    """Base64 of HMAC-SHA1(secret, UTF-8 StringToSign)."""
    digest = hmac.digest(
        secret_key.encode("utf-8"), string_to_sign.encode("utf-8", "surrogateescape"), "sha1"
    )
    return base64.b64encode(digest).decode("ascii")


def canonical_resource(path: str, query: list[tuple[str, str]], bucket: str | None = None) -> str:
    """[/bucket] + raw path + ?sub-resources (sorted by name; `name` or `name=value`)."""
    resource = (f"/{bucket}" if bucket else "") + (path or "/")
    subs = sorted(((k, v) for k, v in query if k in SUBRESOURCES), key=lambda kv: kv[0])
    if subs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
    return resource


def _resources(path: str, query: list[tuple[str, str]], bucket: str | None) -> list[str]:
    """The CanonicalizedResource, and for a path-style bucket request ("/bucket") also
    "/bucket/": botocore signs bucket operations as if virtual-hosted ("/bucket/") whatever
    the addressing style it sends. Both name the same bucket and operation."""
    resources = [canonical_resource(path, query, bucket)]
    if not bucket and path.count("/") == 1 and len(path) > 1:
        resources.append(canonical_resource(path + "/", query))
    return resources


def canonical_amz_headers(
    headers: Mapping[str, str], extra: list[tuple[str, str]] | None = None
) -> str:
    """Every x-amz-* header (and `extra` pair): "name:v1,v2\\n", sorted by lowercased name."""
    grouped: dict[str, list[str]] = {}
    for name, value in [*headers.items(), *(extra or [])]:  # a multidict: every value
        lname = name.lower()
        if lname.startswith("x-amz-"):
            grouped.setdefault(lname, []).append(value.strip())
    return "".join(f"{name}:{','.join(grouped[name])}\n" for name in sorted(grouped))


def string_to_sign_v2(
    method: str,
    content_md5: str,
    content_type: str,
    date: str,
    amz_headers: str,
    resource: str,
) -> str:
    return f"{method.upper()}\n{content_md5}\n{content_type}\n{date}\n{amz_headers}{resource}"


def authenticate_v2(
    *,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    lookup: Lookup,
    now: datetime | None = None,
    bucket: str | None = None,
) -> AuthResult | None:
    """Verify a SigV2 request; None when the request is not SigV2 (for `sigv4.authenticate`).

    `path`: the request path as received (percent-encoded, no query string). `query`: decoded
    (name, value) pairs. `headers`: case-insensitive mapping. `bucket`: the bucket named by
    the Host header of a virtual-hosted-style request (it heads the CanonicalizedResource).
    Raises S3Error: InvalidArgument (malformed header, two mechanisms), AccessDenied (missing
    query parameters, no valid date, expired URL), InvalidAccessKeyId, RequestTimeTooSkewed,
    SignatureDoesNotMatch.
    """
    if not is_v2(headers, query):
        return None
    now = utc(now)
    how, names = mechanism(headers, query, (*V4_QUERY, "Signature", "AWSAccessKeyId"))
    if how == "header":
        authorization = headers["authorization"]
        return _header_auth(method, path, query, headers, authorization, lookup, now, bucket)
    if any(p in names for p in V4_QUERY):
        raise S3Error("InvalidArgument", ONE_MECHANISM, ArgumentName="Signature", ArgumentValue="")
    return _query_auth(method, path, query, headers, lookup, now, bucket)


def _header_auth(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    authorization: str,
    lookup: Lookup,
    now: datetime,
    bucket: str | None,
) -> AuthResult:
    access_key, colon, provided = authorization[len(ALGORITHM_V2) + 1 :].strip().rpartition(":")
    if not colon or not access_key or not provided:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            ArgumentName="Authorization",
            ArgumentValue=authorization,
        )
    creds = lookup_key(lookup, access_key)

    amz_date = headers.get("x-amz-date")
    date_header = headers.get("date")
    if amz_date is not None:
        when = parse_http_date(amz_date.strip()) or parse_amz_date(amz_date.strip())
    else:
        when = parse_http_date(date_header)
    if when is None:
        raise no_valid_date()
    check_skew(now, when, amz_date if amz_date is not None else (date_header or ""))

    # With x-amz-date the Date position is empty (AWS); botocore and MinIO put the Date
    # header's value there. Either way x-amz-date, the time we checked, is signed.
    if amz_date is None:
        dates = [date_header or ""]
    else:
        dates = [""] if date_header is None else ["", date_header.strip()]
    amz = canonical_amz_headers(headers)
    md5, ctype = headers.get("content-md5", "").strip(), headers.get("content-type", "").strip()
    candidates = [
        string_to_sign_v2(method, md5, ctype, d, amz, r)
        for r in _resources(path, query, bucket)
        for d in dates
    ]
    _verify(creds.secret_key, candidates, provided, access_key)
    return AuthResult(credentials=creds, payload=UNSIGNED_PAYLOAD, presigned=False)


def _query_auth(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    lookup: Lookup,
    now: datetime,
    bucket: str | None,
) -> AuthResult:
    params: dict[str, str] = {}
    for name, value in query:
        if name in _QUERY_PARAMS:
            if name in params:
                raise S3Error("AccessDenied", _QUERY_REQUIRED)
            params[name] = value
    if any(not params.get(p) for p in _QUERY_PARAMS):
        raise S3Error("AccessDenied", _QUERY_REQUIRED)
    expires_s = params["Expires"]
    expires_epoch = parse_uint(expires_s, saturate=True)
    if expires_epoch is None:
        raise S3Error(
            "AccessDenied", f"Invalid date (should be seconds since epoch): {expires_s[:40]}"
        )
    creds = lookup_key(lookup, params["AWSAccessKeyId"])
    try:
        expires = datetime.fromtimestamp(expires_epoch, UTC)
    except (OverflowError, OSError, ValueError):
        expires = datetime.max.replace(tzinfo=UTC)
    if now > expires:
        raise S3Error(
            "AccessDenied",
            "Request has expired",
            Expires=expires.strftime(ISO),
            ServerTime=now.strftime(ISO),
        )
    # SigV2 names no signing time, so the SigV4 cap (a week) is measured from now, with the
    # clock skew allowed: a URL good until year 9999 is a credential that never expires.
    if expires - now > timedelta(seconds=MAX_PRESIGN_EXPIRES) + MAX_SKEW:
        raise S3Error(
            "AuthorizationQueryParametersError",
            f"Expires must be at most {MAX_PRESIGN_EXPIRES} seconds (a week) from now, as for "
            "SigV4 presigned URLs; presign the URL again with a shorter expiry",
            Expires=expires_s[:40],
            ServerTime=now.strftime(ISO),
        )
    # botocore's presigner moves x-amz-*, Content-MD5 and Content-Type headers into the query.
    from_query = {k.lower(): v for k, v in query if k.lower() in ("content-md5", "content-type")}
    md5 = headers.get("content-md5", from_query.get("content-md5", "")).strip()
    ctype = headers.get("content-type", from_query.get("content-type", "")).strip()
    amz = canonical_amz_headers(
        headers, [(k, v) for k, v in query if k.lower().startswith("x-amz-")]
    )
    candidates = [
        string_to_sign_v2(method, md5, ctype, expires_s, amz, r)
        for r in _resources(path, query, bucket)
    ]
    # Base64 never holds a space: a '+' that reached us unescaped was read as one.
    provided = params["Signature"].replace(" ", "+")
    _verify(creds.secret_key, candidates, provided, params["AWSAccessKeyId"])
    return AuthResult(credentials=creds, payload=UNSIGNED_PAYLOAD, presigned=True)


def _verify(secret_key: str, candidates: list[str], provided: str, access_key: str) -> None:
    given = provided.strip().encode("ascii", "replace")
    ok = False
    for sts in candidates:  # every candidate is computed and compared: no early exit
        ok |= hmac.compare_digest(sign_v2(secret_key, sts).encode("ascii"), given)
    if not ok:
        raise S3Error(
            "SignatureDoesNotMatch",
            SIGNATURE_MISMATCH,
            AWSAccessKeyId=access_key,
            StringToSign=candidates[0],
            SignatureProvided=provided,
        )
