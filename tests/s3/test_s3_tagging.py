"""Object and bucket tagging against a real server with boto3 (awscli: test_interop_awscli.py):
the ?tagging calls, x-amz-tagging on PUT / copy / multipart, x-amz-tagging-count, S3's limits
with S3's error codes, and tags kept on the disks (an index rebuild, a healed disk)."""

from __future__ import annotations

import shutil

import pytest
from botocore.exceptions import ClientError

from s3free.format.manifest import Manifest
from tests.s3.raw import client_error, object_path, raw_request, version_dirs, wait_until
from tests.support.server import make_client, start_server


def tag_set(tags: dict[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def tags_of(s3, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def count_header(response) -> str | None:
    return response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count")


def test_put_get_delete_object_tagging_and_the_count_header(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", Tagging="foo=bar&bar&sp%20ace=a%2Bb")
    got = s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"]
    # sorted by key, as S3 returns them; a key without "=" has the empty value
    assert got == [
        {"Key": "bar", "Value": ""},
        {"Key": "foo", "Value": "bar"},
        {"Key": "sp ace", "Value": "a+b"},
    ]
    assert count_header(s3.head_object(Bucket=bucket, Key="k")) == "3"
    assert count_header(s3.get_object(Bucket=bucket, Key="k")) == "3"
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 3
    # PutObjectTagging replaces the whole set; the data and metadata stay
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"n\u00e4me": "v\u00e4lue"}))
    assert tags_of(s3, bucket, "k") == {"n\u00e4me": "v\u00e4lue"}
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    assert count_header(s3.head_object(Bucket=bucket, Key="k")) == "1"
    deleted = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert count_header(s3.head_object(Bucket=bucket, Key="k")) is None
    # an empty TagSet is a valid put that removes them
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"a": "1"}))
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": []})
    assert tags_of(s3, bucket, "k") == {}
    # an overwrite without x-amz-tagging has no tags
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"a": "1"}))
    s3.put_object(Bucket=bucket, Key="k", Body=b"new")
    assert tags_of(s3, bucket, "k") == {}


def test_tagging_keeps_the_acl_and_an_acl_change_keeps_the_tags(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read", Tagging="a=1")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set({"b": "2"}))
    grants = s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]
    assert any(g["Permission"] == "READ" for g in grants)
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert tags_of(s3, bucket, "k") == {"b": "2"}


TEN_AT_THE_LIMITS = {f"{i}" + "\U0001f600" * 127: "\u00fc" * 256 for i in range(10)}


def test_the_limits_are_accepted_in_characters_not_bytes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tag_set(TEN_AT_THE_LIMITS))
    assert tags_of(s3, bucket, "k") == TEN_AT_THE_LIMITS


@pytest.mark.parametrize(
    "tags, words",
    [
        pytest.param([(str(i), "v") for i in range(11)], "greater than 10", id="11 tags"),
        pytest.param([("k" * 129, "v")], "too long", id="key of 129"),
        pytest.param([("k", "v" * 257)], "too long", id="value of 257"),
        pytest.param([("", "v")], "invalid", id="empty key"),
        pytest.param([("a", "1"), ("a", "2")], "same key", id="duplicate key"),
        pytest.param([("aws:created", "v")], "aws:", id="aws: prefix"),
        pytest.param([("AWS:x", "v")], "aws:", id="AWS: prefix"),
    ],
)
def test_bad_tag_sets_are_invalid_tag_and_change_nothing(server, bucket, tags, words):
    s3 = make_client(server, parameter_validation=False)  # boto3 itself refuses an empty key
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    body = {"TagSet": [{"Key": k, "Value": v} for k, v in tags]}
    with pytest.raises(ClientError) as info:
        s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=body)
    assert client_error(info) == ("InvalidTag", 400)
    assert words in info.value.response["Error"]["Message"]
    assert tags_of(s3, bucket, "k") == {"keep": "me"}
    # the same set in x-amz-tagging refuses the PUT: the object is not replaced
    header = "&".join(f"{k}={v}" for k, v in tags)
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="k", Body=b"replaced", Tagging=header)
    assert client_error(info) == ("InvalidTag", 400)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


@pytest.mark.parametrize(
    "body",
    [
        b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",  # no Value
        b"<Tagging><TagSet><Tag><Value>a</Value></Tag></TagSet></Tagging>",  # no Key
        b"<Tagging><TagSet><Tag><Key>a</Key><Key>b</Key><Value/></Tag></TagSet></Tagging>",
        b"<Tagging></Tagging>",  # no TagSet
        b"<Tagging><TagSet/><TagSet/></Tagging>",
        b"<Tagging><TagSet><Other/></TagSet></Tagging>",
        b"<NotTagging/>",
        b"<Tagging><TagSet>",  # not well-formed
        b'<!DOCTYPE t [<!ENTITY e "x">]><Tagging><TagSet/></Tagging>',  # DTDs are refused
    ],
)
def test_malformed_tagging_xml(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="keep=me")
    reply = raw_request(server, "PUT", object_path(bucket, "k"), query="tagging=", body=body)
    assert (reply.status, reply.code) == (400, "MalformedXML"), reply.body
    assert tags_of(s3, bucket, "k") == {"keep": "me"}


def test_x_amz_tagging_that_is_not_utf8_is_invalid_argument(server, s3, bucket):
    reply = raw_request(
        server, "PUT", object_path(bucket, "k"), headers={"x-amz-tagging": "a=%FF"}, body=b"x"
    )
    assert (reply.status, reply.code) == (400, "InvalidArgument"), reply.body


def test_tagging_of_a_missing_object_or_bucket(s3, bucket):
    for call in (
        lambda: s3.get_object_tagging(Bucket=bucket, Key="nope"),
        lambda: s3.put_object_tagging(Bucket=bucket, Key="nope", Tagging=tag_set({"a": "b"})),
        lambda: s3.delete_object_tagging(Bucket=bucket, Key="nope"),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert client_error(info) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as info:
        s3.get_object_tagging(Bucket="no-such-bucket-tagging", Key="k")
    assert client_error(info) == ("NoSuchBucket", 404)


def test_version_id_null_works_and_any_other_is_no_such_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId="null", Tagging=tag_set({"a": "1"}))
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId="null")["TagSet"] == [
        {"Key": "a", "Value": "1"}
    ]
    other = "018bcfe5-6800-7000-8123-456789abcdef"
    for call in (
        lambda: s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=other),
        lambda: s3.put_object_tagging(
            Bucket=bucket, Key="k", VersionId=other, Tagging=tag_set({"b": "2"})
        ),
        lambda: s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=other),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert client_error(info) == ("NoSuchVersion", 404)
    assert tags_of(s3, bucket, "k") == {"a": "1"}


def test_copy_tagging_directives(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"data", Tagging="a=1&b=2")
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=f"{bucket}/src")
    assert tags_of(s3, bucket, "copied") == {"a": "1", "b": "2"}  # COPY is the default
    s3.copy_object(
        Bucket=bucket, Key="explicit", CopySource=f"{bucket}/src", TaggingDirective="COPY",
        Tagging="ignored=yes",
    )  # fmt: skip
    assert tags_of(s3, bucket, "explicit") == {"a": "1", "b": "2"}
    s3.copy_object(
        Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src", TaggingDirective="REPLACE",
        Tagging="c=3",
    )  # fmt: skip
    assert tags_of(s3, bucket, "replaced") == {"c": "3"}
    s3.copy_object(
        Bucket=bucket, Key="none", CopySource=f"{bucket}/src", TaggingDirective="REPLACE"
    )
    assert tags_of(s3, bucket, "none") == {}
    # the tagging directive is independent of the metadata directive
    s3.copy_object(
        Bucket=bucket, Key="meta", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
        Metadata={"m": "1"},
    )  # fmt: skip
    assert tags_of(s3, bucket, "meta") == {"a": "1", "b": "2"}
    with pytest.raises(ClientError) as info:
        s3.copy_object(
            Bucket=bucket, Key="bad", CopySource=f"{bucket}/src", TaggingDirective="MOVE"
        )
    assert client_error(info) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as info:
        s3.copy_object(
            Bucket=bucket, Key="bad", CopySource=f"{bucket}/src", TaggingDirective="REPLACE",
            Tagging="&".join(f"k{i}=v" for i in range(11)),
        )  # fmt: skip
    assert client_error(info) == ("InvalidTag", 400)


def test_multipart_tags_are_given_at_create_and_applied_at_complete(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="Hello=World&foo=bar")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )  # fmt: skip
    assert tags_of(s3, bucket, "mp") == {"Hello": "World", "foo": "bar"}
    assert count_header(s3.head_object(Bucket=bucket, Key="mp")) == "2"
    with pytest.raises(ClientError) as info:
        s3.create_multipart_upload(Bucket=bucket, Key="mp2", Tagging="aws:x=1")
    assert client_error(info) == ("InvalidTag", 400)


# -- bucket tagging ------------------------------------------------------------------------------


def bucket_tags(s3, bucket: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=bucket)["TagSet"]}


def test_bucket_tagging_put_get_delete(s3, bucket):
    with pytest.raises(ClientError) as info:
        s3.get_bucket_tagging(Bucket=bucket)
    assert client_error(info) == ("NoSuchTagSet", 404)
    put = s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({"team": "ops", "Cost": "42"}))
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [
        {"Key": "Cost", "Value": "42"},
        {"Key": "team", "Value": "ops"},
    ]
    # an ACL change keeps the tags, and the tags keep the ACL
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert bucket_tags(s3, bucket) == {"team": "ops", "Cost": "42"}
    fifty = {f"k{i:02}": "v" * 256 for i in range(50)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set(fifty))
    assert bucket_tags(s3, bucket) == fifty
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert any(g["Permission"] == "READ" for g in grants)
    deleted = s3.delete_bucket_tagging(Bucket=bucket)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as info:
        s3.get_bucket_tagging(Bucket=bucket)
    assert client_error(info) == ("NoSuchTagSet", 404)


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param([(f"k{i}", "v") for i in range(51)], id="51 tags"),
        pytest.param([("k" * 129, "v")], id="key of 129"),
        pytest.param([("k", "v" * 257)], id="value of 257"),
        pytest.param([("a", "1"), ("a", "2")], id="duplicate key"),
        pytest.param([("aws:x", "v")], id="aws: prefix"),
    ],
)
def test_bad_bucket_tag_sets_are_invalid_tag(s3, bucket, tags):
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({"keep": "me"}))
    with pytest.raises(ClientError) as info:
        s3.put_bucket_tagging(
            Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags]}
        )
    assert client_error(info) == ("InvalidTag", 400)
    assert bucket_tags(s3, bucket) == {"keep": "me"}


def test_bucket_tagging_is_the_owners(s3, user, bucket):
    for call in (
        lambda: user.client.get_bucket_tagging(Bucket=bucket),
        lambda: user.client.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({"a": "b"})),
        lambda: user.client.delete_bucket_tagging(Bucket=bucket),
    ):
        with pytest.raises(ClientError) as info:
            call()
        assert client_error(info) == ("AccessDenied", 403)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="a=1")
    with pytest.raises(ClientError) as info:
        user.client.get_object_tagging(Bucket=bucket, Key="k")
    assert client_error(info) == ("AccessDenied", 403)


# -- durability: tags are in the manifests on the disks -----------------------------------------


def manifest_copies(srv, bucket: str, key: str) -> list[Manifest]:
    out = []
    for path in version_dirs(srv, bucket, key):
        blob = (path / "manifest").read_bytes() if path.is_dir() else path.read_bytes()
        out.append(Manifest.decode_file(blob)[0])
    return out


def test_tags_survive_an_index_rebuild_and_a_replaced_disk(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, env={"S3FREE_DISK_PROBE_S": "0.1"})
    try:
        s3 = make_client(srv)
        s3.create_bucket(Bucket="bkt")
        s3.put_object(Bucket="bkt", Key="inline", Body=b"small", Tagging="a=1")
        s3.put_object(Bucket="bkt", Key="big", Body=b"b" * 3_000_000, Tagging="b=2")
        s3.put_object_tagging(Bucket="bkt", Key="big", Tagging=tag_set({"b": "3", "c": ""}))
        up = s3.create_multipart_upload(Bucket="bkt", Key="mp", Tagging="m=p")
        part = s3.upload_part(Bucket="bkt", Key="mp", UploadId=up["UploadId"], PartNumber=1,
                              Body=b"x")  # fmt: skip
        s3.complete_multipart_upload(
            Bucket="bkt", Key="mp", UploadId=up["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )  # fmt: skip
        pending = s3.create_multipart_upload(Bucket="bkt", Key="later", Tagging="p=q")
        s3.put_bucket_tagging(Bucket="bkt", Tagging=tag_set({"bucket": "tag"}))
        expected = {"inline": {"a": "1"}, "big": {"b": "3", "c": ""}, "mp": {"m": "p"}}
        # every manifest copy carries the tags, the rewritten one with the next generation
        for key, tags in expected.items():
            copies = manifest_copies(srv, "bkt", key)
            assert copies and all(m.tags == tags for m in copies), key
        assert {m.generation for m in manifest_copies(srv, "bkt", "big")} == {2}
    finally:
        srv.stop()
    shutil.rmtree(data / "meta")  # the index is lost: rebuilt from the disks at start-up
    srv = start_server(data, env={"S3FREE_DISK_PROBE_S": "0.1"})
    try:
        s3 = make_client(srv)
        for key, tags in expected.items():
            assert tags_of(s3, "bkt", key) == tags, key
        assert bucket_tags(s3, "bkt") == {"bucket": "tag"}  # from buckets/bkt.json
        # the upload in progress kept its tags too (upload.json)
        part = s3.upload_part(Bucket="bkt", Key="later", UploadId=pending["UploadId"],
                              PartNumber=1, Body=b"y")  # fmt: skip
        s3.complete_multipart_upload(
            Bucket="bkt", Key="later", UploadId=pending["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )  # fmt: skip
        assert tags_of(s3, "bkt", "later") == {"p": "q"}
        # a disk wiped and healed gets manifests with the tags back
        victim = data / "disk2"
        for entry in victim.iterdir():
            if entry.name != ".s3free.tmp":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

        def healed() -> bool:
            found = [p for p in version_dirs(srv, "bkt", "big") if p.is_relative_to(victim)]
            return bool(found) and (found[0] / "manifest").exists()

        wait_until(healed, timeout=60, what="the wiped disk's copy of big's manifest")
        wait_until(
            lambda: len(manifest_copies(srv, "bkt", "big")) == 4,
            timeout=60,
            what="four copies of big's manifest",
        )
        for m in manifest_copies(srv, "bkt", "big"):
            assert m.tags == {"b": "3", "c": ""}
        assert tags_of(s3, "bkt", "big") == {"b": "3", "c": ""}
    finally:
        srv.stop()
