"""An S3Error as the response S3 sends: the <Error> XML body, its status and headers."""

from __future__ import annotations

from aiohttp import web

from s3free.s3.errors import S3Error
from s3free.s3.xmlio import add, element, render


def error_response(exc: S3Error, resource: str, rid: str, method: str) -> web.Response:
    """S3's <Error> document; extra items named "header:<Name>" become response headers."""
    headers = {k[7:]: v for k, v in exc.extra.items() if k.startswith("header:")}
    if exc.status == 304:
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = "application/xml"
    if method == "HEAD":
        return web.Response(status=exc.status, headers=headers)
    body = render(
        add(
            element("Error"),
            ("Code", exc.code),
            ("Message", exc.message),
            [(k, v) for k, v in exc.extra.items() if not k.startswith("header:")],
            ("Resource", resource),
            ("RequestId", rid),
        ),
        namespace=False,
    )
    return web.Response(status=exc.status, body=body, headers=headers)
