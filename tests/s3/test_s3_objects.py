"""Object operations through boto3 against a real server: PutObject / GetObject / HeadObject
(ranges, partNumber, stored headers and metadata, response-* overrides, versionId=null),
DeleteObject, DeleteObjects and CopyObject."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.s3.raw import (
    client_error,
    object_path,
    raw_request,
    temp_files,
    version_dirs,
    wait_until,
)

DATA = bytes(range(256)) * 4 + b"tail!"  # 1029 bytes, every byte value
MiB = 1024 * 1024


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def multipart_etag(parts: list[bytes]) -> str:
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def headers_of(response) -> dict[str, str]:
    return response["ResponseMetadata"]["HTTPHeaders"]


# ---------------------------------------------------------------------------------------------
# Put, get, head


def test_put_get_head_roundtrip(s3, bucket):
    before = datetime.now(UTC).replace(microsecond=0)
    put = s3.put_object(Bucket=bucket, Key="obj", Body=DATA)
    assert put["ETag"] == md5_etag(DATA)
    got = s3.get_object(Bucket=bucket, Key="obj")
    assert got["Body"].read() == DATA
    assert got["ETag"] == md5_etag(DATA)
    assert got["ContentLength"] == len(DATA)
    assert got["ContentType"] == "binary/octet-stream"  # S3's default
    assert got["AcceptRanges"] == "bytes"
    assert before - timedelta(seconds=1) <= got["LastModified"] <= datetime.now(UTC)
    head = s3.head_object(Bucket=bucket, Key="obj")
    for field in ("ETag", "ContentLength", "ContentType", "LastModified"):
        assert head[field] == got[field]
    assert headers_of(head)["content-length"] == str(len(DATA))


def test_empty_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == md5_etag(b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0
    assert s3.head_object(Bucket=bucket, Key="empty")["ContentLength"] == 0


def test_overwrite_replaces_content_and_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", Metadata={"a": "1"}, ContentType="x/y")
    s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"second"
    assert got["Metadata"] == {}
    assert got["ContentType"] == "binary/octet-stream"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


@pytest.mark.parametrize(
    "key",
    [
        "plain",
        "dir/sub/file.txt",
        "spaces and+plus=eq&amp;",
        "percent%20not-decoded%",
        "unicode-ü-€-日本語-😀",
        "a/../b",
        "./dot",
        "double//slash",
        "trailing/",
        "question?mark#hash",
        "tilde~star*quote'paren()",
    ],
)
def test_key_names_roundtrip(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == len(key.encode())
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
    s3.delete_object(Bucket=bucket, Key=key)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_get_and_head_missing(s3, bucket):
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="missing")
    assert client_error(info) == ("NoSuchKey", 404)
    assert info.value.response["Error"].get("Key", "missing") == "missing"
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=bucket, Key="missing")
    assert client_error(info) == ("404", 404)
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket + "-nope", Key="k")
    assert client_error(info) == ("NoSuchBucket", 404)


# ---------------------------------------------------------------------------------------------
# Ranges


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=3-7", 3, 7),
        ("bytes=1000-", 1000, 1028),
        ("bytes=-4", 1025, 1028),
        ("bytes=1020-99999", 1020, 1028),  # end past the object: clipped
        ("bytes=-99999", 0, 1028),  # suffix longer than the object: all of it
        ("bytes=1028-1028", 1028, 1028),
    ],
)
def test_range_get(s3, bucket, header, first, last):
    s3.put_object(Bucket=bucket, Key="r", Body=DATA)
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {first}-{last}/{len(DATA)}"
    assert got["ContentLength"] == last - first + 1
    assert got["Body"].read() == DATA[first : last + 1]
    assert got["ETag"] == md5_etag(DATA)
    head = s3.head_object(Bucket=bucket, Key="r", Range=header)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentRange"] == f"bytes {first}-{last}/{len(DATA)}"
    assert head["ContentLength"] == last - first + 1


@pytest.mark.parametrize("header", ["bytes=1029-", "bytes=5000-6000", "bytes=-0"])
def test_range_not_satisfiable(s3, bucket, header):
    s3.put_object(Bucket=bucket, Key="r", Body=DATA)
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert client_error(info) == ("InvalidRange", 416)
    assert headers_of(info.value.response).get("content-range") == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=7-3", "items=0-5", "bytes=0-1,4-5", "bytes=abc"])
def test_range_ignored_when_invalid(s3, bucket, header):
    """RFC 7233: a Range the server does not understand (or several ranges, which S3 does not
    serve) is ignored: 200 with the whole object."""
    s3.put_object(Bucket=bucket, Key="r", Body=DATA)
    got = s3.get_object(Bucket=bucket, Key="r", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "ContentRange" not in got
    assert got["Body"].read() == DATA


def test_range_on_empty_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="e", Body=b"")
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="e", Range="bytes=0-")
    assert client_error(info) == ("InvalidRange", 416)


@pytest.fixture
def multipart_object(s3, bucket):
    parts = [b"1" * (5 * MiB), b"2" * 1000]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=i, Body=p)["ETag"]
        for i, p in enumerate(parts, 1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]},
    )
    return parts


def test_get_part_number(s3, bucket, multipart_object):
    parts = multipart_object
    total = sum(len(p) for p in parts)
    offset = 0
    for number, data in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 2
        assert got["ContentLength"] == len(data)
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(data) - 1}/{total}"
        assert got["ETag"] == multipart_etag(parts)
        assert got["Body"].read() == data
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert head["ContentLength"] == len(data)
        assert head["PartsCount"] == 2
        offset += len(data)
    whole = s3.get_object(Bucket=bucket, Key="mp")
    assert whole["ContentLength"] == total
    assert whole["ETag"] == multipart_etag(parts)


def test_get_part_number_out_of_range(s3, bucket, multipart_object):
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=3)
    assert client_error(info) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket=bucket, Key="mp", PartNumber=3)
    assert client_error(info)[1] == 416


def test_part_number_and_range_together_refused(s3, bucket, multipart_object):
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=1, Range="bytes=0-10")
    assert client_error(info)[1] == 400


@pytest.mark.parametrize("value", ["0", "10001", "abc", "-1"])
def test_part_number_invalid_value(server, bucket, s3, value):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    reply = raw_request(server, "GET", object_path(bucket, "k"), query=f"partNumber={value}")
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply


# ---------------------------------------------------------------------------------------------
# Stored headers, metadata, response overrides


def test_metadata_and_standard_headers_stored_and_returned(s3, bucket):
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    s3.put_object(
        Bucket=bucket,
        Key="meta",
        Body=b"compressed, supposedly",
        ContentType="text/plain; charset=utf-8",
        ContentEncoding="compress",
        ContentDisposition='attachment; filename="report.txt"',
        ContentLanguage="de-CH",
        CacheControl="max-age=3600, must-revalidate",
        Expires=expires,
        Metadata={"Project": "Apollo", "empty": "", "with-dash": "v a l u e"},
    )
    for response in (
        s3.get_object(Bucket=bucket, Key="meta"),
        s3.head_object(Bucket=bucket, Key="meta"),
    ):
        assert response["ContentType"] == "text/plain; charset=utf-8"
        assert response["ContentEncoding"] == "compress"
        assert response["ContentDisposition"] == 'attachment; filename="report.txt"'
        assert response["ContentLanguage"] == "de-CH"
        assert response["CacheControl"] == "max-age=3600, must-revalidate"
        assert response["Expires"] == expires
        # Metadata names come back lower-cased, as S3 stores them.
        assert response["Metadata"] == {"project": "Apollo", "empty": "", "with-dash": "v a l u e"}
    assert s3.get_object(Bucket=bucket, Key="meta")["Body"].read() == b"compressed, supposedly"


def _deflate(data: bytes) -> bytes:
    import zlib

    return zlib.compress(data)


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", _gzip(b"hello " * 1000)),
        ("deflate", _deflate(b"hello " * 1000)),
        ("gzip", b"\x1f\x8b but not gzip at all"),
        ("br", b"not brotli either"),
    ],
    ids=["gzip", "deflate", "bad-gzip", "bad-br"],
)
def test_content_encoding_body_stored_as_sent(s3, bucket, encoding, body):
    """Content-Encoding describes the object, not the transfer: S3 stores the bytes as sent
    (already compressed, or not valid in that encoding at all) and returns them unchanged,
    with the ETag of those bytes."""
    put = s3.put_object(Bucket=bucket, Key="enc", Body=body, ContentEncoding=encoding)
    assert put["ETag"] == md5_etag(body)
    got = s3.get_object(Bucket=bucket, Key="enc")
    assert got["ContentEncoding"] == encoding
    assert got["ContentLength"] == len(body)
    assert got["Body"].read() == body


def test_response_overrides(s3, bucket):
    s3.put_object(
        Bucket=bucket, Key="o", Body=b"body", ContentType="text/plain", CacheControl="no-cache"
    )
    overrides = dict(
        ResponseContentType="application/json",
        ResponseContentLanguage="fr",
        ResponseExpires=datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC),
        ResponseCacheControl="max-age=1",
        ResponseContentDisposition="inline; filename=x.json",
        ResponseContentEncoding="identity",
    )
    for response in (
        s3.get_object(Bucket=bucket, Key="o", **overrides),
        s3.head_object(Bucket=bucket, Key="o", **overrides),
    ):
        assert response["ContentType"] == "application/json"
        assert response["ContentLanguage"] == "fr"
        assert response["Expires"] == datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
        assert response["CacheControl"] == "max-age=1"
        assert response["ContentDisposition"] == "inline; filename=x.json"
        assert response["ContentEncoding"] == "identity"
    # The overrides change the response only, not the object.
    head = s3.head_object(Bucket=bucket, Key="o")
    assert head["ContentType"] == "text/plain" and head["CacheControl"] == "no-cache"
    assert "ContentLanguage" not in head


# ---------------------------------------------------------------------------------------------
# versionId=null (no versioning: every object is the null version)


def test_version_id_null_on_get_head_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="v", Body=b"versioned?")
    assert s3.get_object(Bucket=bucket, Key="v", VersionId="null")["Body"].read() == b"versioned?"
    assert s3.head_object(Bucket=bucket, Key="v", VersionId="null")["ContentLength"] == 10
    s3.delete_object(Bucket=bucket, Key="v", VersionId="null")
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="v")
    assert client_error(info) == ("NoSuchKey", 404)


def test_other_version_id_is_not_served(s3, bucket):
    s3.put_object(Bucket=bucket, Key="v", Body=b"x")
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="v", VersionId="3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
    code, status = client_error(info)
    assert (code, status) in (("NoSuchVersion", 404), ("InvalidArgument", 400))
    # A delete naming another version must not delete the object.
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="v", VersionId="3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY")
    assert s3.get_object(Bucket=bucket, Key="v")["Body"].read() == b"x"


# ---------------------------------------------------------------------------------------------
# Delete


def test_delete_object_is_idempotent(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="d", Body=b"x" * 5000)
    assert version_dirs(server, bucket, "d")
    assert s3.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="d")
    assert client_error(info) == ("NoSuchKey", 404)
    assert s3.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key="never")["ResponseMetadata"]["HTTPStatusCode"] == 204
    # The deleted version's files go away.
    wait_until(lambda: not version_dirs(server, bucket, "d"), what="version dir removed")


def test_delete_objects_verbose(s3, bucket):
    for key in ("a", "b", "dir/c"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.put_object(Bucket=bucket, Key="keep", Body=b"keep")
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "dir/c"}, {"Key": "missing"}]},
    )
    # S3 reports a key that did not exist as deleted too.
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "b", "dir/c", "missing"]
    assert "Errors" not in result
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]


def test_delete_objects_quiet(s3, bucket):
    for key in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}], "Quiet": True}
    )
    assert "Deleted" not in result and "Errors" not in result
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_objects_version_id_null_and_per_key_errors(s3, bucket):
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    bogus = "3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"
    for quiet in (False, True):
        result = s3.delete_objects(
            Bucket=bucket,
            Delete={
                "Objects": [
                    {"Key": "a", "VersionId": "null"},
                    {"Key": "b", "VersionId": bogus},
                    {"Key": "c"},
                ],
                "Quiet": quiet,
            },
        )
        # Errors are reported even in quiet mode; the other keys are still processed.
        errors = result.get("Errors", [])
        assert [(e["Key"], e.get("VersionId")) for e in errors] == [("b", bogus)]
        assert errors[0]["Code"] == "NoSuchVersion"
        if quiet:
            assert "Deleted" not in result
        else:
            deleted = {d["Key"]: d.get("VersionId") for d in result["Deleted"]}
            assert deleted == {"a": "null", "c": None}
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["b"]


def test_delete_objects_special_keys(s3, bucket):
    keys = ["a&b<c>", "ü/€", "with space", "quote\"'"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted(keys)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


# ---------------------------------------------------------------------------------------------
# Copy


@pytest.fixture
def source(s3, bucket):
    s3.put_object(
        Bucket=bucket,
        Key="src/ü x+y.txt",
        Body=DATA,
        ContentType="text/x-source",
        CacheControl="max-age=5",
        ContentDisposition="inline",
        Metadata={"origin": "source", "n": "1"},
    )
    return {"Bucket": bucket, "Key": "src/ü x+y.txt"}


def test_copy_same_bucket_copies_metadata(s3, bucket, source):
    result = s3.copy_object(Bucket=bucket, Key="dst", CopySource=source)
    assert result["CopyObjectResult"]["ETag"] == md5_etag(DATA)
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == DATA
    assert got["ContentType"] == "text/x-source"
    assert got["CacheControl"] == "max-age=5"
    assert got["ContentDisposition"] == "inline"
    assert got["Metadata"] == {"origin": "source", "n": "1"}
    # The source is unchanged.
    assert s3.get_object(Bucket=bucket, Key=source["Key"])["Body"].read() == DATA


def test_copy_to_other_bucket(s3, bucket, bucket_name, source):
    other = bucket_name + "-dst"
    s3.create_bucket(Bucket=other)
    s3.copy_object(Bucket=other, Key="copied", CopySource=source)
    got = s3.get_object(Bucket=other, Key="copied")
    assert got["Body"].read() == DATA
    assert got["Metadata"] == {"origin": "source", "n": "1"}


def test_copy_with_version_id_null(s3, bucket, source):
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={**source, "VersionId": "null"})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == DATA


def test_copy_replace_metadata(s3, bucket, source):
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource=source,
        MetadataDirective="REPLACE",
        ContentType="application/x-new",
        Metadata={"fresh": "yes"},
    )
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == DATA
    assert got["ContentType"] == "application/x-new"
    assert got["Metadata"] == {"fresh": "yes"}
    assert "CacheControl" not in got  # REPLACE takes nothing from the source


def test_copy_onto_itself(s3, bucket, source):
    with pytest.raises(ClientError) as info:
        s3.copy_object(Bucket=bucket, Key=source["Key"], CopySource=source)
    assert client_error(info) == ("InvalidRequest", 400)
    # With REPLACE it is how S3 changes an object's metadata.
    s3.copy_object(
        Bucket=bucket,
        Key=source["Key"],
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"changed": "true"},
    )
    got = s3.get_object(Bucket=bucket, Key=source["Key"])
    assert got["Body"].read() == DATA
    assert got["Metadata"] == {"changed": "true"}
    assert got["ETag"] == md5_etag(DATA)


def test_copy_bad_metadata_directive(server, s3, bucket, source):
    from urllib.parse import quote

    reply = raw_request(
        server,
        "PUT",
        object_path(bucket, "dst"),
        headers={
            "x-amz-copy-source": quote(f"/{bucket}/{source['Key']}"),
            "x-amz-metadata-directive": "MERGE",
        },
    )
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply


def test_copy_missing_source(s3, bucket, bucket_name):
    with pytest.raises(ClientError) as info:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "none"})
    assert client_error(info) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as info:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": bucket_name + "-no", "Key": "k"}
        )
    assert client_error(info) == ("NoSuchBucket", 404)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def _past(head) -> datetime:
    return head["LastModified"] - timedelta(hours=1)


def _future(head) -> datetime:
    return head["LastModified"] + timedelta(hours=1)


@pytest.mark.parametrize(
    "condition",
    ["if-match-wrong", "if-none-match-same", "if-modified-since-future", "if-unmodified-past"],
)
def test_copy_source_conditions_fail(server, s3, bucket, source, condition):
    head = s3.head_object(**source)
    kwargs = {
        "if-match-wrong": {"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
        "if-none-match-same": {"CopySourceIfNoneMatch": head["ETag"]},
        "if-modified-since-future": {"CopySourceIfModifiedSince": _future(head)},
        "if-unmodified-past": {"CopySourceIfUnmodifiedSince": _past(head)},
    }[condition]
    with pytest.raises(ClientError) as info:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, **kwargs)
    assert client_error(info) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="dst")
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    assert not version_dirs(server, bucket, "dst")


def test_copy_source_conditions_hold(s3, bucket, source):
    head = s3.head_object(**source)
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource=source,
        CopySourceIfMatch=head["ETag"],
        CopySourceIfUnmodifiedSince=_future(head),
    )
    s3.copy_object(
        Bucket=bucket,
        Key="dst2",
        CopySource=source,
        CopySourceIfNoneMatch='"0123456789abcdef0123456789abcdef"',
        CopySourceIfModifiedSince=_past(head),
    )
    # S3's precedence: if-match true and if-unmodified-since false -> the copy is made.
    s3.copy_object(
        Bucket=bucket,
        Key="dst3",
        CopySource=source,
        CopySourceIfMatch=head["ETag"],
        CopySourceIfUnmodifiedSince=_past(head),
    )
    for key in ("dst", "dst2", "dst3"):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == DATA
    # ...and if-none-match false with if-modified-since true -> 412.
    with pytest.raises(ClientError) as info:
        s3.copy_object(
            Bucket=bucket,
            Key="dst4",
            CopySource=source,
            CopySourceIfNoneMatch=head["ETag"],
            CopySourceIfModifiedSince=_past(head),
        )
    assert client_error(info) == ("PreconditionFailed", 412)


def test_copy_multipart_source(s3, bucket, multipart_object):
    s3.copy_object(Bucket=bucket, Key="mp-copy", CopySource={"Bucket": bucket, "Key": "mp"})
    got = s3.get_object(Bucket=bucket, Key="mp-copy")
    assert got["Body"].read() == b"".join(multipart_object)


@pytest.mark.parametrize(
    "key", ["what?versionId=abc", "100% sure", "a+b c", "ü/€/日本", "hash#tag", "dots/../x"]
)
def test_copy_source_keys_with_special_characters(s3, bucket, key):
    """The copy source is URL-encoded: an encoded '?' is part of the key, not the start of a
    query, and '%' / '+' decode once."""
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == key.encode()
