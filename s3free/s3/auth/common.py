"""What SigV2 and SigV4 verification share: which mechanism a request uses (header or query,
never both), the credential lookup, the request-time checks and their S3 errors."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from s3free.appkeys import Credentials
from s3free.s3.errors import S3Error

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # 604800 s: one week
ISO = "%Y-%m-%dT%H:%M:%SZ"
V4_QUERY = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)
ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
    "Signature query string parameter or the Authorization header should be specified"
)

Lookup = Callable[[str], Credentials | None]
"""Access key id -> its credentials, or None when the key is unknown."""

Mechanism = Literal["header", "query", "none"]


def mechanism(
    headers: Mapping[str, str], query: list[tuple[str, str]], query_signs: Iterable[str]
) -> tuple[Mechanism, set[str]]:
    """Whether the request is signed in the Authorization header, in the query (any of
    `query_signs` present) or not at all, and the query's parameter names. Both at once is
    InvalidArgument, as S3 answers."""
    authorization = headers.get("authorization")
    names = {k for k, _ in query}
    in_query = any(p in names for p in query_signs)
    if authorization is not None:
        if in_query:
            raise S3Error(
                "InvalidArgument",
                ONE_MECHANISM,
                ArgumentName="Authorization",
                ArgumentValue=authorization,
            )
        return "header", names
    return ("query" if in_query else "none"), names


def lookup_key(lookup: Lookup, access_key: str) -> Credentials:
    """The signer's credentials; InvalidAccessKeyId when the key is unknown."""
    creds = lookup(access_key)
    if creds is None:
        raise S3Error(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            AWSAccessKeyId=access_key,
        )
    return creds


def utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


_AMZ_DATE_RE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")


def parse_amz_date(value: str) -> datetime | None:
    """An ISO 8601 basic timestamp (yyyyMMdd'T'HHmmss'Z'), exactly as AWS requires it; parsed
    by hand because strptime costs a small GET several percent of its time."""
    match = _AMZ_DATE_RE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # a month 13, say
        return None


def parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return utc(when)


def no_valid_date() -> S3Error:
    return S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")


def check_skew(now: datetime, when: datetime, request_time: str) -> None:
    """A header-signed request must be within MAX_SKEW of the server's clock."""
    if abs(now - when) > MAX_SKEW:
        raise S3Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
            RequestTime=request_time,
            ServerTime=now.strftime(ISO),
            MaxAllowedSkewMilliseconds=str(int(MAX_SKEW.total_seconds() * 1000)),
        )
