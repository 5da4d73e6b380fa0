"""ACLs against a real server: the canned ACLs private and public-read, shown as S3 shows them
and enforced for anonymous requests; everything richer is NotImplemented, never ignored."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError

from tests.s3.users_support import (
    anonymous_client,
    code_of,
    error_code,
    raw_request,
    status_of,
)

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def grants_of(acl: dict) -> list[tuple[str, str]]:
    """(who, permission) pairs: a canonical user id, or a group URI."""
    out = []
    for grant in acl["Grants"]:
        grantee = grant["Grantee"]
        who = grantee.get("ID") if grantee["Type"] == "CanonicalUser" else grantee.get("URI")
        out.append((who, grant["Permission"]))
    return sorted(out)


def assert_private(acl: dict, owner_name: str) -> None:
    owner = acl["Owner"]
    assert owner["DisplayName"] == owner_name
    assert len(owner["ID"]) == 64
    assert grants_of(acl) == [(owner["ID"], "FULL_CONTROL")]
    assert acl["Grants"][0]["Grantee"]["DisplayName"] == owner_name


def assert_public_read(acl: dict, owner_name: str) -> None:
    owner = acl["Owner"]
    assert owner["DisplayName"] == owner_name
    assert grants_of(acl) == sorted([(owner["ID"], "FULL_CONTROL"), (ALL_USERS, "READ")])


def anonymous_get(server, bucket: str, key: str) -> tuple[int, bytes]:
    """A plain unsigned GET with urllib, as a browser would send it."""
    url = f"{server.endpoint}/{bucket}/{quote(key)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _raises(code: str, status: int, call, *args, **kwargs) -> None:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    assert status_of(exc) == status, exc.value.response
    if code:
        assert code_of(exc) == code, exc.value.response


# -- what GetBucketAcl / GetObjectAcl show -----------------------------------------------------


def test_default_acl_is_private_with_owner_full_control(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    bucket_acl = s3.get_bucket_acl(Bucket=bucket)
    object_acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert_private(bucket_acl, "root")
    assert_private(object_acl, "root")
    # The owner id is the same one ListBuckets and ListObjects show.
    assert bucket_acl["Owner"]["ID"] == s3.list_buckets()["Owner"]["ID"]
    listed = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]
    assert listed["Owner"]["ID"] == bucket_acl["Owner"]["ID"]
    # versionId=null is the only version there is.
    assert_private(s3.get_object_acl(Bucket=bucket, Key="k", VersionId="null"), "root")
    _raises("NoSuchKey", 404, s3.get_object_acl, Bucket=bucket, Key="missing")


def test_acl_owner_is_the_creating_user(server, s3, user, bucket_name):
    user.client.create_bucket(Bucket=bucket_name, ACL="public-read")
    user.client.put_object(Bucket=bucket_name, Key="k", Body=b"x")
    assert_public_read(user.client.get_bucket_acl(Bucket=bucket_name), user.name)
    assert_private(user.client.get_object_acl(Bucket=bucket_name, Key="k"), user.name)
    # Root sees the same owner.
    assert_private(s3.get_object_acl(Bucket=bucket_name, Key="k"), user.name)
    owner_id = user.client.get_bucket_acl(Bucket=bucket_name)["Owner"]["ID"]
    assert owner_id == user.client.list_buckets()["Owner"]["ID"]
    assert owner_id != s3.list_buckets()["Owner"]["ID"]


def test_public_read_bucket_on_create_and_by_put_bucket_acl(server, s3, bucket_name):
    anon = anonymous_client(server)
    s3.create_bucket(Bucket=bucket_name, ACL="public-read")
    s3.put_object(Bucket=bucket_name, Key="a/1", Body=b"x", ACL="public-read")
    assert_public_read(s3.get_bucket_acl(Bucket=bucket_name), "root")
    assert [o["Key"] for o in anon.list_objects_v2(Bucket=bucket_name)["Contents"]] == ["a/1"]
    assert [o["Key"] for o in anon.list_objects(Bucket=bucket_name)["Contents"]] == ["a/1"]
    anon.head_bucket(Bucket=bucket_name)

    s3.put_bucket_acl(Bucket=bucket_name, ACL="private")
    assert_private(s3.get_bucket_acl(Bucket=bucket_name), "root")
    _raises("AccessDenied", 403, anon.list_objects_v2, Bucket=bucket_name)
    _raises("AccessDenied", 403, anon.list_objects, Bucket=bucket_name)
    _raises("", 403, anon.head_bucket, Bucket=bucket_name)
    # The object's own ACL is independent of the bucket's.
    assert anon.get_object(Bucket=bucket_name, Key="a/1")["Body"].read() == b"x"

    s3.put_bucket_acl(Bucket=bucket_name, ACL="public-read")
    assert_public_read(s3.get_bucket_acl(Bucket=bucket_name), "root")
    assert anon.list_objects_v2(Bucket=bucket_name)["KeyCount"] == 1


def test_public_read_bucket_does_not_open_writes_or_private_objects(server, s3, bucket_name):
    anon = anonymous_client(server)
    s3.create_bucket(Bucket=bucket_name, ACL="public-read")
    s3.put_object(Bucket=bucket_name, Key="private", Body=b"hidden")
    _raises("AccessDenied", 403, anon.get_object, Bucket=bucket_name, Key="private")
    _raises("", 403, anon.head_object, Bucket=bucket_name, Key="private")
    _raises("AccessDenied", 403, anon.put_object, Bucket=bucket_name, Key="new", Body=b"x")
    _raises("AccessDenied", 403, anon.delete_object, Bucket=bucket_name, Key="private")
    _raises(
        "AccessDenied",
        403,
        anon.delete_objects,
        Bucket=bucket_name,
        Delete={"Objects": [{"Key": "private"}]},
    )
    _raises("AccessDenied", 403, anon.get_bucket_acl, Bucket=bucket_name)
    _raises("AccessDenied", 403, anon.put_bucket_acl, Bucket=bucket_name, ACL="private")
    _raises("AccessDenied", 403, anon.get_object_acl, Bucket=bucket_name, Key="private")
    _raises("AccessDenied", 403, anon.create_multipart_upload, Bucket=bucket_name, Key="mp")
    _raises("AccessDenied", 403, anon.delete_bucket, Bucket=bucket_name)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name)["Contents"]]
    assert keys == ["private"]
    assert s3.get_object(Bucket=bucket_name, Key="private")["Body"].read() == b"hidden"
    assert_public_read(s3.get_bucket_acl(Bucket=bucket_name), "root")


# -- object ACLs and their enforcement ---------------------------------------------------------


def test_public_read_object_is_readable_anonymously(server, s3, bucket):
    anon = anonymous_client(server)
    body = b"hello, world" * 100
    s3.put_object(Bucket=bucket, Key="pub lic/ü.txt", Body=body, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"hidden")
    assert_public_read(s3.get_object_acl(Bucket=bucket, Key="pub lic/ü.txt"), "root")
    assert_private(s3.get_object_acl(Bucket=bucket, Key="private.txt"), "root")

    got = anon.get_object(Bucket=bucket, Key="pub lic/ü.txt")
    assert got["Body"].read() == body
    head = anon.head_object(Bucket=bucket, Key="pub lic/ü.txt")
    assert head["ContentLength"] == len(body)
    ranged = anon.get_object(Bucket=bucket, Key="pub lic/ü.txt", Range="bytes=7-11")
    assert ranged["Body"].read() == b"world"
    assert anonymous_get(server, bucket, "pub lic/ü.txt") == (200, body)

    _raises("AccessDenied", 403, anon.get_object, Bucket=bucket, Key="private.txt")
    _raises("", 403, anon.head_object, Bucket=bucket, Key="private.txt")
    status, raw = anonymous_get(server, bucket, "private.txt")
    assert (status, error_code(raw)) == (403, "AccessDenied")
    assert b"hidden" not in raw
    # The bucket itself is private: no anonymous listing.
    _raises("AccessDenied", 403, anon.list_objects_v2, Bucket=bucket)


def test_anonymous_reads_do_not_reveal_which_keys_exist(server, s3, bucket, user):
    """Without list rights S3 answers 403 for a missing key too, so an anonymous client
    cannot probe a private bucket for key names."""
    s3.put_object(Bucket=bucket, Key="exists", Body=b"x")
    anon = anonymous_client(server)
    status_missing, raw_missing = anonymous_get(server, bucket, "does-not-exist")
    status_private, _ = anonymous_get(server, bucket, "exists")
    assert status_private == 403
    assert (status_missing, error_code(raw_missing)) == (403, "AccessDenied")
    _raises("", 403, anon.head_object, Bucket=bucket, Key="does-not-exist")
    # The same for another user without rights on the bucket.
    _raises("AccessDenied", 403, user.client.get_object, Bucket=bucket, Key="does-not-exist")
    # With list rights (a public-read bucket) a missing key is simply missing.
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    status, raw = anonymous_get(server, bucket, "does-not-exist")
    assert (status, error_code(raw)) == (404, "NoSuchKey")
    _raises("AccessDenied", 403, anon.get_object, Bucket=bucket, Key="exists")


def test_put_object_acl_switches_access(server, s3, bucket):
    anon = anonymous_client(server)
    s3.put_object(
        Bucket=bucket, Key="k", Body=b"data", ContentType="text/plain", Metadata={"a": "1"}
    )
    _raises("AccessDenied", 403, anon.get_object, Bucket=bucket, Key="k")

    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert_public_read(s3.get_object_acl(Bucket=bucket, Key="k"), "root")
    got = anon.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"data"
    # Changing the ACL changes neither the data nor the metadata.
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"a": "1"}
    assert "x-amz-acl" not in got["ResponseMetadata"]["HTTPHeaders"]

    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    assert_private(s3.get_object_acl(Bucket=bucket, Key="k"), "root")
    _raises("AccessDenied", 403, anon.get_object, Bucket=bucket, Key="k")
    _raises("NoSuchKey", 404, s3.put_object_acl, Bucket=bucket, Key="missing", ACL="private")


def test_overwrite_resets_the_acl(server, s3, bucket):
    """A new object gets the ACL its own PUT asks for (private by default), not the old one's."""
    anon = anonymous_client(server)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1", ACL="public-read")
    assert anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    _raises("AccessDenied", 403, anon.get_object, Bucket=bucket, Key="k")
    assert_private(s3.get_object_acl(Bucket=bucket, Key="k"), "root")


def test_copy_object_acl(server, s3, bucket):
    anon = anonymous_client(server)
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", ACL="public-read")
    # A copy does not inherit the source's ACL: private unless the copy asks otherwise.
    s3.copy_object(Bucket=bucket, Key="plain", CopySource={"Bucket": bucket, "Key": "src"})
    assert_private(s3.get_object_acl(Bucket=bucket, Key="plain"), "root")
    _raises("AccessDenied", 403, anon.get_object, Bucket=bucket, Key="plain")

    s3.put_object(Bucket=bucket, Key="src2", Body=b"source2")
    s3.copy_object(
        Bucket=bucket, Key="opened", CopySource={"Bucket": bucket, "Key": "src2"}, ACL="public-read"
    )
    assert_public_read(s3.get_object_acl(Bucket=bucket, Key="opened"), "root")
    assert anon.get_object(Bucket=bucket, Key="opened")["Body"].read() == b"source2"
    # REPLACE directive with an ACL too.
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src2"},
        MetadataDirective="REPLACE",
        ContentType="text/x-new",
        ACL="public-read",
    )
    got = anon.get_object(Bucket=bucket, Key="replaced")
    assert got["ContentType"] == "text/x-new" and got["Body"].read() == b"source2"
    # Copying an object onto itself to change only its ACL is allowed.
    s3.copy_object(
        Bucket=bucket, Key="src2", CopySource={"Bucket": bucket, "Key": "src2"}, ACL="public-read"
    )
    assert anon.get_object(Bucket=bucket, Key="src2")["Body"].read() == b"source2"


def test_multipart_upload_keeps_its_acl(server, s3, bucket):
    anon = anonymous_client(server)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ACL="public-read")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p1")[
        "ETag"
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert_public_read(s3.get_object_acl(Bucket=bucket, Key="mp"), "root")
    assert anon.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"p1"


def test_other_users_get_public_reads_only(s3, user, other_user, bucket_name):
    alice, bob = user.client, other_user.client
    alice.create_bucket(Bucket=bucket_name, ACL="public-read")
    alice.put_object(Bucket=bucket_name, Key="open", Body=b"o", ACL="public-read")
    alice.put_object(Bucket=bucket_name, Key="closed", Body=b"c")
    assert bob.get_object(Bucket=bucket_name, Key="open")["Body"].read() == b"o"
    keys = [o["Key"] for o in bob.list_objects_v2(Bucket=bucket_name)["Contents"]]
    assert keys == ["closed", "open"]
    _raises("AccessDenied", 403, bob.get_object, Bucket=bucket_name, Key="closed")
    _raises("AccessDenied", 403, bob.put_object, Bucket=bucket_name, Key="open", Body=b"x")
    _raises("AccessDenied", 403, bob.put_object_acl, Bucket=bucket_name, Key="open", ACL="private")
    _raises("AccessDenied", 403, bob.delete_object, Bucket=bucket_name, Key="open")
    # A public-read object may be a copy source for another user.
    mine = f"{bucket_name}-bob"
    bob.create_bucket(Bucket=mine)
    bob.copy_object(Bucket=mine, Key="copy", CopySource={"Bucket": bucket_name, "Key": "open"})
    assert bob.get_object(Bucket=mine, Key="copy")["Body"].read() == b"o"
    _raises(
        "AccessDenied",
        403,
        bob.copy_object,
        Bucket=mine,
        Key="copy2",
        CopySource={"Bucket": bucket_name, "Key": "closed"},
    )
    assert alice.get_object(Bucket=bucket_name, Key="open")["Body"].read() == b"o"


# -- everything else is NotImplemented ---------------------------------------------------------

GRANT = 'id="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"'


@pytest.mark.parametrize("canned", ["authenticated-read", "public-read-write", "bucket-owner-read"])
def test_unsupported_canned_acls_are_not_implemented(s3, bucket, canned):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    _raises("NotImplemented", 501, s3.put_object_acl, Bucket=bucket, Key="k", ACL=canned)
    _raises("NotImplemented", 501, s3.put_bucket_acl, Bucket=bucket, ACL=canned)
    _raises("NotImplemented", 501, s3.put_object, Bucket=bucket, Key="new", Body=b"x", ACL=canned)
    _raises(
        "NotImplemented",
        501,
        s3.copy_object,
        Bucket=bucket,
        Key="copy",
        CopySource={"Bucket": bucket, "Key": "k"},
        ACL=canned,
    )
    _raises("NotImplemented", 501, s3.create_multipart_upload, Bucket=bucket, Key="mp", ACL=canned)
    _raises("NotImplemented", 501, s3.create_bucket, Bucket=f"{bucket}-x", ACL=canned)
    # Nothing was created or changed.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert f"{bucket}-x" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert_private(s3.get_object_acl(Bucket=bucket, Key="k"), "root")
    assert_private(s3.get_bucket_acl(Bucket=bucket), "root")


@pytest.mark.parametrize(
    "grant", ["GrantRead", "GrantFullControl", "GrantReadACP", "GrantWriteACP"]
)
def test_grants_are_not_implemented(s3, bucket, grant):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    _raises("NotImplemented", 501, s3.put_object_acl, Bucket=bucket, Key="k", **{grant: GRANT})
    _raises("NotImplemented", 501, s3.put_bucket_acl, Bucket=bucket, **{grant: GRANT})
    _raises(
        "NotImplemented", 501, s3.put_object, Bucket=bucket, Key="new", Body=b"x", **{grant: GRANT}
    )
    _raises(
        "NotImplemented", 501, s3.create_multipart_upload, Bucket=bucket, Key="mp", **{grant: GRANT}
    )
    _raises("NotImplemented", 501, s3.create_bucket, Bucket=f"{bucket}-g", **{grant: GRANT})
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert_private(s3.get_object_acl(Bucket=bucket, Key="k"), "root")


def test_acl_documents_are_not_implemented(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    owner = s3.get_bucket_acl(Bucket=bucket)["Owner"]
    # Even a document that says exactly what the ACL already is: not silently accepted.
    policy = {
        "Owner": owner,
        "Grants": [
            {
                "Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]},
                "Permission": "FULL_CONTROL",
            },
            {"Grantee": {"Type": "Group", "URI": ALL_USERS}, "Permission": "READ"},
        ],
    }
    _raises(
        "NotImplemented", 501, s3.put_object_acl, Bucket=bucket, Key="k", AccessControlPolicy=policy
    )
    _raises("NotImplemented", 501, s3.put_bucket_acl, Bucket=bucket, AccessControlPolicy=policy)
    assert_private(s3.get_object_acl(Bucket=bucket, Key="k"), "root")
    assert_private(s3.get_bucket_acl(Bucket=bucket), "root")


def test_put_acl_without_any_acl_is_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    for path in (f"/{bucket}", f"/{bucket}/k"):
        status, _, raw = raw_request(server, "PUT", path, query=[("acl", "")])
        assert status == 400 and error_code(raw) == "MissingSecurityHeader", raw
    assert_public_read(s3.get_object_acl(Bucket=bucket, Key="k"), "root")
