"""S3 XML in and out.

Out: a small builder over ElementTree that writes S3's namespace and skips None values.
In: bodies are read with a size cap and parsed strictly; anything malformed is MalformedXML.
Characters XML 1.0 cannot carry (most control characters) are refused on input by the parser.
On output (a key holding 0x01 listed without encoding-type=url) they are written as character
references (&#x1;), never as raw bytes, as AWS S3 writes them; clients that store such keys
list with encoding-type=url (every AWS SDK does by default), which carries them exactly.

Parsing is defended after decoding, whatever the encoding the document declares (UTF-16
included): defusedxml refuses any DTD, so no entity can be declared or expanded; elements
nest at most MAX_XML_DEPTH deep; each operation has its own body size cap (BODY_LIMITS); and a
body above INLINE_PARSE_MAX bytes is parsed in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from s3free.s3.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
# Request body caps by operation (bytes). CompleteMultipartUpload with 10,000 parts and a
# checksum each is ~1.3 MB; DeleteObjects with 1,000 keys of 1,024 bytes is ~1.1 MB. Any other
# XML body (CreateBucketConfiguration, an ACL document) is a few hundred bytes.
MAX_XML_BODY = 4 * 1024 * 1024
BODY_LIMITS = {
    "CompleteMultipartUpload": MAX_XML_BODY,
    "DeleteObjects": 2 * 1024 * 1024,
    # 50 tags of 128 + 256 four-byte characters, with their markup, is ~80 KB.
    "PutBucketTagging": 128 * 1024,
}
SMALL_XML_BODY = 64 * 1024
MAX_XML_DEPTH = 32  # S3's own documents nest at most ~6 deep
INLINE_PARSE_MAX = 64 * 1024  # larger bodies are parsed in a worker thread


def body_limit(op: str) -> int:
    """The largest request body the operation accepts."""
    return BODY_LIMITS.get(op, SMALL_XML_BODY)


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


# C0 controls other than TAB, LF, CR: in UTF-8 these bytes are only ever those characters.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# ElementTree writes a character UTF-8 cannot encode (a lone surrogate, e.g. from an invalid
# UTF-8 byte in a header echoed in an error) as a decimal reference; "&" itself is "&amp;".
_UNENCODABLE = re.compile(rb"&#[0-9]+;")
_REPLACEMENT = "\ufffd".encode()


def render(root: ET.Element, *, namespace: bool = True) -> bytes:
    if namespace:
        root.set("xmlns", NS)
    body = ET.tostring(root, encoding="utf-8")
    body = _UNENCODABLE.sub(_REPLACEMENT, body)
    # A literal CR would reach the client as LF (XML end-of-line handling): write it as &#13;.
    body = body.replace(b"\r", b"&#13;")
    body = _CONTROL.sub(lambda m: b"&#x%X;" % m[0][0], body)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


class _TooDeep(Exception):
    pass


class _DepthLimitedBuilder(ET.TreeBuilder):
    """A TreeBuilder that stops a document nested deeper than MAX_XML_DEPTH."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0

    def start(self, tag, attrs):
        self.depth += 1
        if self.depth > MAX_XML_DEPTH:
            raise _TooDeep
        return super().start(tag, attrs)

    def end(self, tag):
        self.depth -= 1
        return super().end(tag)


def parse_body(data: bytes, root_tag: str) -> ET.Element:
    """Parse a request body whose root must be root_tag (namespace optional)."""
    if len(data) > MAX_XML_BODY:
        raise S3Error("MaxMessageLengthExceeded", "the XML body is too large")
    parser = DefusedXMLParser(
        target=_DepthLimitedBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException:
        raise S3Error(
            "MalformedXML", "DTDs and entities are not accepted in S3 XML bodies; remove them"
        ) from None
    except _TooDeep:
        raise S3Error(
            "MalformedXML", f"the XML nests deeper than {MAX_XML_DEPTH} elements"
        ) from None
    except (ET.ParseError, ValueError, LookupError) as exc:  # ValueError: an unusable encoding
        raise S3Error("MalformedXML", f"the XML you provided was not well-formed: {exc}") from None
    if local(root.tag) != root_tag:
        raise S3Error("MalformedXML", f"expected <{root_tag}>, got <{local(root.tag)}>")
    return root


async def parse_body_async(data: bytes, root_tag: str) -> ET.Element:
    """parse_body, in a worker thread for a large body (a big document takes long enough
    to parse that the event loop would stall: health probes and other requests wait)."""
    if len(data) <= INLINE_PARSE_MAX:
        return parse_body(data, root_tag)
    return await asyncio.to_thread(parse_body, data, root_tag)


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def children(el: ET.Element, tag: str) -> list[ET.Element]:
    return [c for c in el if local(c.tag) == tag]


def child_text(el: ET.Element, tag: str, default: str | None = None) -> str | None:
    for c in el:
        if local(c.tag) == tag:
            return c.text or ""
    return default
