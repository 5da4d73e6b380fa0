"""ACLs, minimally and honestly: the canned ACLs private and public-read, shown as S3 shows
them (owner FULL_CONTROL, plus AllUsers READ for public-read). Grants and ACL documents are
answered NotImplemented, never accepted and ignored."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web

from s3free.appkeys import Ctx
from s3free.s3.body import read_small_body
from s3free.s3.errors import S3Error
from s3free.s3.ops.common import bucket_owner, owner_element, owner_id, xml_reply
from s3free.s3.xmlio import add, element

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _grant(grantee: ET.Element, permission: str) -> ET.Element:
    return add(element("Grant"), grantee, ("Permission", permission))


def policy(owner: tuple[str, str], canned: str) -> ET.Element:
    """The ACL document of a canned ACL; owner is (user id, display name)."""
    user = add(element("Grantee"), ("ID", owner_id(owner[0])), ("DisplayName", owner[1]))
    user.set("xmlns:xsi", XSI)
    user.set("xsi:type", "CanonicalUser")
    grants = [_grant(user, "FULL_CONTROL")]
    if canned == "public-read":
        group = add(element("Grantee"), ("URI", ALL_USERS))
        group.set("xmlns:xsi", XSI)
        group.set("xsi:type", "Group")
        grants.append(_grant(group, "READ"))
    return add(
        element("AccessControlPolicy"),
        owner_element(*owner),
        add(element("AccessControlList"), grants),
    )


async def requested_canned(ctx: Ctx) -> str:
    """The canned ACL a Put*Acl asks for; anything richer is NotImplemented."""
    headers = ctx.request.headers
    if any(name.lower().startswith("x-amz-grant-") for name in headers):
        raise S3Error(
            "NotImplemented", "ACL grants are not supported; use x-amz-acl private or public-read"
        )
    body = await read_small_body(ctx)
    if body.strip():
        raise S3Error(
            "NotImplemented",
            "ACL documents are not supported; use x-amz-acl private or public-read",
        )
    value = headers.get("x-amz-acl")
    if value is None:
        raise S3Error(
            "MissingSecurityHeader", "Your request was missing a required header: x-amz-acl"
        )
    if value not in ("private", "public-read"):
        raise S3Error(
            "NotImplemented", f"the canned ACL {value!r} is not supported (private, public-read)"
        )
    return value


async def get_bucket_acl(ctx: Ctx) -> web.StreamResponse:
    bucket = ctx.bucket
    return xml_reply(policy(bucket_owner(ctx, bucket), bucket.acl))


async def put_bucket_acl(ctx: Ctx) -> web.StreamResponse:
    value = await requested_canned(ctx)
    await ctx.store.set_bucket_acl(ctx.s3.bucket, value)
    return web.Response(status=200)
