"""Server-side encryption headers, which s3free does not implement: never ignored.

A request that asks for encryption gets NotImplemented; a request that sends only some of the
headers of one scheme (a customer key without its algorithm, a KMS key id without
`aws:kms`) gets AWS's 400 InvalidArgument; a read that sends customer-key headers for an
object that is not encrypted (none is) gets AWS's 400 InvalidRequest. Storing or serving the
object as if the headers were not there would silently drop what the client asked for.
"""

from __future__ import annotations

from multidict import CIMultiDictProxy

from s3free.s3.errors import S3Error

PREFIX = "x-amz-server-side-encryption"
SSE = PREFIX
SSE_C_ALGORITHM = f"{PREFIX}-customer-algorithm"
SSE_C_PARTS = (f"{PREFIX}-customer-key", f"{PREFIX}-customer-key-md5")
SSE_KMS_PARTS = (f"{PREFIX}-aws-kms-key-id", f"{PREFIX}-context", f"{PREFIX}-bucket-key-enabled")


def _present(headers: CIMultiDictProxy[str]) -> set[str]:
    return {name.lower() for name in headers if name.lower().startswith(PREFIX)}


def refuse_on_write(headers: CIMultiDictProxy[str]) -> None:
    """For PUT, copy and CreateMultipartUpload."""
    sent = _present(headers)
    if not sent:
        return
    if sent & set(SSE_C_PARTS) and SSE_C_ALGORITHM not in sent:
        raise S3Error(
            "InvalidArgument",
            "Requests specifying Server Side Encryption with Customer provided keys must provide"
            " a valid encryption algorithm.",
            fields={"ArgumentName": SSE_C_ALGORITHM},
        )
    if sent & set(SSE_KMS_PARTS) and headers.get(SSE, "").lower() != "aws:kms":
        raise S3Error(
            "InvalidArgument",
            f"Server Side Encryption with AWS KMS managed key requires HTTP header {SSE} : aws:kms",
            fields={"ArgumentName": SSE},
        )
    raise S3Error(
        "NotImplemented",
        f"server-side encryption ({', '.join(sorted(sent))}) is not supported by s3free",
    )


def refuse_on_read(headers: CIMultiDictProxy[str]) -> None:
    """For GET and HEAD: no object is stored encrypted, so customer-key headers never apply."""
    # Three lookups, not a scan of every header: this runs on every GET and HEAD.
    if any(name in headers for name in (SSE_C_ALGORITHM, *SSE_C_PARTS)):
        raise S3Error(
            "InvalidRequest", "The encryption parameters are not applicable to this object."
        )
