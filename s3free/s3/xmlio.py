"""S3 XML in and out.

Out: a small builder over ElementTree that writes S3's namespace and skips None values.
In: bodies are read with a size cap and parsed strictly; anything malformed is MalformedXML.
Characters XML 1.0 cannot carry (most control characters) are refused on input by the parser
and never produced on output: keys with them are listed with encoding-type=url by clients that
store such keys (S3 behaves the same way).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from s3free.s3.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 4 * 1024 * 1024  # CompleteMultipartUpload with 10,000 parts fits in ~1 MB


def iso8601(ms: int) -> str:
    """S3's timestamp in XML: 2026-11-25T07:31:39.000Z."""
    return (
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    )


def http_date(ms: int) -> str:
    """RFC 7231 date for Last-Modified: Wed, 25 Nov 2026 07:31:39 GMT."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def element(tag: str, *children: Any, text: str | None = None) -> ET.Element:
    el = ET.Element(tag)
    if text is not None:
        el.text = text
    add(el, *children)
    return el


def add(parent: ET.Element, *children: Any) -> ET.Element:
    """Append children: Elements, (tag, value) pairs (value None: skipped), or iterables."""
    for child in children:
        if child is None:
            continue
        if isinstance(child, ET.Element):
            parent.append(child)
        elif isinstance(child, tuple):
            tag, value = child
            if value is None:
                continue
            sub = ET.SubElement(parent, tag)
            if isinstance(value, bool):
                sub.text = "true" if value else "false"
            else:
                sub.text = str(value)
        elif isinstance(child, Iterable):
            add(parent, *child)
        else:
            raise TypeError(f"cannot add {child!r} to XML")
    return parent


def render(root: ET.Element, *, namespace: bool = True) -> bytes:
    if namespace:
        root.set("xmlns", NS)
    body = ET.tostring(root, encoding="utf-8")
    # A literal CR would reach the client as LF (XML end-of-line handling): write it as &#13;.
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body.replace(b"\r", b"&#13;")


def parse_body(data: bytes, root_tag: str) -> ET.Element:
    """Parse a request body whose root must be root_tag (namespace optional)."""
    if len(data) > MAX_XML_BODY:
        raise S3Error("MalformedXML", "the XML body is too large")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise S3Error("MalformedXML", "DTDs and entities are not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise S3Error("MalformedXML", f"the XML you provided was not well-formed: {exc}") from None
    if local(root.tag) != root_tag:
        raise S3Error("MalformedXML", f"expected <{root_tag}>, got <{local(root.tag)}>")
    return root


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(el: ET.Element, tag: str) -> list[ET.Element]:
    return [c for c in el if local(c.tag) == tag]


def child_text(el: ET.Element, tag: str, default: str | None = None) -> str | None:
    for c in el:
        if local(c.tag) == tag:
            return c.text or ""
    return default
