"""Listing: ListObjects (V1), ListObjectsV2, ListObjectVersions (every object is its own
"null" version until versioning exists), ListMultipartUploads."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from urllib.parse import quote

from aiohttp import web

from s3free.appkeys import Ctx
from s3free.engine.types import ListResult
from s3free.s3.errors import S3Error
from s3free.s3.ops.common import bucket_owner, int_param, owner_element, quote_etag, xml_reply
from s3free.s3.xmlio import add, element, iso8601

MAX_KEYS = 1000


def _encoder(query):
    """encoding-type=url: percent-encode UTF-8 as S3 does, every byte but the unreserved
    characters and `/` (`a b/c+d` is `a%20b/c%2Bd`), so a `/` delimiter reads as itself."""
    encoding = query.get("encoding-type")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return lambda s: quote(s, safe="/") if s is not None else None


def _page_args(ctx: Ctx, marker: str):
    q = ctx.s3.query
    return {
        "prefix": q.get("prefix", ""),
        "delimiter": q.get("delimiter", ""),
        "start_after": marker,
        "max_keys": min(int_param(q, "max-keys", MAX_KEYS, low=0), MAX_KEYS),
    }


async def _list_page(ctx: Ctx, args: dict) -> ListResult:
    """One page from the store; a max-keys=0 page is empty and not truncated, as in S3 (it
    has nothing to continue from)."""
    page = await ctx.store.list_objects(ctx.s3.bucket, **args)
    if args["max_keys"] == 0:
        page = dataclasses.replace(page, is_truncated=False, next_marker="")
    return page


def _contents(
    obj, enc, owner: tuple[str, str] | None, tag: str = "Contents", version: bool = False
):
    el = add(element(tag), ("Key", enc(obj.key)))
    if version:
        add(el, ("VersionId", "null"), ("IsLatest", True))
    add(
        el,
        ("LastModified", iso8601(obj.last_modified_ms)),
        ("ETag", quote_etag(obj.etag)),
        ("Size", obj.size),
    )
    if owner is not None:
        add(el, owner_element(*owner))
    add(el, ("StorageClass", "STANDARD"))
    return el


def _prefixes(page, enc):
    return [add(element("CommonPrefixes"), ("Prefix", enc(p))) for p in page.common_prefixes]


async def list_objects(ctx: Ctx) -> web.StreamResponse:
    q = ctx.s3.query
    enc = _encoder(q)
    args = _page_args(ctx, q.get("marker", ""))
    page = await _list_page(ctx, args)
    owner = bucket_owner(ctx, ctx.bucket)
    root = add(
        element("ListBucketResult"),
        ("Name", ctx.s3.bucket),
        # V1 echoes Prefix as given, encoded or not: botocore, which asks for url encoding
        # on every V1 listing by itself, decodes Marker, Delimiter and keys but not Prefix.
        ("Prefix", args["prefix"]),
        ("Marker", enc(args["start_after"])),
        ("MaxKeys", args["max_keys"]),
        ("Delimiter", enc(args["delimiter"]) if args["delimiter"] else None),
        ("IsTruncated", page.is_truncated),
        ("NextMarker", enc(page.next_marker) if page.is_truncated and args["delimiter"] else None),
        [_contents(o, enc, owner) for o in page.objects],
        _prefixes(page, enc),
        ("EncodingType", q.get("encoding-type")),
    )
    return xml_reply(root)


def _token(marker: str) -> str:
    return base64.urlsafe_b64encode(b"s3free1:" + marker.encode()).decode()


def _untoken(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if not raw.startswith(b"s3free1:"):
            raise ValueError
        return raw[len(b"s3free1:") :].decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None


async def list_objects_v2(ctx: Ctx) -> web.StreamResponse:
    q = ctx.s3.query
    enc = _encoder(q)
    token = q.get("continuation-token")
    start_after = q.get("start-after", "")
    # An empty token is no token (S3 lists from the start, or start-after, and echoes it).
    marker = _untoken(token) if token else start_after
    args = _page_args(ctx, marker)
    page = await _list_page(ctx, args)
    fetch_owner = q.get("fetch-owner", "false").lower() == "true"
    owner = bucket_owner(ctx, ctx.bucket) if fetch_owner else None
    root = add(
        element("ListBucketResult"),
        ("Name", ctx.s3.bucket),
        ("Prefix", enc(args["prefix"])),
        ("Delimiter", enc(args["delimiter"]) if args["delimiter"] else None),
        ("MaxKeys", args["max_keys"]),
        ("KeyCount", len(page.objects) + len(page.common_prefixes)),
        ("IsTruncated", page.is_truncated),
        ("ContinuationToken", token),
        ("NextContinuationToken", _token(page.next_marker) if page.is_truncated else None),
        ("StartAfter", enc(start_after) if start_after else None),
        [_contents(o, enc, owner) for o in page.objects],
        _prefixes(page, enc),
        ("EncodingType", q.get("encoding-type")),
    )
    return xml_reply(root)


async def list_object_versions(ctx: Ctx) -> web.StreamResponse:
    q = ctx.s3.query
    enc = _encoder(q)
    key_marker = q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise S3Error(
            "InvalidArgument", "A version-id marker cannot be specified without a key marker."
        )
    # Each key has exactly one version, "null", so the page starts after key-marker whether
    # or not version-id-marker is given (S3's key-marker is exclusive).
    args = _page_args(ctx, key_marker)
    page = await _list_page(ctx, args)
    owner = bucket_owner(ctx, ctx.bucket)
    root = add(
        element("ListVersionsResult"),
        ("Name", ctx.s3.bucket),
        ("Prefix", enc(args["prefix"])),
        ("KeyMarker", enc(key_marker)),
        ("VersionIdMarker", version_marker),
        ("MaxKeys", args["max_keys"]),
        ("Delimiter", enc(args["delimiter"]) if args["delimiter"] else None),
        ("IsTruncated", page.is_truncated),
        ("NextKeyMarker", enc(page.next_marker) if page.is_truncated else None),
        ("NextVersionIdMarker", "null" if page.is_truncated else None),
        [_contents(o, enc, owner, tag="Version", version=True) for o in page.objects],
        _prefixes(page, enc),
        ("EncodingType", q.get("encoding-type")),
    )
    return xml_reply(root)


async def _upload_page(ctx: Ctx, prefix, delimiter, key_marker, upload_marker, max_uploads):
    """One page of ListMultipartUploads: up to max_uploads entries (uploads and common
    prefixes together, each prefix once), whether more follow, and the markers to go on from
    (a common prefix as the key marker skips every upload under it)."""
    shown: list = []
    prefixes: list[str] = []
    last: tuple[str, str | None] | None = None
    after_key, after_id = key_marker, upload_marker
    batch_size = min(max_uploads, MAX_KEYS) + 1
    while True:
        batch, more = await ctx.store.list_multipart_uploads(
            ctx.s3.bucket,
            prefix=prefix,
            key_marker=after_key,
            upload_id_marker=after_id,
            max_uploads=batch_size,
        )
        for upload in batch:
            pos = upload.key.find(delimiter, len(prefix)) if delimiter else -1
            if pos >= 0:
                common = upload.key[: pos + len(delimiter)]
                if common.encode() <= key_marker.encode() or (prefixes and prefixes[-1] == common):
                    continue  # listed already, on this page or an earlier one
                if len(shown) + len(prefixes) >= max_uploads:
                    return shown, prefixes, True, last
                prefixes.append(common)
                last = (common, None)
                continue
            if len(shown) + len(prefixes) >= max_uploads:
                return shown, prefixes, True, last
            shown.append(upload)
            last = (upload.key, upload.upload_id)
        if not more or not batch:
            return shown, prefixes, False, None
        after_key, after_id = batch[-1].key, batch[-1].upload_id


async def list_multipart_uploads(ctx: Ctx) -> web.StreamResponse:
    q = ctx.s3.query
    enc = _encoder(q)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    upload_marker = q.get("upload-id-marker", "") if key_marker else ""
    max_uploads = min(int_param(q, "max-uploads", MAX_KEYS, low=0), MAX_KEYS)
    shown, prefixes, truncated, last = await _upload_page(
        ctx, prefix, delimiter, key_marker, upload_marker, max_uploads
    )
    owner = bucket_owner(ctx, ctx.bucket)
    root = add(
        element("ListMultipartUploadsResult"),
        ("Bucket", ctx.s3.bucket),
        ("KeyMarker", enc(key_marker)),
        ("UploadIdMarker", upload_marker),
        ("NextKeyMarker", enc(last[0]) if truncated and last else None),
        ("NextUploadIdMarker", last[1] if truncated and last else None),
        ("Prefix", enc(prefix) if prefix else None),
        ("Delimiter", enc(delimiter) if delimiter else None),
        ("MaxUploads", max_uploads),
        ("IsTruncated", truncated),
        [
            add(
                element("Upload"),
                ("Key", enc(u.key)),
                ("UploadId", u.upload_id),
                owner_element(*owner, "Initiator"),
                owner_element(*owner),
                ("StorageClass", "STANDARD"),
                ("Initiated", iso8601(u.initiated_ms)),
            )
            for u in shown
        ],
        [add(element("CommonPrefixes"), ("Prefix", enc(p))) for p in prefixes],
        ("EncodingType", q.get("encoding-type")),
    )
    return xml_reply(root)
