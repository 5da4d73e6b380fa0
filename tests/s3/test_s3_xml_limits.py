"""XML request bodies against a real server: no DTD or entity gets through in any encoding,
nesting is bounded, and each operation caps its body size (MaxMessageLengthExceeded)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from s3free.s3.xmlio import BODY_LIMITS, MAX_XML_DEPTH, SMALL_XML_BODY
from tests.s3.raw import Reply, object_path, raw_request
from tests.support.server import Server


def _delete(server: Server, bucket: str, body: bytes) -> Reply:
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    return raw_request(
        server,
        "POST",
        object_path(bucket),
        query="delete",
        headers={"Content-MD5": md5, "Content-Type": "application/xml"},
        body=body,
    )


def _keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_entity_is_refused(server, s3, bucket, encoding):
    """The DTD check used to look for b"<!DOCTYPE" in the raw bytes: in UTF-16 an internal
    entity got through and deleted `victim1`."""
    s3.put_object(Bucket=bucket, Key="victim1", Body=b"keep me")
    declared = encoding.upper().replace("16-", "16")  # expat's names: UTF-16LE, UTF-16BE
    text = (
        f'<?xml version="1.0" encoding="{declared}"?>'
        '<!DOCTYPE Delete [<!ENTITY v "victim1">]>'
        "<Delete><Object><Key>&v;</Key></Object></Delete>"
    )
    body = text.encode(encoding)
    if encoding != "utf-16":
        body = "\ufeff".encode(encoding) + body
    reply = _delete(server, bucket, body)
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    assert _keys(s3, bucket) == ["victim1"]


def test_utf16_entity_expansion_is_refused(server, s3, bucket):
    """A small body whose entities would expand to a huge key is refused before expanding."""
    entities = '<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
    entities += "".join(
        f'<!ENTITY {n} "{("&" + p + ";") * 16}">' for p, n in zip("abcd", "bcde", strict=True)
    )
    text = f"<!DOCTYPE Delete [{entities}]><Delete><Object><Key>&e;</Key></Object></Delete>"
    reply = _delete(server, bucket, text.encode("utf-16"))
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply


@pytest.mark.parametrize("declared", ["UTF-16-LE", "EBCDIC-bogus", "UTF-32"])
def test_unusable_encoding_is_malformed(server, s3, bucket, declared):
    """An encoding the parser cannot read is the client's error, not an internal one."""
    text = (
        f'<?xml version="1.0" encoding="{declared}"?><Delete><Object><Key>k</Key></Object></Delete>'
    )
    reply = _delete(server, bucket, text.encode())
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply


def test_utf16_without_dtd_still_works(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.put_object(Bucket=bucket, Key="stays", Body=b"x")
    body = "<Delete><Object><Key>gone</Key></Object></Delete>".encode("utf-16")
    reply = _delete(server, bucket, body)
    assert reply.status == 200, reply
    assert _keys(s3, bucket) == ["stays"]


def test_deep_nesting_is_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    depth = MAX_XML_DEPTH + 1
    inner = "<a>" * (depth - 2) + "</a>" * (depth - 2)
    body = f"<Delete><Object>{inner}<Key>keep</Key></Object></Delete>".encode()
    reply = _delete(server, bucket, body)
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    assert "deeper" in reply.body.decode()
    assert _keys(s3, bucket) == ["keep"]
    # 100,000 levels (the 3.9 MB body that blocked the event loop): refused the same way.
    reply = _delete(
        server, bucket, b"<Delete>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Delete>"
    )
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    assert _keys(s3, bucket) == ["keep"]


def test_delete_objects_body_cap(server, s3, bucket):
    """1,000 keys of 1,024 bytes fit; a body over the DeleteObjects cap does not."""
    keys = [f"{i:04d}" + "k" * 1020 for i in range(1000)]
    s3.put_object(Bucket=bucket, Key=keys[0], Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    body = ("<Delete>" + "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)).encode()
    body += b"</Delete>"
    assert len(body) < BODY_LIMITS["DeleteObjects"]
    reply = _delete(server, bucket, body)
    assert reply.status == 200, reply
    assert _keys(s3, bucket) == ["keep"]

    limit = BODY_LIMITS["DeleteObjects"]
    padding = b" " * (limit + 1 - len(b"<Delete><Object><Key>keep</Key></Object></Delete>"))
    body = b"<Delete><Object><Key>keep</Key></Object>" + padding + b"</Delete>"
    assert len(body) == limit + 1
    reply = _delete(server, bucket, body)
    assert (reply.status, reply.code) == (400, "MaxMessageLengthExceeded"), reply
    assert str(limit) in reply.body.decode()
    assert _keys(s3, bucket) == ["keep"]


def test_small_body_cap_for_other_operations(server, s3, bucket_name):
    """CreateBucketConfiguration (and ACL documents) are small: 64 KiB at most."""
    config = (
        b"<CreateBucketConfiguration>"
        + b" " * SMALL_XML_BODY
        + b"<LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>"
    )
    reply = raw_request(server, "PUT", object_path(bucket_name), body=config)
    assert (reply.status, reply.code) == (400, "MaxMessageLengthExceeded"), reply
    assert bucket_name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_complete_multipart_large_body_is_parsed(server, s3, bucket):
    """A CompleteMultipartUpload body of 10,000 parts (parsed in a worker thread) is read
    and checked: the parts that were never uploaded are InvalidPart."""
    key = "mp"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"p")[
        "ETag"
    ]
    parts = "".join(
        f"<Part><PartNumber>{i}</PartNumber><ETag>{etag}</ETag></Part>" for i in range(1, 10001)
    )
    body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    assert len(body) > 64 * 1024
    reply = raw_request(
        server, "POST", object_path(bucket, key), query=f"uploadId={upload_id}", body=body
    )
    assert (reply.status, reply.code) == (400, "InvalidPart"), reply
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
