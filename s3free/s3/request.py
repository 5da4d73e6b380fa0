"""Parse, then dispatch: an HTTP request becomes a small frozen description of the S3
operation (bucket, key, operation name, query) before any handler runs.

Addressing: path style (`/bucket/key`) always; virtual-hosted style (`bucket.DOMAIN/key`) when a
domain is configured. Operation names are the S3 API's (PutObject, ListObjectsV2, ...).
Subresources we do not implement map to NotImplemented, never to a guess.
"""

from __future__ import annotations

from urllib.parse import unquote

from multidict import MultiDict, MultiDictProxy, MultiMapping

from s3free.appkeys import S3Request
from s3free.s3.errors import S3Error

ADMIN_PREFIX = "/_s3free/"

# Query names that select a subresource (an operation) in the S3 API. A request carrying one we
# do not handle is answered NotImplemented.
SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
        "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging",
        "metadata-table", "metrics", "notification", "object-lock", "ownershipControls", "policy",
        "policyStatus", "publicAccessBlock", "renameObject", "replication", "requestPayment",
        "restore", "retention", "select", "session", "tagging", "torrent", "uploadId", "uploads",
        "versioning", "versions", "website",
    }
)  # fmt: skip

_BUCKET_OPS = {
    ("GET", ""): "ListObjects",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "acl"): "GetBucketAcl",
    ("GET", "uploads"): "ListMultipartUploads",
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "versioning"): "GetBucketVersioning",
    ("HEAD", ""): "HeadBucket",
    ("PUT", ""): "CreateBucket",
    ("PUT", "acl"): "PutBucketAcl",
    ("GET", "tagging"): "GetBucketTagging",
    ("PUT", "tagging"): "PutBucketTagging",
    ("DELETE", "tagging"): "DeleteBucketTagging",
    ("DELETE", ""): "DeleteBucket",
    ("POST", "delete"): "DeleteObjects",
}

_OBJECT_OPS = {
    ("GET", ""): "GetObject",
    ("GET", "acl"): "GetObjectAcl",
    ("GET", "uploadId"): "ListParts",
    ("HEAD", ""): "HeadObject",
    ("PUT", ""): "PutObject",
    ("PUT", "acl"): "PutObjectAcl",
    ("GET", "tagging"): "GetObjectTagging",
    ("PUT", "tagging"): "PutObjectTagging",
    ("DELETE", "tagging"): "DeleteObjectTagging",
    ("PUT", "uploadId"): "UploadPart",
    ("DELETE", ""): "DeleteObject",
    ("DELETE", "uploadId"): "AbortMultipartUpload",
    ("POST", "uploads"): "CreateMultipartUpload",
    ("POST", "uploadId"): "CompleteMultipartUpload",
}


def split_host_bucket(host: str, domain: str | None) -> str | None:
    """The bucket named by a virtual-hosted-style Host header, if any."""
    if not domain or not host:
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower()
    suffix = "." + domain.lower()
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def is_admin_path(path: str, host: str, domain: str | None) -> bool:
    """Whether a request is for s3free's own endpoints (admin API, metrics, health): a path
    under /_s3free/ on the service host. On a bucket's virtual host the same path is a key of
    that bucket ("_s3free/..." is a valid key; "_s3free" can never be a bucket)."""
    return path.startswith(ADMIN_PREFIX) and split_host_bucket(host, domain) is None


def parse(
    method: str,
    raw_path: str,
    query: MultiMapping[str],
    host: str,
    *,
    domain: str | None,
    copy_source: bool,
) -> S3Request:
    """Identify the operation; S3Error NotImplemented / MethodNotAllowed when we do not do it."""
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI.", status=400) from None
    bucket = split_host_bucket(host, domain)
    if bucket is not None:
        key = path[1:] if path.startswith("/") else path
    else:
        trimmed = path[1:] if path.startswith("/") else path
        bucket, _, key = trimmed.partition("/")
    proxy = query if isinstance(query, MultiDictProxy) else MultiDictProxy(MultiDict(query))
    subs = [name for name in proxy if name in SUBRESOURCES]
    sub = _pick_subresource(subs)
    if not bucket:
        if method == "GET" and not sub:
            return S3Request(method, "ListBuckets", "", "", proxy, raw_path)
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on the service")
    table = _OBJECT_OPS if key else _BUCKET_OPS
    op = table.get((method, sub))
    if op is None:
        if sub:
            raise S3Error(
                "NotImplemented", f"s3free does not implement the {sub!r} subresource for {method}"
            )
        if method == "POST" and not key:
            raise S3Error(
                "NotImplemented",
                "s3free does not implement browser POST uploads (HTML forms with a POST "
                "policy); use PutObject or a presigned PUT URL",
            )
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on this resource")
    if op == "ListObjects" and proxy.get("list-type") == "2":
        op = "ListObjectsV2"
    elif op == "PutObject" and copy_source:
        op = "CopyObject"
    elif op == "UploadPart" and copy_source:
        op = "UploadPartCopy"
    return S3Request(method, op, bucket, key, proxy, raw_path)


def _pick_subresource(subs: list[str]) -> str:
    if not subs:
        return ""
    if len(subs) == 1:
        return subs[0]
    # uploadId goes with partNumber (not a subresource); any other pair is not an operation
    # we know.
    raise S3Error("NotImplemented", f"s3free does not implement the subresources {subs}")
