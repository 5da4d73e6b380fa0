"""Tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, and the `x-amz-tagging`
header of PutObject, CopyObject and CreateMultipartUpload.

Tags are checked here against S3's limits with S3's error codes (InvalidTag; MalformedXML for a
document that is not a Tagging); the engine keeps them in the manifest (object tags) or the
bucket record (bucket tags), so they are on the disks like everything else. A tag set is
returned sorted by key, as S3 returns it."""

from __future__ import annotations

from urllib.parse import parse_qsl

from aiohttp import web

from s3free.appkeys import Ctx
from s3free.engine.buckets import MAX_BUCKET_TAGS
from s3free.format.manifest import MAX_TAG_KEY, MAX_TAG_VALUE, MAX_TAGS
from s3free.s3.body import read_small_body
from s3free.s3.errors import S3Error
from s3free.s3.ops.common import check_version_id, xml_reply
from s3free.s3.xmlio import add, children, element, local, parse_body_async


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidTag", message)


def check_tag_set(pairs: list[tuple[str, str]], limit: int, what: str) -> dict[str, str]:
    """The tags as a dict, or InvalidTag naming the first rule a pair breaks."""
    if len(pairs) > limit:
        raise _invalid(f"{what} tags cannot be greater than {limit}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key:
            raise _invalid("The TagKey you have provided is invalid: it must not be empty")
        if len(key) > MAX_TAG_KEY:
            raise _invalid(f"The TagKey you have provided is too long, max {MAX_TAG_KEY}")
        if len(value) > MAX_TAG_VALUE:
            raise _invalid(f"The TagValue you have provided is too long, max {MAX_TAG_VALUE}")
        if key.lower().startswith("aws:"):
            raise _invalid("Your TagKey cannot be prefixed with aws: (reserved for AWS)")
        if key in tags:
            raise _invalid(f"Cannot provide multiple Tags with the same key: {key[:128]!r}")
        tags[key] = value
    return tags


def header_tags(ctx: Ctx) -> dict[str, str]:
    """The tags of `x-amz-tagging` (a URL-encoded query string, `k1=v1&k2`), {} without it."""
    raw = ctx.request.headers.get("x-amz-tagging")
    if raw is None or raw == "":
        return {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise S3Error(
            "InvalidArgument",
            "x-amz-tagging must be a URL-encoded query string of UTF-8 tags (k1=v1&k2=v2)",
            ArgumentName="x-amz-tagging",
        ) from None
    return check_tag_set(pairs, MAX_TAGS, "Object")


async def body_tags(ctx: Ctx, limit: int, what: str) -> dict[str, str]:
    """The tags of a `<Tagging><TagSet><Tag><Key/><Value/></Tag>...` request body."""
    root = await parse_body_async(await read_small_body(ctx), "Tagging")
    sets = children(root, "TagSet")
    if len(sets) != 1 or len(root) != 1:
        raise S3Error("MalformedXML", "Tagging must hold exactly one TagSet")
    pairs = []
    for tag in sets[0]:
        if local(tag.tag) != "Tag":
            raise S3Error("MalformedXML", f"TagSet holds only Tag elements, not {local(tag.tag)}")
        keys, values = children(tag, "Key"), children(tag, "Value")
        if len(keys) != 1 or len(values) != 1 or len(tag) != 2:
            raise S3Error("MalformedXML", "each Tag must hold exactly one Key and one Value")
        pairs.append((keys[0].text or "", values[0].text or ""))
    return check_tag_set(pairs, limit, what)


def tagging_document(tags: dict[str, str]) -> web.Response:
    tag_set = element("TagSet")
    for key in sorted(tags):
        add(tag_set, add(element("Tag"), ("Key", key), ("Value", tags[key])))
    return xml_reply(add(element("Tagging"), tag_set))


# -- object tagging ------------------------------------------------------------------------------


async def get_object_tagging(ctx: Ctx) -> web.StreamResponse:
    check_version_id(ctx.s3.query)
    info = await ctx.store.head_object(ctx.s3.bucket, ctx.s3.key)
    return tagging_document(info.tags)


async def put_object_tagging(ctx: Ctx) -> web.StreamResponse:
    check_version_id(ctx.s3.query)
    tags = await body_tags(ctx, MAX_TAGS, "Object")
    await ctx.store.set_object_tags(ctx.s3.bucket, ctx.s3.key, tags)
    return web.Response(status=200)


async def delete_object_tagging(ctx: Ctx) -> web.StreamResponse:
    check_version_id(ctx.s3.query)
    await ctx.store.set_object_tags(ctx.s3.bucket, ctx.s3.key, {})
    return web.Response(status=204)


# -- bucket tagging ------------------------------------------------------------------------------


async def get_bucket_tagging(ctx: Ctx) -> web.StreamResponse:
    tags = ctx.bucket.tags
    if not tags:
        raise S3Error("NoSuchTagSet", "The TagSet does not exist")
    return tagging_document(tags)


async def put_bucket_tagging(ctx: Ctx) -> web.StreamResponse:
    tags = await body_tags(ctx, MAX_BUCKET_TAGS, "Bucket")
    await ctx.store.set_bucket_tags(ctx.s3.bucket, tags)
    return web.Response(status=204)


async def delete_bucket_tagging(ctx: Ctx) -> web.StreamResponse:
    await ctx.store.set_bucket_tags(ctx.s3.bucket, {})
    return web.Response(status=204)
