"""Who may do what: the whole access model in one place.

- Anonymous requests are denied, except reads the canned ACL public-read opens: GET/HEAD of an
  object whose ACL is public-read, and listing (or HEAD) of a bucket whose ACL is public-read.
- The root user may do everything.
- Any other user may create buckets; a bucket belongs to its creator, and only the owner (or
  root) may use it. Other users get AccessDenied, except for the public-read reads above.
"""

from __future__ import annotations

from s3free.appkeys import Ctx
from s3free.engine.types import BucketInfo, ObjectInfo
from s3free.s3.errors import S3Error

PUBLIC_READ = "public-read"
ACL_HEADER = "x-amz-acl"
_OBJECT_READS = {"GetObject", "HeadObject"}
# READ on a bucket lists its objects, versions and multipart uploads (as S3 maps the ACL).
_BUCKET_READS = {
    "ListObjects",
    "ListObjectsV2",
    "HeadBucket",
    "ListObjectVersions",
    "ListMultipartUploads",
}
_NEEDS_NO_BUCKET = {"ListBuckets", "CreateBucket"}


def denied(message: str = "Access Denied") -> S3Error:
    return S3Error("AccessDenied", message)


def may_use(ctx: Ctx, bucket: BucketInfo) -> bool:
    """Full access to the bucket: its owner or root."""
    return ctx.user is not None and (ctx.user.is_root or ctx.user.id == bucket.owner)


async def check(ctx: Ctx) -> None:
    """Raise AccessDenied unless the request may proceed. Object reads that only a public-read
    object ACL would allow are marked (ctx.public_object_only) for the handler, which
    has the object in hand and must call check_object_read before it looks at anything else
    about the object (version, conditions, range), so none of them tells a caller without
    rights whether the object exists, how large it is or what its ETag is."""
    op = ctx.s3.op
    if op in _NEEDS_NO_BUCKET:
        if ctx.user is None:
            raise denied("Anonymous requests are not allowed; sign the request")
        return
    bucket = await ctx.store.head_bucket(ctx.s3.bucket)
    ctx.bucket_info = bucket
    if may_use(ctx, bucket):
        return
    if op in _OBJECT_READS:
        if bucket.acl != PUBLIC_READ and not await _exists(ctx, ctx.s3.bucket, ctx.s3.key):
            # Without list rights a missing key must look like a private one (403, not 404),
            # or anyone could probe the bucket for key names.
            raise denied()
        ctx.public_object_only = True
        return
    if op in _BUCKET_READS and bucket.acl == PUBLIC_READ:
        return
    raise denied()


async def _exists(ctx: Ctx, bucket: str, key: str) -> bool:
    """Whether the key exists, from the listing index (no manifest is read)."""
    page = await ctx.store.list_objects(bucket, prefix=key, max_keys=1)
    return bool(page.objects) and page.objects[0].key == key


def check_object_read(ctx: Ctx, info: ObjectInfo) -> None:
    """For a read the bucket rights did not cover: only a public-read object may be read."""
    if ctx.public_object_only and info.http_headers.get(ACL_HEADER) != PUBLIC_READ:
        raise denied()


async def check_source_bucket(ctx: Ctx, bucket: str, key: str) -> bool:
    """Before anything about a copy source is looked at: True if the requester may read any
    object of its bucket (owner or root). Otherwise only a public-read object may be copied:
    the caller must pass the object to check_source_object first thing, and a missing key
    answers AccessDenied like a private one unless the bucket is public-read (listable)."""
    source = await ctx.store.head_bucket(bucket)
    if may_use(ctx, source):
        return True
    if source.acl != PUBLIC_READ and not await _exists(ctx, bucket, key):
        raise denied("Access Denied to the copy source")
    return False


def check_source_object(info: ObjectInfo) -> None:
    """For a requester without rights on the source bucket: only a public-read object."""
    if info.http_headers.get(ACL_HEADER) != PUBLIC_READ:
        raise denied("Access Denied to the copy source")
