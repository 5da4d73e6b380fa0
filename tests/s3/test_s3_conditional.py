"""Conditional requests against a real server.

Reads (GET and HEAD): If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, with
S3's documented precedence (If-Match true + If-Unmodified-Since false -> 200; If-None-Match
false + If-Modified-Since true -> 304) and RFC 7232's (a date condition is ignored when the
matching ETag condition is present; an unparseable date is ignored).

Writes: PutObject and CompleteMultipartUpload with If-None-Match: * and If-Match: <ETag>
(mismatch -> 412 PreconditionFailed; If-Match with no object at the key -> 404 NoSuchKey, per
the S3 user guide's "conditional write behavior"), CopyObject with If-None-Match: *, and a race
of creators of which exactly one wins.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
from datetime import UTC, timedelta
from email.utils import format_datetime

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

OTHER_ETAG = '"0123456789abcdef0123456789abcdef"'
BODY = b"conditional body"


@pytest.fixture
def obj(s3, bucket):
    s3.put_object(Bucket=bucket, Key="c", Body=BODY)
    head = s3.head_object(Bucket=bucket, Key="c")
    assert head["ETag"] == f'"{hashlib.md5(BODY).hexdigest()}"'
    return head


def _read(s3, bucket, method: str, **conditions):
    """(status, body or None) of a GET or HEAD with conditions; 304/412 come as ClientError."""
    call = s3.get_object if method == "GET" else s3.head_object
    try:
        response = call(Bucket=bucket, Key="c", **conditions)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"], exc.response
    body = response["Body"].read() if method == "GET" else None
    return response["ResponseMetadata"]["HTTPStatusCode"], body


def _cases(head):
    mtime = head["LastModified"]
    etag = head["ETag"]
    past, future = mtime - timedelta(hours=1), mtime + timedelta(hours=1)
    return [
        # (conditions, expected status)
        ({"IfMatch": etag}, 200),
        ({"IfMatch": etag.strip('"')}, 200),  # unquoted ETag
        ({"IfMatch": "*"}, 200),
        ({"IfMatch": f"{OTHER_ETAG}, {etag}"}, 200),  # a list
        ({"IfMatch": OTHER_ETAG}, 412),
        ({"IfNoneMatch": etag}, 304),
        ({"IfNoneMatch": "*"}, 304),
        ({"IfNoneMatch": OTHER_ETAG}, 200),
        ({"IfModifiedSince": mtime}, 304),  # not modified since its own mtime
        ({"IfModifiedSince": past}, 200),
        ({"IfUnmodifiedSince": past}, 412),
        ({"IfUnmodifiedSince": mtime}, 200),
        ({"IfUnmodifiedSince": future}, 200),
        # S3's documented precedence
        ({"IfMatch": etag, "IfUnmodifiedSince": past}, 200),
        ({"IfNoneMatch": etag, "IfModifiedSince": past}, 304),
        ({"IfMatch": OTHER_ETAG, "IfUnmodifiedSince": future}, 412),
        ({"IfMatch": OTHER_ETAG, "IfNoneMatch": etag}, 412),  # 412 is checked first
        # RFC 7232 3.3: If-Modified-Since is ignored when If-None-Match is present
        ({"IfNoneMatch": OTHER_ETAG, "IfModifiedSince": mtime}, 200),
    ]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_read_conditions(s3, bucket, obj, method):
    for conditions, expected in _cases(obj):
        status, result = _read(s3, bucket, method, **conditions)
        assert status == expected, (method, conditions, result)
        if status == 200 and method == "GET":
            assert result == BODY
        if status == 412 and method == "GET":
            assert result["Error"]["Code"] == "PreconditionFailed"
        if status == 304:
            # A 304 carries the ETag and Last-Modified, and no body.
            headers = result["ResponseMetadata"]["HTTPHeaders"]
            assert headers.get("etag") == obj["ETag"]
            assert headers.get("last-modified")
            assert headers.get("x-amz-request-id")


def test_not_modified_has_no_body(server, bucket, obj):
    reply = raw_request(server, "GET", object_path(bucket, "c"), headers={"If-None-Match": "*"})
    assert reply.status == 304
    assert reply.body == b""
    assert reply.headers["etag"] == obj["ETag"]


@pytest.mark.parametrize(
    "header",
    ["If-Modified-Since", "If-Unmodified-Since"],
)
def test_unparseable_dates_are_ignored(server, bucket, obj, header):
    reply = raw_request(server, "GET", object_path(bucket, "c"), headers={header: "yesterday"})
    assert reply.status == 200 and reply.body == BODY


def test_dates_in_other_http_formats(server, bucket, obj):
    """RFC 7231 dates: IMF-fixdate, and the obsolete RFC 850 and asctime forms."""
    mtime = obj["LastModified"]
    later = mtime + timedelta(days=1)
    for value in (
        format_datetime(later.astimezone(UTC), usegmt=True),
        later.strftime("%A, %d-%b-%y %H:%M:%S GMT"),
        f"{later:%a %b} {later.day:2d} {later:%H:%M:%S %Y}",  # asctime
    ):
        reply = raw_request(
            server, "GET", object_path(bucket, "c"), headers={"If-Modified-Since": value}
        )
        assert reply.status == 304, (value, reply)


def test_conditions_on_missing_object(s3, bucket):
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="none", IfMatch=OTHER_ETAG)
    assert client_error(info) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="none", IfNoneMatch="*")
    assert client_error(info) == ("NoSuchKey", 404)


def test_range_with_if_match(s3, bucket, obj):
    got = s3.get_object(Bucket=bucket, Key="c", Range="bytes=0-3", IfMatch=obj["ETag"])
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == BODY[:4]
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=bucket, Key="c", Range="bytes=0-3", IfMatch=OTHER_ETAG)
    assert client_error(info) == ("PreconditionFailed", 412)


# ---------------------------------------------------------------------------------------------
# Conditional writes


def _assert_unchanged(server, s3, bucket, key, body, dirs_before):
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    # No new version directory (an older one may still be on its way out).
    wait_until(
        lambda: set(version_dirs(server, bucket, key)) <= set(dirs_before),
        what="the failed write's version dir removed",
    )


def test_put_if_none_match_star(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="new", Body=b"first", IfNoneMatch="*")
    dirs = version_dirs(server, bucket, "new")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="new", Body=b"second" * 1000, IfNoneMatch="*")
    assert client_error(info) == ("PreconditionFailed", 412)
    _assert_unchanged(server, s3, bucket, "new", b"first", dirs)


def test_put_if_none_match_after_delete(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"


def test_put_if_match(server, s3, bucket):
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=first)["ETag"]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    dirs = version_dirs(server, bucket, "k")
    # The first ETag is stale now.
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=first)
    assert client_error(info) == ("PreconditionFailed", 412)
    _assert_unchanged(server, s3, bucket, "k", b"v2", dirs)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=second)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v3"


def test_put_if_match_missing_object(server, s3, bucket):
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"data", IfMatch=OTHER_ETAG)
    assert client_error(info) == ("NoSuchKey", 404)
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    wait_until(lambda: not version_dirs(server, bucket, "absent"), what="no version dir")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_put_if_none_match_etag_is_refused(server, s3, bucket):
    """On writes If-None-Match takes only '*'."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfNoneMatch=OTHER_ETAG)
    code, status = client_error(info)
    assert (code, status) in (("NotImplemented", 501), ("InvalidRequest", 400))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"


def test_copy_if_none_match_star(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    s3.put_object(Bucket=bucket, Key="dst", Body=b"existing")
    dirs = version_dirs(server, bucket, "dst")
    with pytest.raises(ClientError) as info:
        s3.copy_object(
            Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*"
        )
    assert client_error(info) == ("PreconditionFailed", 412)
    _assert_unchanged(server, s3, bucket, "dst", b"existing", dirs)
    s3.copy_object(
        Bucket=bucket, Key="fresh", CopySource={"Bucket": bucket, "Key": "src"}, IfNoneMatch="*"
    )
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == b"source"


def test_concurrent_creates_with_if_none_match_one_wins(server, s3, bucket):
    """Eight writers race to create the same key with If-None-Match: *. Exactly one succeeds;
    the others get 412 (or 409 ConditionalRequestConflict, which S3 may also answer), and the
    object is the winner's."""
    writers = 8
    barrier = threading.Barrier(writers, timeout=20)
    bodies = [bytes([65 + i]) * 300_000 for i in range(writers)]

    def create(i: int):
        barrier.wait()
        try:
            return s3.put_object(Bucket=bucket, Key="race", Body=bodies[i], IfNoneMatch="*")["ETag"]
        except ClientError as exc:
            return client_error_of(exc)

    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        results = list(pool.map(create, range(writers)))
    winners = [i for i, r in enumerate(results) if isinstance(r, str)]
    assert len(winners) == 1, results
    losers = [r for r in results if not isinstance(r, str)]
    assert all(
        r in (("PreconditionFailed", 412), ("ConditionalRequestConflict", 409)) for r in losers
    )
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == bodies[winners[0]]
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    wait_until(lambda: len(version_dirs(server, bucket, "race")) <= 4, what="loser dirs removed")
    # One version: as many directories as shards, all of the same version.
    assert len({p.name for p in version_dirs(server, bucket, "race")}) == 1


def client_error_of(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


# ---------------------------------------------------------------------------------------------
# CompleteMultipartUpload


def _upload(s3, bucket: str, key: str, body: bytes) -> tuple[str, dict]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=body)[
        "ETag"
    ]
    return upload_id, {"Parts": [{"PartNumber": 1, "ETag": etag}]}


def test_complete_if_none_match_star(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="mp", Body=b"existing")
    dirs = version_dirs(server, bucket, "mp")
    upload_id, parts = _upload(s3, bucket, "mp", b"from the upload")
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch="*"
        )
    assert client_error(info) == ("PreconditionFailed", 412)
    _assert_unchanged(server, s3, bucket, "mp", b"existing", dirs)
    # The upload was not consumed by the failed attempt: it can still complete.
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"from the upload"


def test_complete_if_none_match_star_new_key(s3, bucket):
    upload_id, parts = _upload(s3, bucket, "mp-new", b"fresh")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp-new", UploadId=upload_id, MultipartUpload=parts, IfNoneMatch="*"
    )
    assert s3.get_object(Bucket=bucket, Key="mp-new")["Body"].read() == b"fresh"


def test_complete_if_match(server, s3, bucket):
    current = s3.put_object(Bucket=bucket, Key="mp", Body=b"v1")["ETag"]
    dirs = version_dirs(server, bucket, "mp")
    upload_id, parts = _upload(s3, bucket, "mp", b"v2 from the upload")
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts, IfMatch=OTHER_ETAG
        )
    assert client_error(info) == ("PreconditionFailed", 412)
    _assert_unchanged(server, s3, bucket, "mp", b"v1", dirs)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload=parts, IfMatch=current
    )
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"v2 from the upload"


def test_complete_if_match_missing_object(server, s3, bucket):
    upload_id, parts = _upload(s3, bucket, "mp-absent", b"data")
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp-absent",
            UploadId=upload_id,
            MultipartUpload=parts,
            IfMatch=OTHER_ETAG,
        )
    assert client_error(info) == ("NoSuchKey", 404)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="mp-absent")
    s3.abort_multipart_upload(Bucket=bucket, Key="mp-absent", UploadId=upload_id)
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    wait_until(lambda: not version_dirs(server, bucket, "mp-absent"), what="no version dir")
