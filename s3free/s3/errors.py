"""S3 errors: one class for every S3 error code we answer, and the one table that turns the
engine's typed errors into them.

Every error response is the XML body S3 sends (`<Error><Code>…<Message>…<Resource>…
<RequestId>…`), with the right HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping

from s3free import errors as storage

_STATUS: dict[str, int] = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "ExpiredToken": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidObjectName": 400,
    "InvalidLocationConstraint": 400,
    "InvalidPart": 400,
    "InvalidPartNumber": 416,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "KeyTooLongError": 400,
    "MalformedXML": 400,
    "MaxMessageLengthExceeded": 400,
    "MetadataTooLarge": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "MissingSecurityHeader": 400,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchTagSet": 404,
    "NoSuchUpload": 404,
    "NoSuchVersion": 404,
    "InvalidStorageClass": 400,
    "InvalidTag": 400,
    "InvalidURI": 400,
    "UnexpectedContent": 400,
    "NotImplemented": 501,
    "NotModified": 304,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
    "XS3freeDataLost": 410,
    "XS3freeDataUnavailable": 503,
    "XS3freeInsufficientWriteQuorum": 503,
    # 507 Insufficient Storage (WebDAV, as MinIO's XMinioStorageFull): no SDK retries it.
    "XS3freeStorageFull": 507,
}


class S3Error(Exception):
    """An error answered to the client as S3 XML."""

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        fields: Mapping[str, str] | None = None,
        **extra: str,
    ):
        """`extra` (and `fields`, for names that are not identifiers, such as
        "header:Retry-After"): further elements of the <Error> body, or response headers."""
        super().__init__(message or code)
        if code not in _STATUS and status is None:
            raise ValueError(f"unknown S3 error code {code}")
        self.code = code
        self.message = message or code
        self.status = status if status is not None else _STATUS[code]
        self.extra = {**(fields or {}), **extra}  # e.g. BucketName


_FROM_STORAGE: list[tuple[type[storage.StorageError], str]] = [
    (storage.InvalidBucketName, "InvalidBucketName"),
    (storage.KeyTooLong, "KeyTooLongError"),
    (storage.InvalidObjectKey, "InvalidArgument"),
    (storage.InvalidArgument, "InvalidArgument"),
    (storage.NoSuchBucket, "NoSuchBucket"),
    (storage.BucketAlreadyExists, "BucketAlreadyExists"),
    (storage.BucketNotEmpty, "BucketNotEmpty"),
    (storage.NoSuchKey, "NoSuchKey"),
    (storage.NoSuchUpload, "NoSuchUpload"),
    (storage.InvalidPart, "InvalidPart"),
    (storage.InvalidPartOrder, "InvalidPartOrder"),
    (storage.EntityTooSmall, "EntityTooSmall"),
    (storage.InvalidRange, "InvalidRange"),
    (storage.InvalidPartNumber, "InvalidPartNumber"),
    (storage.PreconditionFailed, "PreconditionFailed"),
    (storage.IncompleteBody, "IncompleteBody"),
    (storage.BadDigest, "BadDigest"),
    (storage.StorageFull, "XS3freeStorageFull"),  # before its base class below
    (storage.InsufficientWriteQuorum, "XS3freeInsufficientWriteQuorum"),
    (storage.DiskSetError, "InternalError"),
]


# Seconds a client is told to wait before retrying a read that needs an offline disk back.
RETRY_AFTER_S = 30


def data_unavailable(exc: storage.DataUnavailable) -> S3Error:
    """A read that cannot be served: 503 with Retry-After (every SDK retries 503) while
    shards on offline disks could make it readable again; 410 Gone when the shards are known
    lost (corrupt or missing on online disks). 410 because no SDK retries it (botocore,
    awscli and the other SDKs retry 500/502/503/504, 429 and throttling codes), it says the
    condition is expected to last, and, unlike 501 or 507, it does not claim something false.
    no-store keeps caches from holding on to it after an operator restores the shards."""
    if exc.may_come_back:
        return S3Error(
            "XS3freeDataUnavailable", str(exc), fields={"header:Retry-After": str(RETRY_AFTER_S)}
        )
    return S3Error("XS3freeDataLost", str(exc), fields={"header:Cache-Control": "no-store"})


def from_storage(exc: storage.StorageError) -> S3Error:
    """The S3 error for an engine error: the one place the two trees meet."""
    if isinstance(exc, storage.DataUnavailable):
        return data_unavailable(exc)
    for kind, code in _FROM_STORAGE:
        if isinstance(exc, kind):
            return S3Error(code, str(exc))
    return S3Error("InternalError", str(exc))
