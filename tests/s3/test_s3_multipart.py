"""Multipart uploads against a real server, driven by boto3: create, upload (and copy) parts,
complete with S3's ETag, the errors S3 defines, abort, ListParts, GetObject by part number, and
boto3's managed transfer. The server's minimum part size is S3's 5 MiB."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.s3.users_support import code_of, status_of

MiB = 1024 * 1024
MIN_PART = 5 * MiB
_BASE = os.urandom(MIN_PART + MiB)


def part_data(number: int, size: int) -> bytes:
    """`size` bytes, different for every part number (so a part out of place shows)."""
    assert size <= len(_BASE)
    tag = number.to_bytes(4, "big")
    return (tag + _BASE[4:size])[:size] if size >= 4 else tag[:size]


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    """S3's ETag of a multipart object: MD5 of the concatenated binary part MD5s, a dash, and
    the number of parts."""
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def upload(s3, bucket, key, parts: list[bytes], **create) -> tuple[str, list[dict]]:
    """Create an upload and upload the parts (numbered from 1); (upload id, Parts for Complete)."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        etag = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        assert etag == f'"{md5_hex(data)}"'
        done.append({"PartNumber": number, "ETag": etag})
    return upload_id, done


def complete(s3, bucket, key, upload_id, parts):
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def expect_error(code: str, call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    assert code_of(exc) == code, exc.value.response
    return exc.value


def read(s3, bucket, key, **kwargs) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()


# -- the whole cycle ---------------------------------------------------------------------------


def test_complete_assembles_parts_with_s3_etag(s3, bucket):
    parts = [part_data(1, MIN_PART), part_data(2, MIN_PART), part_data(3, 1000)]
    upload_id, done = upload(
        s3,
        bucket,
        "big",
        parts,
        ContentType="application/x-test",
        Metadata={"colour": "blue"},
        CacheControl="max-age=60",
    )
    result = complete(s3, bucket, "big", upload_id, done)
    assert result["ETag"] == multipart_etag(parts)
    assert result["Bucket"] == bucket and result["Key"] == "big"
    assert result["Location"].endswith(f"/{bucket}/big")

    body = b"".join(parts)
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["Body"].read() == body
    assert got["ETag"] == multipart_etag(parts)
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"colour": "blue"}
    assert got["CacheControl"] == "max-age=60"
    (listed,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert (listed["Key"], listed["Size"], listed["ETag"]) == ("big", len(body), result["ETag"])
    # Ranges across the part boundaries read the right bytes.
    edge = MIN_PART - 3
    assert read(s3, bucket, "big", Range=f"bytes={edge}-{edge + 9}") == body[edge : edge + 10]
    assert read(s3, bucket, "big", Range="bytes=-1500") == body[-1500:]
    # The upload is gone once completed.
    expect_error("NoSuchUpload", s3.list_parts, Bucket=bucket, Key="big", UploadId=upload_id)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_single_small_part_and_unquoted_etags(s3, bucket):
    """The last part may be small, so a one-part upload of any size completes; ETags in the
    Complete document may come with or without quotes."""
    upload_id, done = upload(s3, bucket, "one", [b"tiny"])
    done[0]["ETag"] = done[0]["ETag"].strip('"')
    assert complete(s3, bucket, "one", upload_id, done)["ETag"] == multipart_etag([b"tiny"])
    assert read(s3, bucket, "one") == b"tiny"


def test_repeated_complete_answers_the_same_object(s3, bucket):
    """A CompleteMultipartUpload retried after it succeeded (the client lost the answer)
    answers success with the same ETag, as S3 does, instead of NoSuchUpload; a different
    parts list, or the upload's object replaced since, still gets NoSuchUpload."""
    upload_id, done = upload(s3, bucket, "k", [part_data(1, MIN_PART), b"x"])
    first = complete(s3, bucket, "k", upload_id, done)
    again = complete(s3, bucket, "k", upload_id, done)
    assert again["ETag"] == first["ETag"]
    assert read(s3, bucket, "k")[-1:] == b"x"
    expect_error("NoSuchUpload", complete, s3, bucket, "k", upload_id, done[:1])
    s3.put_object(Bucket=bucket, Key="k", Body=b"replaced")
    expect_error("NoSuchUpload", complete, s3, bucket, "k", upload_id, done)
    assert read(s3, bucket, "k") == b"replaced"


def test_complete_replaces_an_existing_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"old", Metadata={"old": "yes"})
    upload_id, done = upload(s3, bucket, "k", [b"new"])
    # Until completion the old object is what readers see.
    assert read(s3, bucket, "k") == b"old"
    complete(s3, bucket, "k", upload_id, done)
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"new" and got["Metadata"] == {}


def test_parts_may_arrive_out_of_order_and_be_replaced(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    first = part_data(1, MIN_PART)
    last_v1, last_v2 = b"last, first try", b"last, second try"
    etags = {}
    for number, data in [(3, last_v1), (1, first), (3, last_v2)]:
        etags[number] = s3.upload_part(
            Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
    stale = {"PartNumber": 3, "ETag": f'"{md5_hex(last_v1)}"'}
    expect_error(
        "InvalidPart",
        complete,
        s3,
        bucket,
        "k",
        upload_id,
        [{"PartNumber": 1, "ETag": etags[1]}, stale],
    )
    parts = [{"PartNumber": 1, "ETag": etags[1]}, {"PartNumber": 3, "ETag": etags[3]}]
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [
        (1, len(first), etags[1]),
        (3, len(last_v2), etags[3]),
    ]
    result = complete(s3, bucket, "k", upload_id, parts)
    assert result["ETag"] == multipart_etag([first, last_v2])
    assert read(s3, bucket, "k") == first + last_v2


def test_uploads_in_progress_are_invisible(s3, bucket):
    upload_id, done = upload(s3, bucket, "pending", [part_data(1, MIN_PART), b"end"])
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert "Contents" not in s3.list_objects(Bucket=bucket)
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
    expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="pending")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="pending")
    assert status_of(exc) == 404
    complete(s3, bucket, "pending", upload_id, done)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["pending"]


# -- errors on Complete ------------------------------------------------------------------------


def test_invalid_part(s3, bucket):
    data = [part_data(1, MIN_PART), b"end"]
    upload_id, done = upload(s3, bucket, "k", data)
    wrong_etag = [done[0], {"PartNumber": 2, "ETag": f'"{md5_hex(b"other")}"'}]
    never_uploaded = [*done, {"PartNumber": 7, "ETag": done[1]["ETag"]}]
    swapped = [
        {"PartNumber": 1, "ETag": done[1]["ETag"]},
        {"PartNumber": 2, "ETag": done[0]["ETag"]},
    ]
    for parts in (wrong_etag, never_uploaded, swapped):
        err = expect_error("InvalidPart", complete, s3, bucket, "k", upload_id, parts)
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="k")
    # The upload survives failed completions and completes afterwards.
    assert len(s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]) == 2
    assert complete(s3, bucket, "k", upload_id, done)["ETag"] == multipart_etag(data)


def test_invalid_part_order(s3, bucket):
    data = [part_data(1, MIN_PART), part_data(2, MIN_PART), b"end"]
    upload_id, done = upload(s3, bucket, "k", data)
    for parts in ([done[1], done[0], done[2]], [done[0], done[0], done[2]], done[::-1]):
        err = expect_error("InvalidPartOrder", complete, s3, bucket, "k", upload_id, parts)
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Skipping a part number is fine: the object is the listed parts.
    result = complete(s3, bucket, "k", upload_id, [done[0], done[2]])
    assert result["ETag"] == multipart_etag([data[0], data[2]])
    assert read(s3, bucket, "k") == data[0] + data[2]


def test_entity_too_small(s3, bucket):
    small = part_data(1, MIN_PART - 1)
    upload_id, done = upload(s3, bucket, "k", [small, b"end"])
    err = expect_error("EntityTooSmall", complete, s3, bucket, "k", upload_id, done)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="k")
    # Completing with only the small part (now the last one) is allowed.
    assert complete(s3, bucket, "k", upload_id, done[:1])["ETag"] == multipart_etag([small])
    assert read(s3, bucket, "k") == small


def test_malformed_complete_requests(s3, bucket):
    upload_id, done = upload(s3, bucket, "k", [b"x"])
    expect_error("MalformedXML", complete, s3, bucket, "k", upload_id, [])
    expect_error("NoSuchUpload", complete, s3, bucket, "k", "no-such-upload", done)
    # An upload id belongs to its key.
    expect_error("NoSuchUpload", complete, s3, bucket, "other", upload_id, done)
    expect_error(
        "NoSuchUpload",
        s3.upload_part,
        Bucket=bucket,
        Key="other",
        UploadId=upload_id,
        PartNumber=1,
        Body=b"x",
    )
    expect_error("NoSuchUpload", s3.list_parts, Bucket=bucket, Key="other", UploadId=upload_id)
    expect_error(
        "NoSuchUpload", s3.abort_multipart_upload, Bucket=bucket, Key="other", UploadId=upload_id
    )
    expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="other")
    complete(s3, bucket, "k", upload_id, done)
    assert read(s3, bucket, "k") == b"x"


def test_complete_with_precondition(s3, bucket):
    """If-None-Match: * on Complete refuses to overwrite, and the upload survives the refusal
    with all its parts, to be completed afterwards."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"existing")
    data = [part_data(1, MIN_PART), b"end"]
    upload_id, done = upload(s3, bucket, "k", data)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            IfNoneMatch="*",
        )
    assert (code_of(exc), status_of(exc)) == ("PreconditionFailed", 412)
    assert read(s3, bucket, "k") == b"existing"
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)["Parts"]
    assert [p["ETag"] for p in listed] == [p["ETag"] for p in done]
    assert complete(s3, bucket, "k", upload_id, done)["ETag"] == multipart_etag(data)
    assert read(s3, bucket, "k") == b"".join(data)
    # On a key with no object, If-None-Match: * lets the upload complete.
    upload_id, done = upload(s3, bucket, "fresh", [b"new"])
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="fresh",
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        IfNoneMatch="*",
    )
    assert read(s3, bucket, "fresh") == b"new"


# -- abort -------------------------------------------------------------------------------------


def test_abort(s3, bucket):
    upload_id, done = upload(s3, bucket, "k", [part_data(1, MIN_PART), b"end"])
    resp = s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    ident = {"Bucket": bucket, "Key": "k", "UploadId": upload_id}
    expect_error("NoSuchUpload", s3.list_parts, **ident)
    expect_error("NoSuchUpload", s3.upload_part, PartNumber=3, Body=b"late", **ident)
    expect_error("NoSuchUpload", s3.abort_multipart_upload, **ident)
    err = expect_error("NoSuchUpload", complete, s3, bucket, "k", upload_id, done)
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    expect_error("NoSuchKey", s3.get_object, Bucket=bucket, Key="k")
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    # With nothing left the bucket can be deleted.
    s3.delete_bucket(Bucket=bucket)


def test_delete_bucket_with_upload_in_progress(s3, bucket):
    """Uploads in progress are not objects, so they do not keep the bucket from being deleted;
    they go with it, and a new bucket of the same name does not inherit them."""
    upload(s3, bucket, "k", [b"x"])
    s3.delete_bucket(Bucket=bucket)
    expect_error("NoSuchBucket", s3.list_multipart_uploads, Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


# -- ListParts ---------------------------------------------------------------------------------


def test_list_parts_paging(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    numbers = [1, 2, 5, 9, 10, 11, 100, 9999, 10000]
    bodies = {n: f"part {n} ".encode() * (n % 7 + 1) for n in numbers}
    for n in numbers:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=n, Body=bodies[n])
    try:
        whole = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
        assert [p["PartNumber"] for p in whole["Parts"]] == numbers
        assert whole["IsTruncated"] is False
        for p in whole["Parts"]:
            assert p["Size"] == len(bodies[p["PartNumber"]])
            assert p["ETag"] == f'"{md5_hex(bodies[p["PartNumber"]])}"'
        assert whole["Initiator"]["DisplayName"] == "root"
        assert whole["StorageClass"] == "STANDARD"

        seen = []
        marker = 0
        for _ in range(len(numbers) + 2):
            page = s3.list_parts(
                Bucket=bucket, Key="k", UploadId=upload_id, MaxParts=2, PartNumberMarker=marker
            )
            got = [p["PartNumber"] for p in page.get("Parts", [])]
            assert len(got) <= 2 and page["MaxParts"] == 2
            assert page["PartNumberMarker"] == marker
            seen += got
            if not page["IsTruncated"]:
                break
            assert page["NextPartNumberMarker"] == got[-1]
            marker = page["NextPartNumberMarker"]
        else:
            pytest.fail("listing never ended")
        assert seen == numbers
        paged = [
            p["PartNumber"]
            for page in s3.get_paginator("list_parts").paginate(
                Bucket=bucket, Key="k", UploadId=upload_id, PaginationConfig={"PageSize": 4}
            )
            for p in page.get("Parts", [])
        ]
        assert paged == numbers
        after = s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id, PartNumberMarker=11)
        assert [p["PartNumber"] for p in after["Parts"]] == [100, 9999, 10000]
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)


def test_upload_part_content_md5_is_checked(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    wrong = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()
    expect_error(
        "BadDigest",
        s3.upload_part,
        Bucket=bucket,
        Key="k",
        UploadId=upload_id,
        PartNumber=1,
        Body=b"these bytes",
        ContentMD5=wrong,
    )
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="k", UploadId=upload_id)
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)


def test_part_number_limits(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    first = part_data(1, MIN_PART)
    e1 = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=first)
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=10000, Body=b"z")
    for bad in (0, 10001, -1):
        err = expect_error(
            "InvalidArgument",
            s3.upload_part,
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            PartNumber=bad,
            Body=b"x",
        )
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    parts = [{"PartNumber": 1, "ETag": e1["ETag"]}, {"PartNumber": 10000, "ETag": e2["ETag"]}]
    complete(s3, bucket, "k", upload_id, parts)
    assert read(s3, bucket, "k") == first + b"z"
    assert s3.head_object(Bucket=bucket, Key="k", PartNumber=1)["PartsCount"] == 2


def test_many_parts(s3, bucket):
    count = 30
    parts = [part_data(n, MIN_PART) for n in range(1, count)] + [b"the end"]
    upload_id, done = upload(s3, bucket, "many", parts)
    listed = s3.list_parts(Bucket=bucket, Key="many", UploadId=upload_id, MaxParts=1000)
    assert len(listed["Parts"]) == count
    result = complete(s3, bucket, "many", upload_id, done)
    assert result["ETag"] == multipart_etag(parts)
    expected = hashlib.sha256(b"".join(parts)).hexdigest()
    got = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key="many")["Body"]
    for chunk in iter(lambda: body.read(MiB), b""):
        got.update(chunk)
    assert got.hexdigest() == expected
    part17 = s3.get_object(Bucket=bucket, Key="many", PartNumber=17)
    assert part17["Body"].read() == parts[16]
    assert part17["PartsCount"] == count


@pytest.mark.slow
def test_ten_thousand_parts(s3, bucket):
    """10,000 parts (the most S3 allows) are stored and listed; they are too small to complete
    (every part but the last must be 5 MiB), and Complete with all of them says so."""
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    try:
        done = []
        for n in range(1, 10001):
            etag = s3.upload_part(
                Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=n, Body=str(n).encode()
            )["ETag"]
            done.append({"PartNumber": n, "ETag": etag})
        numbers = [
            p["PartNumber"]
            for page in s3.get_paginator("list_parts").paginate(
                Bucket=bucket, Key="k", UploadId=upload_id
            )
            for p in page.get("Parts", [])
        ]
        assert numbers == list(range(1, 10001))
        expect_error("EntityTooSmall", complete, s3, bucket, "k", upload_id, done)
    finally:
        s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=upload_id)


# -- UploadPartCopy ----------------------------------------------------------------------------


def test_upload_part_copy(s3, bucket):
    source = part_data(7, MIN_PART + 4096)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    small = b"0123456789abcdefghij"
    s3.put_object(Bucket=bucket, Key="small src", Body=small)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    ident = {"Bucket": bucket, "Key": "dst", "UploadId": upload_id}

    whole = s3.upload_part_copy(PartNumber=1, CopySource={"Bucket": bucket, "Key": "src"}, **ident)
    assert whole["CopyPartResult"]["ETag"] == f'"{md5_hex(source)}"'
    ranged = s3.upload_part_copy(
        PartNumber=2,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=100-{100 + MIN_PART - 1}",  # exactly 5 MiB from offset 100
        **ident,
    )
    piece = source[100 : 100 + MIN_PART]
    assert len(piece) == MIN_PART
    assert ranged["CopyPartResult"]["ETag"] == f'"{md5_hex(piece)}"'
    tail = s3.upload_part_copy(
        PartNumber=3,
        CopySource={"Bucket": bucket, "Key": "small src"},
        CopySourceRange="bytes=5-9",
        **ident,
    )
    assert tail["CopyPartResult"]["ETag"] == f'"{md5_hex(small[5:10])}"'

    # Ranges outside the source, or not of the form bytes=first-last, are refused.
    for bad, code in [("bytes=15-20", "InvalidRange"), ("bytes=5-", "InvalidArgument")]:
        expect_error(
            code,
            s3.upload_part_copy,
            PartNumber=4,
            CopySource={"Bucket": bucket, "Key": "small src"},
            CopySourceRange=bad,
            **ident,
        )
    expect_error(
        "NoSuchKey",
        s3.upload_part_copy,
        PartNumber=4,
        CopySource={"Bucket": bucket, "Key": "missing"},
        **ident,
    )
    listed = s3.list_parts(**ident)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [
        (1, len(source)),
        (2, MIN_PART),
        (3, 5),
    ]
    parts = [
        {"PartNumber": 1, "ETag": whole["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": ranged["CopyPartResult"]["ETag"]},
        {"PartNumber": 3, "ETag": tail["CopyPartResult"]["ETag"]},
    ]
    result = complete(s3, bucket, "dst", upload_id, parts)
    assert result["ETag"] == multipart_etag([source, piece, small[5:10]])
    assert read(s3, bucket, "dst") == source + piece + small[5:10]


def test_upload_part_copy_from_a_multipart_object(s3, bucket):
    parts = [part_data(1, MIN_PART), b"tail"]
    upload_id, done = upload(s3, bucket, "src", parts)
    complete(s3, bucket, "src", upload_id, done)
    whole = b"".join(parts)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    ident = {"Bucket": bucket, "Key": "dst", "UploadId": upload_id}
    cross = s3.upload_part_copy(
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes={MIN_PART - 2}-{MIN_PART + 1}",  # spans the part boundary
        **ident,
    )
    piece = whole[MIN_PART - 2 : MIN_PART + 2]
    assert piece == parts[0][-2:] + b"ta"
    assert cross["CopyPartResult"]["ETag"] == f'"{md5_hex(piece)}"'
    complete(s3, bucket, "dst", upload_id, [{"PartNumber": 1, "ETag": f'"{md5_hex(piece)}"'}])
    assert read(s3, bucket, "dst") == piece


# -- GetObject by part number ------------------------------------------------------------------


def test_get_object_by_part_number(s3, bucket):
    parts = [part_data(1, MIN_PART), part_data(2, MIN_PART + 3), b"seven!!"]
    upload_id, done = upload(s3, bucket, "k", parts)
    complete(s3, bucket, "k", upload_id, done)
    total = sum(map(len, parts))
    offset = 0
    for number, data in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="k", PartNumber=number)
        assert got["Body"].read() == data
        assert got["ContentLength"] == len(data)
        assert got["PartsCount"] == 3
        assert got["ContentRange"] == f"bytes {offset}-{offset + len(data) - 1}/{total}"
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        head = s3.head_object(Bucket=bucket, Key="k", PartNumber=number)
        assert head["ContentLength"] == len(data) and head["PartsCount"] == 3
        offset += len(data)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", PartNumber=4)
    assert (code_of(exc), status_of(exc)) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", PartNumber=1, Range="bytes=0-1")
    assert status_of(exc) == 400

    # A simple object is one part.
    s3.put_object(Bucket=bucket, Key="simple", Body=b"abc")
    got = s3.get_object(Bucket=bucket, Key="simple", PartNumber=1)
    assert got["Body"].read() == b"abc"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="simple", PartNumber=2)
    assert status_of(exc) == 416


# -- boto3's managed transfer ------------------------------------------------------------------


def test_managed_transfer_round_trip(s3, bucket, tmp_path):
    data = part_data(1, MIN_PART) + part_data(2, MIN_PART) + part_data(3, MiB // 3)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    config = TransferConfig(
        multipart_threshold=MIN_PART, multipart_chunksize=MIN_PART, max_concurrency=4
    )
    s3.upload_file(str(source), bucket, "transfer/obj", Config=config)
    head = s3.head_object(Bucket=bucket, Key="transfer/obj")
    chunks = [data[i : i + MIN_PART] for i in range(0, len(data), MIN_PART)]
    assert head["ETag"] == multipart_etag(chunks)
    assert head["ContentLength"] == len(data)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)

    target = tmp_path / "target.bin"
    s3.download_file(bucket, "transfer/obj", str(target), Config=config)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()

    # Under the threshold the same call makes a plain PutObject.
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * 1000)
    s3.upload_file(str(small), bucket, "transfer/small", Config=config)
    assert s3.head_object(Bucket=bucket, Key="transfer/small")["ETag"] == (
        f'"{md5_hex(b"s" * 1000)}"'
    )
