"""Bad input against a real server: malformed XML, over-long keys, subresources we do not
implement, bodies shorter or longer than announced, clients that hang up mid-upload, a forged
chunk signature in a streaming upload, oversized metadata, unsigned writes.

Every case checks the S3 error code *and* that nothing was left behind: no object visible (HEAD,
listing), no version directory for the key on any disk, and no file in any disk's
.s3free.tmp. Raw requests are signed with botocore (S3SigV4Auth on an AWSRequest) and sent with
http.client or a plain socket to 127.0.0.1.

The shared helpers (signed requests, error parsing, leftovers) are in tests/s3/raw.py.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import time

import pytest
from botocore.exceptions import ClientError

from s3free.s3.auth.sigv4 import STREAMING_SIGNED
from tests.s3.raw import (
    REGION,
    UNSIGNED,
    Reply,
    assert_nothing_left,
    client_error,
    connect,
    error_fields,
    object_path,
    raw_head,
    raw_request,
    read_reply,
    sha256_hex,
    sign,
    temp_files,
    version_dirs,
    wait_until,
)
from tests.support.server import Server
from tests.test_chunked import derive_key, encode

# ---------------------------------------------------------------------------------------------
# Malformed XML


def _delete_request(server: Server, bucket: str, body: bytes) -> Reply:
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    return raw_request(
        server,
        "POST",
        object_path(bucket),
        query="delete",
        headers={"Content-MD5": md5, "Content-Type": "application/xml"},
        body=body,
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>keep</Key></Object>",  # not closed
        b"<Delete><Object><Key>keep</Key></Object></Delete>trailing",
        b"not xml at all",
        b"",
        b"<Remove><Object><Key>keep</Key></Object></Remove>",  # wrong root
        b"<Delete><Quiet>true</Quiet></Delete>",  # no Object
        b"<Delete><Object><VersionId>null</VersionId></Object></Delete>",  # Object without Key
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "keep">]>'
        b"<Delete><Object><Key>&e;</Key></Object></Delete>",
    ],
    ids=["unclosed", "trailing", "garbage", "empty", "root", "no-object", "no-key", "entity"],
)
def test_delete_objects_malformed_xml(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"still here")
    reply = _delete_request(server, bucket, body)
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    # Nothing was deleted.
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"still here"
    assert_nothing_left(server, s3, bucket, None)


def test_delete_objects_more_than_1000_keys(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k0", Body=b"x")
    objects = "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1001))
    reply = _delete_request(server, bucket, f"<Delete>{objects}</Delete>".encode())
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    assert s3.head_object(Bucket=bucket, Key="k0")["ContentLength"] == 1


def _upload_one_part(s3, bucket: str, key: str) -> tuple[str, str]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"part one"
    )["ETag"]
    return upload_id, etag


@pytest.mark.parametrize(
    "template",
    [
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>",
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>{etag}</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
        "</CompleteMultipartUpload>",
        "<Complete><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></Complete>",
        "{{garbage",
    ],
    ids=["unclosed", "no-parts", "bad-number", "no-etag", "root", "garbage"],
)
def test_complete_multipart_malformed_xml(server, s3, bucket, template):
    key = "mp-object"
    upload_id, etag = _upload_one_part(s3, bucket, key)
    body = template.format(etag=etag).encode()
    reply = raw_request(
        server, "POST", object_path(bucket, key), query=f"uploadId={upload_id}", body=body
    )
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    # No object; the upload is still there (its part listed) and can be aborted cleanly.
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in parts] == [(1, etag)]
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    assert_nothing_left(server, s3, bucket, key)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


# ---------------------------------------------------------------------------------------------
# Keys


def test_key_of_1024_bytes_is_accepted(s3, bucket):
    key = "k" * 1021 + "€"  # 1024 bytes of UTF-8
    assert len(key.encode()) == 1024
    s3.put_object(Bucket=bucket, Key=key, Body=b"longest")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"longest"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


@pytest.mark.parametrize("key", ["k" * 1025, "€" * 342], ids=["ascii-1025", "utf8-1026"])
def test_key_too_long(server, s3, bucket, key):
    assert len(key.encode()) > 1024
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key=key, Body=b"too long")
    assert client_error(info) == ("KeyTooLongError", 400)
    with pytest.raises(ClientError) as info:
        s3.create_multipart_upload(Bucket=bucket, Key=key)
    assert client_error(info) == ("KeyTooLongError", 400)
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    with pytest.raises(ClientError) as info:
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "src"})
    assert client_error(info) == ("KeyTooLongError", 400)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["src"]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert_nothing_left(server, s3, bucket, None)
    assert not version_dirs(server, bucket, key)


def test_path_with_invalid_utf8_is_a_client_error(server, s3, bucket):
    """%C3%28 decodes to bytes that are not UTF-8: S3 answers 400 (InvalidURI), never 500."""
    reply = raw_request(server, "PUT", f"/{bucket}/bad%C3%28key", body=b"data")
    assert 400 <= reply.status < 500, reply
    assert reply.code in ("InvalidURI", "InvalidArgument", "InvalidObjectName"), reply
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    assert_nothing_left(server, s3, bucket, None)


# ---------------------------------------------------------------------------------------------
# Subresources and headers we do not implement


@pytest.mark.parametrize(
    ("method", "on_key", "query", "body"),
    [
        ("GET", True, "legal-hold", b""),
        ("PUT", True, "legal-hold", b"<LegalHold><Status>ON</Status></LegalHold>"),
        ("DELETE", False, "cors", b""),
        ("GET", False, "policy", b""),
        ("PUT", False, "policy", b'{"Version": "2012-10-17", "Statement": []}'),
        ("PUT", False, "lifecycle", b"<LifecycleConfiguration/>"),
        ("GET", False, "lifecycle", b""),
        ("GET", False, "cors", b""),
        ("PUT", False, "versioning", b"<VersioningConfiguration><Status>Enabled</Status>"
         b"</VersioningConfiguration>"),
        ("GET", True, "retention", b""),
        ("POST", True, "restore", b"<RestoreRequest/>"),
        ("GET", False, "object-lock", b""),
        ("PUT", False, "website", b"<WebsiteConfiguration/>"),
        ("GET", False, "replication", b""),
        ("GET", False, "encryption", b""),
        ("GET", True, "torrent", b""),
        ("POST", True, "select&select-type=2", b"<SelectObjectContentRequest/>"),
    ],
)  # fmt: skip
def test_unsupported_subresource_not_implemented(server, s3, bucket, method, on_key, query, body):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"payload")
    path = object_path(bucket, "obj" if on_key else "")
    reply = raw_request(server, method, path, query=query, body=body)
    assert (reply.status, reply.code) == (501, "NotImplemented"), reply
    # The server is fine afterwards, and nothing changed.
    assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"payload"
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") is None


def test_browser_post_upload_is_not_implemented(server, s3, bucket):
    """An HTML form upload (POST to the bucket, multipart/form-data with a POST policy, no
    Authorization header) is an S3 feature s3free does not build: 501 NotImplemented XML
    saying so, as for every other such feature, not 405, and nothing stored."""
    boundary = "----s3freeform"
    fields = {"key": "posted", "acl": "private", "policy": "e30=", "x-amz-signature": "00"}
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    body = (
        "".join(parts)
        + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        + f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    for path in (object_path(bucket), object_path(bucket) + "/"):
        reply = raw_request(
            server,
            "POST",
            path,
            body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            signed=False,
        )
        assert (reply.status, reply.code) == (501, "NotImplemented"), reply
        assert "POST" in error_fields(reply.body)["Message"]
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_unsupported_calls_through_boto3_keep_the_connection_usable(server, s3, bucket):
    """boto3 sends bodies with these calls; the 501 must not leave the kept-alive connection
    with unread body bytes that would corrupt the next request."""
    s3.put_object(Bucket=bucket, Key="obj", Body=b"payload")
    calls = [
        lambda: s3.put_object_legal_hold(Bucket=bucket, Key="obj", LegalHold={"Status": "ON"}),
        lambda: s3.put_bucket_policy(Bucket=bucket, Policy='{"Statement": []}' + " " * 5000),
        lambda: s3.get_bucket_policy(Bucket=bucket),
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
        lambda: s3.get_object_retention(Bucket=bucket, Key="obj"),
    ]
    for call in calls:
        with pytest.raises(ClientError) as info:
            call()
        assert client_error(info) == ("NotImplemented", 501)
        assert s3.get_object(Bucket=bucket, Key="obj")["Body"].read() == b"payload"


@pytest.mark.parametrize(
    "extra",
    [
        {"ObjectLockLegalHoldStatus": "ON"},
        {"ServerSideEncryption": "AES256"},
        {"StorageClass": "GLACIER"},
        {"WebsiteRedirectLocation": "/elsewhere"},
    ],
    ids=["legal-hold", "sse", "storage-class", "redirect"],
)
def test_put_with_unsupported_header_stores_nothing(server, s3, bucket, extra):
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="obj", Body=b"x" * 1000, **extra)
    code, status = client_error(info)
    assert (code, status) in (("NotImplemented", 501), ("InvalidStorageClass", 400))
    assert_nothing_left(server, s3, bucket, "obj")


def test_metadata_too_large(server, s3, bucket):
    metadata = {f"m{i}": "v" * 100 for i in range(25)}  # > 2 KB of names and values
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="obj", Body=b"x", Metadata=metadata)
    assert client_error(info) == ("MetadataTooLarge", 400)
    assert_nothing_left(server, s3, bucket, "obj")


def test_anonymous_put_is_denied_and_stores_nothing(server, s3, bucket):
    reply = raw_request(server, "PUT", object_path(bucket, "anon"), body=b"data", signed=False)
    assert (reply.status, reply.code) == (403, "AccessDenied"), reply
    assert_nothing_left(server, s3, bucket, "anon")


def test_wrong_secret_is_signature_mismatch(server, s3, bucket):
    reply = raw_request(server, "PUT", object_path(bucket, "k"), body=b"data", secret_key="wrong")
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch"), reply
    assert_nothing_left(server, s3, bucket, "k")


# ---------------------------------------------------------------------------------------------
# Bodies that do not match their Content-Length, and clients that go away


def test_body_shorter_than_content_length_then_close(server, s3, bucket):
    key = "short"
    full = b"y" * 100_000
    headers = sign(server, "PUT", object_path(bucket, key), body=full, payload=UNSIGNED)
    headers["Content-Length"] = str(len(full))
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", object_path(bucket, key), headers) + full[:40_000])
        time.sleep(0.1)
    assert_nothing_left(server, s3, bucket, key)


def test_body_shorter_than_content_length_half_close(server, s3, bucket):
    """The client says it has sent everything (FIN) before Content-Length bytes came: the
    server answers IncompleteBody if it can answer at all, and stores nothing."""
    key = "short-fin"
    full = b"z" * 10_000
    headers = sign(server, "PUT", object_path(bucket, key), body=full, payload=sha256_hex(full))
    headers["Content-Length"] = str(len(full))
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", object_path(bucket, key), headers) + full[:5_000])
        sock.shutdown(socket.SHUT_WR)
        reply = read_reply(sock, timeout=10)
    if reply is not None:
        assert (reply.status, reply.code) == (400, "IncompleteBody"), reply
    assert_nothing_left(server, s3, bucket, key)


@pytest.mark.parametrize("signed", [True, False], ids=["sha256", "unsigned"])
def test_body_longer_than_content_length(server, s3, bucket, signed):
    """Content-Length N, then more bytes than N. The server reads N bytes as the body; what
    follows is a (malformed) next request. With the payload hash of all the bytes signed, the
    N bytes do not match it: XAmzContentSHA256Mismatch. Unsigned, the object is exactly the
    first N bytes (HTTP framing). The extra bytes are sent a little later, so that the first
    request is complete on its own."""
    key = "long"
    full = b"A" * 3000 + b"B" * 500
    payload = sha256_hex(full) if signed else UNSIGNED
    headers = sign(server, "PUT", object_path(bucket, key), body=full, payload=payload)
    headers["Content-Length"] = "3000"
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", object_path(bucket, key), headers) + full[:3000])
        time.sleep(0.3)
        sock.sendall(full[3000:])
        reply = read_reply(sock)
    assert reply is not None
    if signed:
        assert (reply.status, reply.code) == (400, "XAmzContentSHA256Mismatch"), reply
        assert_nothing_left(server, s3, bucket, key)
    else:
        assert reply.status == 200, reply
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"A" * 3000
        wait_until(lambda: not temp_files(server), what="empty temp dirs")


def test_body_longer_than_content_length_in_one_write(server, s3, bucket):
    """The same, all bytes in one write: whatever the server answers, it never stores the
    extra bytes, and leaves nothing behind."""
    key = "long-one-write"
    full = b"A" * 3000 + b"B" * 500
    headers = sign(server, "PUT", object_path(bucket, key), body=full, payload=UNSIGNED)
    headers["Content-Length"] = "3000"
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", object_path(bucket, key), headers) + full)
        reply = read_reply(sock)
    assert reply is not None and reply.status in (200, 400), reply
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    try:
        stored = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchKey"
        assert reply.status == 400
    else:
        assert stored == b"A" * 3000


@pytest.mark.parametrize("sent_fraction", [0.0, 0.5])
def test_client_disconnects_mid_upload(server, s3, bucket, sent_fraction):
    key = "abandoned"
    size = 8 * 1024 * 1024
    headers = sign(server, "PUT", object_path(bucket, key), payload=UNSIGNED)
    headers["Content-Length"] = str(size)
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", object_path(bucket, key), headers))
        chunk = b"\x5a" * (256 * 1024)
        for _ in range(int(size * sent_fraction) // len(chunk)):
            sock.sendall(chunk)
        if sent_fraction:
            # The server has started writing shards by now.
            wait_until(lambda: temp_files(server), timeout=5, what="temp files being written")
    assert_nothing_left(server, s3, bucket, key)
    # The server is fine afterwards.
    s3.put_object(Bucket=bucket, Key=key, Body=b"later")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"later"


def test_disconnect_during_multipart_part_upload(server, s3, bucket):
    key = "mp-abandoned"
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    size = 6 * 1024 * 1024
    query = f"partNumber=1&uploadId={upload_id}"
    path = object_path(bucket, key)
    headers = sign(server, "PUT", path, query=query, payload=UNSIGNED)
    headers["Content-Length"] = str(size)
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", f"{path}?{query}", headers) + b"p" * (size // 2))
        wait_until(lambda: temp_files(server), timeout=5, what="temp files being written")
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    assert not s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id).get("Parts")
    s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    assert_nothing_left(server, s3, bucket, key)


# ---------------------------------------------------------------------------------------------
# A forged chunk signature in the middle of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body


def _streaming_put(
    server: Server,
    bucket: str,
    key: str,
    chunks: list[bytes],
    *,
    decoded: int | None = None,
    **corrupt,
) -> Reply:
    """PUT with a signed aws-chunked body, built by tests/test_chunked.py's encoder from the
    seed signature botocore computed for the request."""
    from s3free.s3.auth.sigv4 import AuthResult

    path = object_path(bucket, key)
    if decoded is None:
        decoded = sum(len(c) for c in chunks)
    # The encoded length depends only on chunk sizes; encode once unsigned-shaped to size it.
    sig_line = len(";chunk-signature=") + 64
    encoded_length = (
        sum(len(f"{len(c):x}") + sig_line + 2 + len(c) + 2 for c in chunks)
        + len("0") + sig_line + 2 + 2
    )  # fmt: skip
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded),
        "Content-Length": str(encoded_length),
    }
    signed = sign(server, "PUT", path, headers=headers, payload=STREAMING_SIGNED)
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = signed["X-Amz-Date"]
    auth = AuthResult(
        credentials=None,
        payload=STREAMING_SIGNED,
        presigned=False,
        signing_key=derive_key(server.secret_key, amz_date[:8], REGION),
        seed_signature=seed,
        amz_date=amz_date,
        scope=f"{amz_date[:8]}/{REGION}/s3/aws4_request",
    )
    body = encode(chunks, STREAMING_SIGNED, auth=auth, **corrupt)
    assert len(body) == encoded_length
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", path, signed) + body)
        reply = read_reply(sock)
    assert reply is not None
    return reply


def test_streaming_signed_upload_is_accepted(server, s3, bucket):
    """The control for the forged-signature case: the same body, correctly signed, is stored."""
    chunks = [bytes([i]) * 65536 for i in range(3)] + [b"tail"]
    reply = _streaming_put(server, bucket, "streamed", chunks)
    assert reply.status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == b"".join(chunks)


@pytest.mark.parametrize("bad_chunk", [1, 4], ids=["middle", "final-empty"])
def test_streaming_bad_chunk_signature_stores_nothing(server, s3, bucket, bad_chunk):
    chunks = [bytes([i + 1]) * 65536 for i in range(3)] + [b"tail"]
    reply = _streaming_put(server, bucket, "forged", chunks, corrupt_chunk=bad_chunk)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch"), reply
    assert_nothing_left(server, s3, bucket, "forged")


@pytest.mark.parametrize("delta", [-1, 1], ids=["announced-less", "announced-more"])
def test_streaming_decoded_length_mismatch(server, s3, bucket, delta):
    chunks = [b"d" * 65536, b"e" * 1000]
    announced = sum(len(c) for c in chunks) + delta
    reply = _streaming_put(server, bucket, "mismatch", chunks, decoded=announced)
    assert (reply.status, reply.code) == (400, "IncompleteBody"), reply
    assert_nothing_left(server, s3, bucket, "mismatch")


def test_streaming_bad_chunk_signature_does_not_replace_existing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="forged", Body=b"original")
    before = version_dirs(server, bucket, "forged")
    chunks = [b"n" * 70000, b"e" * 70000]
    reply = _streaming_put(server, bucket, "forged", chunks, corrupt_chunk=1)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch"), reply
    assert s3.get_object(Bucket=bucket, Key="forged")["Body"].read() == b"original"
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    assert version_dirs(server, bucket, "forged") == before


# ---------------------------------------------------------------------------------------------
# Request ids and error bodies


def _assert_ids(reply: Reply) -> None:
    assert reply.headers.get("x-amz-request-id"), reply.headers
    assert reply.headers.get("x-amz-id-2"), reply.headers


def test_every_response_has_request_ids(server, s3, bucket):
    path = object_path(bucket, "ids")
    put = raw_request(server, "PUT", path, body=b"abc")
    assert put.status == 200
    etag = put.headers["etag"]
    replies = [
        put,
        raw_request(server, "GET", path),
        raw_request(server, "HEAD", path),
        raw_request(server, "GET", path, headers={"If-None-Match": etag}),  # 304
        raw_request(server, "GET", path, headers={"Range": "bytes=0-0"}),  # 206
        raw_request(server, "GET", object_path(bucket), query="list-type=2"),
        raw_request(server, "GET", "/"),
        raw_request(server, "HEAD", object_path(bucket)),
        raw_request(server, "DELETE", path),  # 204
    ]
    assert [r.status for r in replies] == [200, 200, 200, 304, 206, 200, 200, 200, 204]
    for reply in replies:
        _assert_ids(reply)
    ids = [r.headers["x-amz-request-id"] for r in replies]
    assert len(set(ids)) == len(ids)  # one per request


@pytest.mark.parametrize(
    ("method", "path", "query", "status", "code"),
    [
        ("GET", "/{bucket}/missing", "", 404, "NoSuchKey"),
        ("GET", "/no-such-bucket-here/k", "", 404, "NoSuchBucket"),
        ("PUT", "/A_B", "", 400, "InvalidBucketName"),
        ("GET", "/{bucket}", "cors", 501, "NotImplemented"),
        ("POST", "/{bucket}/k", "", 405, "MethodNotAllowed"),
        ("GET", "/{bucket}/k", "versionId=123", 404, "NoSuchVersion"),
    ],
)
def test_error_bodies(server, bucket, method, path, query, status, code):
    path = path.format(bucket=bucket)
    reply = raw_request(server, method, path, query=query)
    assert reply.status == status, reply
    _assert_ids(reply)
    assert reply.headers["content-type"] == "application/xml"
    fields = error_fields(reply.body)
    assert fields["Code"] == code
    assert fields["Message"]
    assert fields["Resource"] == path
    assert fields["RequestId"] == reply.headers["x-amz-request-id"]
    # A HEAD gets the status and the ids, without a body.
    if method == "GET":
        head = raw_request(server, "HEAD", path, query=query)
        assert head.status == status and head.body == b""
        _assert_ids(head)


@pytest.mark.parametrize(
    ("path_of", "query", "extra", "code"),
    [
        (lambda b: f"/{b}-missing/k", "", {}, "NoSuchBucket"),
        (lambda b: f"/{b}/k", "legal-hold", {}, "NotImplemented"),
        (lambda b: f"/{b}/k", "", {"x-amz-acl": "authenticated-read"}, "NotImplemented"),
        (lambda b: f"/{b}/k", "", {"Content-MD5": "bad"}, "InvalidDigest"),
    ],
    ids=["no-bucket", "subresource", "acl", "bad-md5"],
)
def test_error_before_body_keeps_connection_framed(server, s3, bucket, path_of, query, extra, code):
    """An error answered before the request body was read: the unread body must not be taken
    for the next request on the same kept-alive connection."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"the object")
    path = path_of(bucket)
    body = b"GET /x HTTP/1.1\r\nHost: evil\r\n\r\n" * 8000  # looks like requests if misread
    headers = sign(server, "PUT", path, query=query, body=body, headers=extra)
    headers["Content-Length"] = str(len(body))
    get_headers = sign(server, "GET", object_path(bucket, "k"))
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", f"{path}?{query}" if query else path, headers) + body)
        first = read_reply(sock)
        assert first is not None and first.code == code, first
        if first.headers.get("connection", "").lower() == "close":
            return  # the server chose to close the connection instead: also correct
        try:
            sock.sendall(raw_head("GET", object_path(bucket, "k"), get_headers))
        except (BrokenPipeError, ConnectionResetError):
            return
        second = read_reply(sock)
    if second is not None:
        assert (second.status, second.body) == (200, b"the object"), second
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"the object"


SSE_KEY = base64.b64encode(b"k" * 32).decode()
SSE_KEY_MD5 = base64.b64encode(hashlib.md5(b"k" * 32).digest()).decode()


def _with_headers(s3, event: str, headers: dict[str, str]):
    """Add raw headers to one kind of call before it is signed (as s3-tests does)."""

    def add(request, **_):
        for name, value in headers.items():
            request.headers[name] = value

    s3.meta.events.register(f"before-sign.s3.{event}", add)
    return lambda: s3.meta.events.unregister(f"before-sign.s3.{event}", add)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        (  # a customer key without its algorithm
            {
                "x-amz-server-side-encryption-customer-key": SSE_KEY,
                "x-amz-server-side-encryption-customer-key-md5": SSE_KEY_MD5,
            },
            "InvalidArgument",
        ),
        (  # a KMS key id without aws:kms
            {"x-amz-server-side-encryption-aws-kms-key-id": "my-key"},
            "InvalidArgument",
        ),
        ({"x-amz-server-side-encryption-customer-algorithm": "AES256"}, "NotImplemented"),
        ({"x-amz-server-side-encryption-context": "e30="}, "InvalidArgument"),
    ],
    ids=["sse-c-key-only", "kms-key-id-only", "sse-c-algorithm", "kms-context-only"],
)
def test_encryption_headers_are_refused_never_ignored(server, s3, bucket, headers, code):
    """Any server-side encryption header on a write is refused (s3free stores nothing
    encrypted): a partial scheme with AWS's 400 InvalidArgument, a whole one NotImplemented."""
    undo = _with_headers(s3, "PutObject", headers)
    try:
        with pytest.raises(ClientError) as info:
            s3.put_object(Bucket=bucket, Key="obj", Body=b"x" * 1000)
    finally:
        undo()
    assert client_error(info)[0] == code
    assert_nothing_left(server, s3, bucket, "obj")


def test_customer_key_on_a_read_is_refused(server, s3, bucket):
    """No object is stored encrypted, so SSE-C headers on GET/HEAD never apply (AWS: 400
    InvalidRequest), rather than being ignored."""
    s3.put_object(Bucket=bucket, Key="plain", Body=b"data")
    sse_c = {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": SSE_KEY,
        "x-amz-server-side-encryption-customer-key-md5": SSE_KEY_MD5,
    }
    for event, call in (
        ("GetObject", lambda: s3.get_object(Bucket=bucket, Key="plain")),
        ("HeadObject", lambda: s3.head_object(Bucket=bucket, Key="plain")),
    ):
        undo = _with_headers(s3, event, sse_c)
        try:
            with pytest.raises(ClientError) as info:
                call()
        finally:
            undo()
        assert client_error(info)[1] == 400, event
    assert s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"data"
