"""Bucket operations through boto3 against a real server: ListBuckets, CreateBucket (location
constraints, already owned), HeadBucket, DeleteBucket (not empty, missing), GetBucketLocation,
GetBucketVersioning, and bucket name validation.

BucketAlreadyExists (a bucket another user owns) needs a second user: the user tests cover it.
"""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from tests.s3.raw import client_error, object_path, raw_request


def _names(s3) -> list[str]:
    return [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_list_buckets_shows_created_and_not_deleted(s3, bucket_name):
    first, second = bucket_name + "-a", bucket_name + "-b"
    before = time.time()
    s3.create_bucket(Bucket=second)
    s3.create_bucket(Bucket=first)
    listing = s3.list_buckets()
    entries = {b["Name"]: b for b in listing["Buckets"]}
    assert first in entries and second in entries
    for name in (first, second):
        created = entries[name]["CreationDate"]
        assert created.tzinfo is not None
        assert before - 2 <= created.timestamp() <= time.time() + 2
    names = [b["Name"] for b in listing["Buckets"]]
    assert names == sorted(names)  # S3 lists buckets in name order
    assert listing["Owner"]["ID"]
    s3.delete_bucket(Bucket=first)
    assert first not in _names(s3)
    assert second in _names(s3)


def test_create_bucket_returns_location(s3, bucket_name):
    response = s3.create_bucket(Bucket=bucket_name)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["Location"] == f"/{bucket_name}"


def test_create_bucket_with_the_server_region(s3, bucket_name):
    s3.create_bucket(
        Bucket=bucket_name, CreateBucketConfiguration={"LocationConstraint": "us-east-1"}
    )
    assert s3.head_bucket(Bucket=bucket_name)["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("region", ["eu-west-1", "ap-southeast-2", "not-a-region"])
def test_create_bucket_in_another_region_is_refused(s3, bucket_name, region):
    with pytest.raises(ClientError) as info:
        s3.create_bucket(
            Bucket=bucket_name, CreateBucketConfiguration={"LocationConstraint": region}
        )
    code, status = client_error(info)
    assert status == 400
    assert code in ("InvalidLocationConstraint", "IllegalLocationConstraintException")
    assert bucket_name not in _names(s3)
    with pytest.raises(ClientError) as info:
        s3.head_bucket(Bucket=bucket_name)
    assert client_error(info)[1] == 404


def test_create_bucket_with_malformed_configuration(server, s3, bucket_name):
    reply = raw_request(
        server, "PUT", object_path(bucket_name), body=b"<CreateBucketConfiguration><Location"
    )
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply
    assert bucket_name not in _names(s3)


def test_create_bucket_twice_is_already_owned_by_you(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"kept")
    with pytest.raises(ClientError) as info:
        s3.create_bucket(Bucket=bucket)
    assert client_error(info) == ("BucketAlreadyOwnedByYou", 409)
    assert info.value.response["Error"].get("BucketName") == bucket
    # The existing bucket and its contents are untouched.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"
    assert _names(s3).count(bucket) == 1


def test_head_bucket(s3, bucket, bucket_name):
    response = s3.head_bucket(Bucket=bucket)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == "us-east-1"
    with pytest.raises(ClientError) as info:
        s3.head_bucket(Bucket=bucket_name + "-missing")
    assert client_error(info) == ("404", 404)


def test_delete_bucket_not_empty_then_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"x")
    with pytest.raises(ClientError) as info:
        s3.delete_bucket(Bucket=bucket)
    assert client_error(info) == ("BucketNotEmpty", 409)
    assert s3.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"x"
    s3.delete_object(Bucket=bucket, Key="a/b")
    response = s3.delete_bucket(Bucket=bucket)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as info:
        s3.head_bucket(Bucket=bucket)
    assert client_error(info) == ("404", 404)
    with pytest.raises(ClientError) as info:
        s3.delete_bucket(Bucket=bucket)
    assert client_error(info) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="again", Body=b"x")
    assert client_error(info) == ("NoSuchBucket", 404)


def test_delete_bucket_aborts_uploads_in_progress(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="pending")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="pending", UploadId=upload_id, PartNumber=1, Body=b"p")
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(ClientError) as info:
        s3.list_parts(Bucket=bucket, Key="pending", UploadId=upload_id)
    assert client_error(info) == ("NoSuchUpload", 404)


def test_recreated_bucket_is_empty_and_new(s3, bucket):
    s3.put_object(Bucket=bucket, Key="old", Body=b"old")
    created = {b["Name"]: b["CreationDate"] for b in s3.list_buckets()["Buckets"]}[bucket]
    s3.delete_object(Bucket=bucket, Key="old")
    s3.delete_bucket(Bucket=bucket)
    time.sleep(0.02)  # CreationDate has milliseconds
    s3.create_bucket(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    recreated = {b["Name"]: b["CreationDate"] for b in s3.list_buckets()["Buckets"]}[bucket]
    assert recreated > created


def test_get_bucket_location(server, s3, bucket, bucket_name):
    # S3 reports us-east-1 as an empty LocationConstraint.
    assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") is None
    reply = raw_request(server, "GET", object_path(bucket), query="location")
    assert reply.status == 200
    assert b"LocationConstraint" in reply.body
    with pytest.raises(ClientError) as info:
        s3.get_bucket_location(Bucket=bucket_name + "-missing")
    assert client_error(info) == ("NoSuchBucket", 404)


def test_get_bucket_versioning_never_enabled(s3, bucket, bucket_name):
    response = s3.get_bucket_versioning(Bucket=bucket)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in response and "MFADelete" not in response
    with pytest.raises(ClientError) as info:
        s3.get_bucket_versioning(Bucket=bucket_name + "-missing")
    assert client_error(info) == ("NoSuchBucket", 404)


@pytest.mark.parametrize(
    "name",
    [
        "ab",  # too short
        "a" * 64,  # too long
        "Upper-case",
        "under_score",
        "-leading-hyphen",
        "trailing-hyphen-",
        ".leading-dot",
        "two..dots",
        "dot-.hyphen",
        "192.168.10.20",  # an IP address
        "xn--reserved-prefix",
        "reserved-suffix-s3alias",
    ],
)
def test_invalid_bucket_names(s3, name):
    """Names boto3 lets through (it only checks [a-zA-Z0-9.-_]{1,255}) that S3 refuses."""
    with pytest.raises(ClientError) as info:
        s3.create_bucket(Bucket=name)
    assert client_error(info) == ("InvalidBucketName", 400)
    assert name not in _names(s3)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "with.dots.in-it", "0-starts-with-digit-9"])
def test_valid_bucket_name_edges(s3, name):
    s3.create_bucket(Bucket=name)
    try:
        assert name in _names(s3)
        s3.put_object(Bucket=name, Key="k", Body=b"v")
        assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
        s3.delete_object(Bucket=name, Key="k")
    finally:
        s3.delete_bucket(Bucket=name)
    assert name not in _names(s3)


def test_list_buckets_prefix_and_pages(server, s3, bucket_name):
    """ListBuckets' optional prefix, max-buckets / continuation-token pages and bucket-region:
    a client that filters must not get every bucket back."""
    names = [f"{bucket_name}-p{i}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    s3.create_bucket(Bucket=f"{bucket_name}-other")
    prefixed = s3.list_buckets(Prefix=f"{bucket_name}-p")
    assert [b["Name"] for b in prefixed["Buckets"]] == names
    assert prefixed.get("Prefix") == f"{bucket_name}-p"
    assert "ContinuationToken" not in prefixed
    # Two at a time, by hand and with boto3's paginator.
    seen, token, pages = [], None, 0
    while pages < 10:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_buckets(Prefix=f"{bucket_name}-p", MaxBuckets=2, **kwargs)
        pages += 1
        assert len(page["Buckets"]) <= 2
        seen += [b["Name"] for b in page["Buckets"]]
        token = page.get("ContinuationToken")
        if not token:
            break
    assert (seen, pages) == (names, 3)
    paginator = s3.get_paginator("list_buckets")
    paged = [
        b["Name"]
        for p in paginator.paginate(Prefix=f"{bucket_name}-p", PaginationConfig={"PageSize": 2})
        for b in p["Buckets"]
    ]
    assert paged == names
    assert s3.list_buckets(Prefix=f"{bucket_name}-nothing")["Buckets"] == []
    in_region = s3.list_buckets(Prefix=f"{bucket_name}-p", BucketRegion="us-east-1")
    assert [b["Name"] for b in in_region["Buckets"]] == names
    assert s3.list_buckets(Prefix=bucket_name, BucketRegion="eu-west-1")["Buckets"] == []
    for bad in ("0", "10001", "many"):
        reply = raw_request(server, "GET", "/", query=f"max-buckets={bad}")
        assert (reply.status, reply.code) == (400, "InvalidArgument"), reply
