"""Service and bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
GetBucketLocation, GetBucketVersioning."""

from __future__ import annotations

from aiohttp import web

from s3free.appkeys import Ctx
from s3free.errors import BucketAlreadyExists
from s3free.s3.body import read_small_body
from s3free.s3.errors import S3Error
from s3free.s3.ops.common import int_param, owner_element, xml_reply
from s3free.s3.xmlio import add, child_text, element, iso8601, parse_body

MAX_BUCKETS_PAGE = 10000  # S3's default and largest page of ListBuckets


async def list_buckets(ctx: Ctx) -> web.StreamResponse:
    user = ctx.signer
    q = ctx.s3.query
    # The optional filters and pages of ListBuckets: prefix, bucket-region, max-buckets and
    # continuation-token (here the last name of the previous page).
    prefix = q.get("prefix", "")
    region = q.get("bucket-region")
    token = q.get("continuation-token", "")
    max_buckets = int_param(q, "max-buckets", MAX_BUCKETS_PAGE, low=1, high=MAX_BUCKETS_PAGE)
    buckets = await ctx.store.list_buckets()
    if not user.is_root:
        buckets = [b for b in buckets if (b.owner or ctx.users.root.id) == user.id]
    if region is not None and region != ctx.settings.region:
        buckets = []
    buckets = sorted(
        (b for b in buckets if b.name.startswith(prefix) and b.name > token),
        key=lambda b: b.name,
    )
    page = buckets[:max_buckets]
    entries = [
        add(
            element("Bucket"),
            ("Name", b.name),
            ("CreationDate", iso8601(b.created_ms)),
            ("BucketRegion", ctx.settings.region),
        )
        for b in page
    ]
    root = add(
        element("ListAllMyBucketsResult"),
        owner_element(user.id, user.name),
        add(element("Buckets"), entries),
        ("ContinuationToken", page[-1].name if len(buckets) > len(page) else None),
        ("Prefix", prefix if "prefix" in q else None),
    )
    return xml_reply(root)


async def create_bucket(ctx: Ctx) -> web.StreamResponse:
    headers = ctx.request.headers
    if any(name.lower().startswith("x-amz-grant-") for name in headers):
        raise S3Error("NotImplemented", "ACL grants are not supported; use x-amz-acl")
    acl_value = headers.get("x-amz-acl", "private")
    if acl_value not in ("private", "public-read"):
        raise S3Error("NotImplemented", f"the canned ACL {acl_value!r} is not supported")
    if headers.get("x-amz-bucket-object-lock-enabled", "").lower() == "true":
        raise S3Error("NotImplemented", "object lock is not supported by s3free")
    body = await read_small_body(ctx)
    if body.strip():
        config = parse_body(body, "CreateBucketConfiguration")
        location = child_text(config, "LocationConstraint")
        if location and location != ctx.settings.region:
            raise S3Error(
                "InvalidLocationConstraint",
                f"this server's region is {ctx.settings.region}; "
                f"the location constraint {location!r} is not valid here",
                status=400,
            )
    try:
        await ctx.store.create_bucket(ctx.s3.bucket, owner=ctx.signer.id, acl=acl_value)
    except BucketAlreadyExists as exc:
        if (getattr(exc, "owner", None) or ctx.users.root.id) == ctx.signer.id:
            raise S3Error(
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded "
                "and you already own it.",
                BucketName=ctx.s3.bucket,
            ) from None
        raise S3Error(
            "BucketAlreadyExists",
            "The requested bucket name is not available. "
            "Please select a different name and try again.",
            BucketName=ctx.s3.bucket,
        ) from None
    return web.Response(status=200, headers={"Location": f"/{ctx.s3.bucket}"})


async def head_bucket(ctx: Ctx) -> web.StreamResponse:
    return web.Response(status=200, headers={"x-amz-bucket-region": ctx.settings.region})


async def delete_bucket(ctx: Ctx) -> web.StreamResponse:
    await ctx.store.delete_bucket(ctx.s3.bucket)
    return web.Response(status=204)


async def get_bucket_location(ctx: Ctx) -> web.StreamResponse:
    # us-east-1 is reported as an empty LocationConstraint, as S3 does.
    region = ctx.settings.region
    return xml_reply(element("LocationConstraint", text=None if region == "us-east-1" else region))


async def get_bucket_versioning(ctx: Ctx) -> web.StreamResponse:
    # Versioning has never been enabled on any s3free bucket: S3 answers that with an empty
    # configuration (no Status), which is what clients check before they use version ids.
    return xml_reply(element("VersioningConfiguration"))
