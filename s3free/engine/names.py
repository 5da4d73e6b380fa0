"""S3 naming rules for buckets and keys, enforced by the engine so every caller gets them."""

from __future__ import annotations

import re

from s3free.errors import InvalidBucketName, InvalidObjectKey, KeyTooLong

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
MAX_KEY_BYTES = 1024


def validate_bucket_name(name: str) -> None:
    """AWS's general-purpose bucket rules: 3-63 of [a-z0-9.-], letter or digit at both ends,
    no "..", no ".-"/"-.", not an IPv4 address, none of the reserved prefixes and suffixes."""
    if not isinstance(name, str) or not _BUCKET.fullmatch(name):
        raise InvalidBucketName(
            f"bucket name {name!r} must be 3-63 characters of a-z, 0-9, '.', '-', "
            "starting and ending with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidBucketName(f"bucket name {name!r} has adjacent periods or period-hyphen")
    if _IPV4.fullmatch(name):
        raise InvalidBucketName(f"bucket name {name!r} must not look like an IP address")
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(
        ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
    ):
        raise InvalidBucketName(f"bucket name {name!r} uses a reserved prefix or suffix")


def validate_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidObjectKey("object key must not be empty")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidObjectKey("object key must be valid UTF-8") from None
    if len(raw) > MAX_KEY_BYTES:
        raise KeyTooLong(f"object key is {len(raw)} bytes; the limit is {MAX_KEY_BYTES}")
    if "\x00" in key:
        raise InvalidObjectKey("object key must not contain NUL")
