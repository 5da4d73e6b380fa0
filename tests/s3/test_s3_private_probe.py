"""Another user's private object tells nothing: bob, with no rights on alice's bucket, gets the
same AccessDenied whatever he asks about `secret.txt` (copy-source conditions, copy-source
ranges, versions) and whether or not it exists. Only once access is granted are conditions,
ranges and versions evaluated, as AWS does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from tests.s3.users_support import code_of, raw_request, status_of

PAST = datetime(2001, 1, 1, tzinfo=UTC)
FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
def alice_secret(user, bucket_name):
    """alice's private bucket holding a private secret.txt: (bucket, etag)."""
    user.client.create_bucket(Bucket=bucket_name)
    etag = user.client.put_object(Bucket=bucket_name, Key="secret.txt", Body=b"s" * 1000)["ETag"]
    return bucket_name, etag


@pytest.fixture
def bob_bucket(other_user, bucket_name):
    name = bucket_name + "-bob"
    other_user.client.create_bucket(Bucket=name)
    return name


def _outcome(call) -> tuple[int, str]:
    with pytest.raises(ClientError) as info:
        call()
    return status_of(info), code_of(info)


DENIED = (403, "AccessDenied")


@pytest.mark.parametrize(
    "condition",
    [
        {"CopySourceIfMatch": "{etag}"},
        {"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
        {"CopySourceIfNoneMatch": "{etag}"},
        {"CopySourceIfNoneMatch": '"0123456789abcdef0123456789abcdef"'},
        {"CopySourceIfModifiedSince": PAST},
        {"CopySourceIfModifiedSince": FUTURE},
        {"CopySourceIfUnmodifiedSince": PAST},
        {"CopySourceIfUnmodifiedSince": FUTURE},
        {},
    ],
    ids=lambda c: "-".join(f"{k}={str(v)[:8]}" for k, v in c.items()) or "none",
)
def test_copy_conditions_do_not_reveal_etag_or_date(
    alice_secret, other_user, bob_bucket, condition
):
    bucket, etag = alice_secret
    args = {k: etag if v == "{etag}" else v for k, v in condition.items()}
    outcome = _outcome(
        lambda: other_user.client.copy_object(
            Bucket=bob_bucket,
            Key="stolen",
            CopySource={"Bucket": bucket, "Key": "secret.txt"},
            **args,
        )
    )
    assert outcome == DENIED


@pytest.mark.parametrize("key", ["secret.txt", "no-such-key"])
def test_copy_of_missing_and_existing_key_look_alike(alice_secret, other_user, bob_bucket, key):
    bucket, _ = alice_secret
    outcome = _outcome(
        lambda: other_user.client.copy_object(
            Bucket=bob_bucket, Key="stolen", CopySource={"Bucket": bucket, "Key": key}
        )
    )
    assert outcome == DENIED


@pytest.mark.parametrize("key", ["secret.txt", "no-such-key"])
@pytest.mark.parametrize("version", ["bogus", "null"])
def test_copy_source_version_does_not_reveal_existence(
    alice_secret, other_user, bob_bucket, key, version
):
    bucket, _ = alice_secret
    outcome = _outcome(
        lambda: other_user.client.copy_object(
            Bucket=bob_bucket,
            Key="stolen",
            CopySource={"Bucket": bucket, "Key": key, "VersionId": version},
        )
    )
    assert outcome == DENIED


@pytest.mark.parametrize("rng", ["bytes=0-0", "bytes=0-999", "bytes=0-1000", "bytes=5000-6000"])
def test_copy_source_range_does_not_reveal_size(alice_secret, other_user, bob_bucket, rng):
    """A binary search over x-amz-copy-source-range used to recover the size (InvalidRange
    past the end, AccessDenied within)."""
    bucket, _ = alice_secret
    client = other_user.client
    upload_id = client.create_multipart_upload(Bucket=bob_bucket, Key="mp")["UploadId"]
    try:
        outcome = _outcome(
            lambda: client.upload_part_copy(
                Bucket=bob_bucket,
                Key="mp",
                UploadId=upload_id,
                PartNumber=1,
                CopySource={"Bucket": bucket, "Key": "secret.txt"},
                CopySourceRange=rng,
            )
        )
    finally:
        client.abort_multipart_upload(Bucket=bob_bucket, Key="mp", UploadId=upload_id)
    assert outcome == DENIED


@pytest.mark.parametrize("who", ["bob", "anonymous"])
@pytest.mark.parametrize("key", ["secret.txt", "no-such-key"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_bogus_version_id_does_not_reveal_existence(
    server, alice_secret, other_user, who, key, method
):
    bucket, _ = alice_secret
    creds = (other_user.access_key, other_user.secret_key) if who == "bob" else None
    status, _, _ = raw_request(
        server, method, f"/{bucket}/{key}", query=[("versionId", "bogus")], creds=creds
    )
    assert status == 403


def test_public_read_bucket_private_object(server, user, alice_secret, other_user, bob_bucket):
    """In a public-read bucket a missing key may be 404 (anyone can list it), but a private
    object still answers 403 before its version, conditions or range are looked at."""
    bucket, etag = alice_secret
    user.client.put_bucket_acl(Bucket=bucket, ACL="public-read")
    status, _, _ = raw_request(
        server, "GET", f"/{bucket}/secret.txt", query=[("versionId", "bogus")], creds=None
    )
    assert status == 403
    status, _, _ = raw_request(
        server, "GET", f"/{bucket}/nothing", query=[("versionId", "bogus")], creds=None
    )
    assert status == 404
    for match in (etag, '"0123456789abcdef0123456789abcdef"'):
        outcome = _outcome(
            lambda m=match: other_user.client.copy_object(
                Bucket=bob_bucket,
                Key="stolen",
                CopySource={"Bucket": bucket, "Key": "secret.txt"},
                CopySourceIfMatch=m,
            )
        )
        assert outcome == DENIED
    outcome = _outcome(
        lambda: other_user.client.copy_object(
            Bucket=bob_bucket, Key="stolen", CopySource={"Bucket": bucket, "Key": "nothing"}
        )
    )
    assert outcome == (404, "NoSuchKey")


def test_granted_access_still_evaluates_conditions(user, alice_secret, other_user, bob_bucket):
    """The owner, and anyone copying a public-read object, get 412 and NoSuchVersion as
    before: the fix only moved authorization first."""
    bucket, etag = alice_secret
    wrong = '"0123456789abcdef0123456789abcdef"'
    copy = {"Bucket": bucket, "Key": "secret.txt"}
    assert _outcome(
        lambda: user.client.copy_object(
            Bucket=bucket, Key="copy", CopySource=copy, CopySourceIfMatch=wrong
        )
    ) == (412, "PreconditionFailed")
    assert _outcome(
        lambda: user.client.copy_object(
            Bucket=bucket, Key="copy", CopySource={**copy, "VersionId": "bogus"}
        )
    ) == (404, "NoSuchVersion")
    user.client.put_object_acl(Bucket=bucket, Key="secret.txt", ACL="public-read")
    assert _outcome(
        lambda: other_user.client.copy_object(
            Bucket=bob_bucket, Key="copy", CopySource=copy, CopySourceIfMatch=wrong
        )
    ) == (412, "PreconditionFailed")
    other_user.client.copy_object(
        Bucket=bob_bucket, Key="copy", CopySource=copy, CopySourceIfMatch=etag
    )
    body = other_user.client.get_object(Bucket=bob_bucket, Key="copy")["Body"].read()
    assert body == b"s" * 1000
