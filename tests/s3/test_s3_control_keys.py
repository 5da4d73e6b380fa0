"""Keys holding characters XML 1.0 cannot carry (0x01, 0x1F, ...) in listings against a real
server: without encoding-type=url they are written as character references (&#x1;), as AWS S3
writes them, never as raw bytes that make the whole document ill-formed; with
encoding-type=url (what SDKs send) they come back exactly."""

from __future__ import annotations

import http.client
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest

from tests.s3.raw import object_path, raw_request, sign

KEYS = ["a\x01b", "tab\there", "x\x1fy\x0b"]


@pytest.fixture
def control_bucket(s3, bucket):
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    return bucket


def _raw_controls(body: bytes) -> list[bytes]:
    return re.findall(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", body)


@pytest.mark.parametrize(
    "query", ["list-type=2", "", "versions", "list-type=2&prefix=a%01", "list-type=2&delimiter=%01"]
)
def test_listing_without_url_encoding_has_no_raw_controls(server, control_bucket, query):
    reply = raw_request(server, "GET", object_path(control_bucket), query=query)
    assert reply.status == 200, reply
    assert not _raw_controls(reply.body), reply.body
    assert b"&#x1;" in reply.body
    if "delimiter" not in query and "prefix" not in query:
        assert b"<Key>x&#x1F;y&#xB;</Key>" in reply.body
        assert b"<Key>tab\there</Key>" in reply.body  # TAB is allowed as it is


def test_sdk_listing_round_trips_control_keys(s3, control_bucket):
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=control_bucket)["Contents"]]
    assert sorted(listed) == sorted([*KEYS, "plain"])
    for key in KEYS:
        assert s3.get_object(Bucket=control_bucket, Key=key)["Body"].read() == b"x"


def test_error_echoing_an_invalid_utf8_header_is_well_formed(server, bucket):
    """A signed header's value with a byte that is not UTF-8 makes SignatureDoesNotMatch echo
    it in CanonicalRequest: written as U+FFFD, not as a reference to a surrogate."""
    path = object_path(bucket, "k")
    headers = sign(server, "GET", path, headers={"x-amz-meta-odd": "value"})
    parts = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_host=True)
        for name, value in headers.items():
            raw = b"val\xb2ue" if name.lower() == "x-amz-meta-odd" else value.encode()
            conn.putheader(name, raw)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 403
    root = ET.fromstring(body)  # well-formed
    assert root.findtext("Code") == "SignatureDoesNotMatch"
    assert "\ufffd" in (root.findtext("CanonicalRequest") or "")
