"""Numbers in requests against a real server: ASCII digits only and bounded lengths.

int() took any Unicode digit (THREE as 3) and raised on SQUARED or more than 4,300 digits, which
came back as 500 InternalError with a traceback in the log (some of them anonymously, before
authentication). Each case here must be a 4xx with the S3 error the number's place calls for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import time
from urllib.parse import urlsplit

import pytest

from tests.s3.raw import Reply, object_path, sign
from tests.s3.raw import raw_request as signed_request
from tests.s3.users_support import error_code, raw_request

HUGE = "9" * 5000
THREE = "\u0663"  # ARABIC-INDIC DIGIT THREE: int() reads it as 3
SQUARED = "\u00b2"  # SUPERSCRIPT TWO: isdigit() is True, int() raises
PRESIGN = [
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ("X-Amz-Credential", "AKIDNOSUCHKEY/20260101/us-east-1/s3/aws4_request"),
    ("X-Amz-Date", "20260101T000000Z"),
    ("X-Amz-SignedHeaders", "host"),
    ("X-Amz-Signature", "0" * 64),
]


def utf8_request(server, method, path, *, query="", headers, body=b"", payload=None) -> Reply:
    """A SigV4-signed request whose header values go out as UTF-8 (http.client sends str
    values as Latin-1, which cannot carry "\u0663")."""
    signed = sign(server, method, path, query=query, headers=headers, body=body, payload=payload)
    signed.setdefault("Content-Length", str(len(body)))
    parts = urlsplit(server.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest(method, path + (f"?{query}" if query else ""), skip_host=True)
        for name, value in signed.items():
            conn.putheader(name, value.encode())
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


@pytest.fixture
def obj(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"0123456789")
    return bucket


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        (SQUARED, "number"),
        (THREE, "number"),
        ("3.0", "number"),
        (HUGE, "week"),
        ("-" + HUGE, "non"),
    ],
)
def test_presign_expires_anonymous(server, obj, expires, message):
    status, _, body = raw_request(
        server, "GET", f"/{obj}/o", query=[*PRESIGN, ("X-Amz-Expires", expires)], creds=None
    )
    assert (status, error_code(body)) == (400, "AuthorizationQueryParametersError"), body
    assert message in body.decode()


@pytest.mark.parametrize(
    ("header", "status", "body"),
    [
        (f"bytes={HUGE}-", 416, None),  # starts past any object
        (f"bytes=2-{HUGE}", 206, b"23456789"),  # to the end
        (f"bytes=-{HUGE}", 206, b"0123456789"),  # a suffix longer than the object
        ("bytes=\u0663-5", 200, b"0123456789"),  # not a range S3 reads: ignored
    ],
)
def test_range_numbers(server, obj, header, status, body):
    reply = utf8_request(server, "GET", f"/{obj}/o", headers={"Range": header})
    assert reply.status == status, reply
    if body is not None:
        assert reply.body == body
    else:
        assert reply.code == "InvalidRange"


@pytest.mark.parametrize("number", [THREE, SQUARED, HUGE, "0003x", " 3", "-1"])
def test_part_number_on_get_and_upload(server, s3, obj, number):
    status, _, body = raw_request(server, "GET", f"/{obj}/o", query=[("partNumber", number)])
    assert (status, error_code(body)) == (400, "InvalidArgument"), body
    upload_id = s3.create_multipart_upload(Bucket=obj, Key="mp")["UploadId"]
    status, _, body = raw_request(
        server,
        "PUT",
        f"/{obj}/mp",
        query=[("partNumber", number), ("uploadId", upload_id)],
        body=b"part",
    )
    assert (status, error_code(body)) == (400, "InvalidArgument"), body
    assert not s3.list_parts(Bucket=obj, Key="mp", UploadId=upload_id).get("Parts")
    s3.abort_multipart_upload(Bucket=obj, Key="mp", UploadId=upload_id)


def test_part_number_three_in_arabic_is_not_part_three(server, s3, bucket):
    """`partNumber=\\u0663` (Arabic-Indic 3) used to read part 3."""
    key = "parts"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etags = [
        s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=bytes([n]) * 5 * 2**20
        )["ETag"]
        for n in (1, 2, 3)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2, 3), etags, strict=True)]
        },
    )
    status, _, _ = raw_request(server, "HEAD", f"/{bucket}/{key}", query=[("partNumber", THREE)])
    assert status == 400
    status, headers, _ = raw_request(
        server, "HEAD", f"/{bucket}/{key}", query=[("partNumber", "3")]
    )
    assert status == 206 and headers["x-amz-mp-parts-count"] == "3"


@pytest.mark.parametrize("rng", [f"bytes=0-{HUGE}", f"bytes={HUGE}-{HUGE}", "bytes=\u0660-\u0663"])
def test_copy_source_range_numbers(server, s3, obj, rng):
    upload_id = s3.create_multipart_upload(Bucket=obj, Key="mp")["UploadId"]
    reply = utf8_request(
        server,
        "PUT",
        f"/{obj}/mp",
        query=f"partNumber=1&uploadId={upload_id}",
        headers={"x-amz-copy-source": f"/{obj}/o", "x-amz-copy-source-range": rng},
    )
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply
    s3.abort_multipart_upload(Bucket=obj, Key="mp", UploadId=upload_id)


@pytest.mark.parametrize("value", ["\u0661\u0660", SQUARED, "1e3", "-1"])
def test_listing_numbers(server, obj, value):
    for param in ("max-keys", "max-uploads"):
        query = [("list-type", "2"), (param, value)] if param == "max-keys" else [("uploads", "")]
        if param == "max-uploads":
            query.append((param, value))
        status, _, body = raw_request(server, "GET", f"/{obj}", query=query)
        assert (status, error_code(body)) == (400, "InvalidArgument"), (param, body)


def test_huge_max_keys_means_the_most(server, obj):
    status, _, body = raw_request(
        server, "GET", f"/{obj}", query=[("list-type", "2"), ("max-keys", HUGE)]
    )
    assert status == 200 and b"<MaxKeys>1000</MaxKeys>" in body


@pytest.mark.parametrize("value", [THREE, SQUARED, HUGE])
def test_decoded_content_length(server, s3, bucket, value):
    body = b"3\r\nabc\r\n0\r\n\r\n"
    reply = utf8_request(
        server,
        "PUT",
        object_path(bucket, "chunked"),
        headers={"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": value},
        body=body,
        payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply
    assert not s3.list_objects_v2(Bucket=bucket).get("Contents")


@pytest.mark.parametrize("number", ["\u0661", HUGE])
def test_complete_part_number(server, s3, bucket, number):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x")[
        "ETag"
    ]
    xml = (
        f"<CompleteMultipartUpload><Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag>"
        "</Part></CompleteMultipartUpload>"
    ).encode()
    reply = signed_request(
        server, "POST", object_path(bucket, "mp"), query=f"uploadId={upload_id}", body=xml
    )
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


def _v2_presigned(server, bucket: str, key: str, expires: str) -> list[tuple[str, str]]:
    """A SigV2 query signature made by hand (HMAC-SHA1 over AWS's string to sign)."""
    sts = f"GET\n\n\n{expires}\n/{bucket}/{key}"
    sig = hmac.new(server.secret_key.encode(), sts.encode(), hashlib.sha1).digest()
    return [
        ("AWSAccessKeyId", server.access_key),
        ("Expires", expires),
        ("Signature", base64.b64encode(sig).decode()),
    ]


@pytest.mark.parametrize("expires", [SQUARED, "\u0661\u0667" + "\u0660" * 8])
def test_sigv2_expires_in_other_digits(server, obj, expires):
    """A correctly signed non-ASCII Expires used to be read as "never expires"."""
    ok = _v2_presigned(server, obj, "o", str(int(time.time()) + 600))
    status, _, _ = raw_request(server, "GET", f"/{obj}/o", query=ok, creds=None)
    assert status == 200  # the hand-made signature is right
    query = _v2_presigned(server, obj, "o", expires)
    status, _, body = raw_request(server, "GET", f"/{obj}/o", query=query, creds=None)
    assert (status, error_code(body)) == (403, "AccessDenied"), body
    assert b"seconds since epoch" in body
