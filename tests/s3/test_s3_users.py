"""Users, bucket ownership, authentication failures and the admin API, against a real server.

The admin API (/_s3free/admin/v1/users) is called with SigV4-signed requests built by
botocore's signer and sent with http.client; the S3 calls go through boto3. The helpers here
(`raw_request`, `anonymous_client`, `client_for`) are shared with the other S3 test modules.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from botocore.exceptions import ClientError

from tests.s3.users_support import (
    ADMIN,
    admin,
    anonymous_client,
    client_for,
    code_of,
    error_code,
    new_user,
    raw_request,
    status_of,
    user_serial,
)
from tests.support.server import Server, start_server


def names_of(response) -> list[str]:
    return [b["Name"] for b in response["Buckets"]]


def user_names(srv: Server) -> list[str]:
    status, doc = admin(srv, "GET", "/users")
    assert status == 200
    return [u["name"] for u in doc["users"]]


# -- admin API ---------------------------------------------------------------------------------


def test_admin_user_lifecycle(server):
    n = next(user_serial)
    name, access, secret = f"adm{os.getpid()}-{n}", f"ADMK{os.getpid()}Y{n}", "x" * 8 + "s3cr3t"
    status, doc = admin(
        server, "PUT", f"/users/{name}", {"access_key": access, "secret_key": secret}
    )
    assert status == 200
    assert doc["name"] == name and doc["access_key"] == access and doc["created_ms"] > 0
    assert secret not in json.dumps(doc)

    status, listed = admin(server, "GET", "/users")
    assert status == 200
    entry = [u for u in listed["users"] if u["name"] == name]
    assert entry == [{"access_key": access, "created_ms": doc["created_ms"], "name": name}]
    assert secret not in json.dumps(listed)
    assert server.secret_key not in json.dumps(listed)
    assert any(u["name"] == "root" for u in listed["users"])

    # The new key signs S3 requests.
    client_for(server, access, secret).list_buckets()

    # Same name again, or another name with the same access key: refused.
    again = {"access_key": access + "2", "secret_key": secret}
    assert admin(server, "PUT", f"/users/{name}", again)[0] == 409
    status, doc = admin(
        server, "PUT", f"/users/{name}-b", {"access_key": access, "secret_key": secret}
    )
    assert (status, doc["error"]) == (409, "UserExists")
    assert admin(server, "PUT", "/users/root", {"access_key": "ROOTISH1", "secret_key": secret})[
        0
    ] in (400, 409)
    assert all(u["name"] != f"{name}-b" for u in admin(server, "GET", "/users")[1]["users"])

    status, _ = admin(server, "DELETE", f"/users/{name}")
    assert status == 204
    status, doc = admin(server, "DELETE", f"/users/{name}")
    assert (status, doc["error"]) == (404, "NoSuchUser")
    assert all(u["name"] != name for u in admin(server, "GET", "/users")[1]["users"])


@pytest.mark.parametrize(
    "path, body",
    [
        ("/users/badbody1", b"not json"),
        ("/users/badbody2", {"access_key": "NOSECRETKEY1"}),
        ("/users/badbody3", {"access_key": "SHORTSECRET1", "secret_key": "short"}),
        ("/users/badbody4", {"access_key": "a b", "secret_key": "long enough secret"}),
        ("/users/bad%20name", {"access_key": "BADNAMEKEY1", "secret_key": "long enough secret"}),
        ("/users/root", {"access_key": "NEWROOTKEY1", "secret_key": "long enough secret"}),
    ],
)
def test_admin_refuses_bad_user_specs(server, path, body):
    status, doc = admin(server, "PUT", path, body)
    assert status == 400, doc
    assert doc["error"] in ("BadRequest", "InvalidArgument")
    names = [u["name"] for u in admin(server, "GET", "/users")[1]["users"]]
    assert names.count("root") == 1
    assert not any(n.startswith("badbody") or n == "bad name" for n in names)


def test_admin_unknown_endpoints(server):
    assert admin(server, "GET", "/nothing")[0] == 404
    assert admin(server, "POST", "/users")[0] == 404
    assert admin(server, "GET", "/users/a/b")[0] == 404


def test_admin_api_is_for_root_only(server, user, other_user):
    """A signed request from a non-root user, or an anonymous one, gets 403 for reading,
    creating and deleting users, and changes nothing."""
    intruder = {"access_key": "INTRUDERKEY1", "secret_key": "long secret!"}
    for creds in [(user.access_key, user.secret_key), None]:
        for method, path, body in [
            ("GET", "/users", None),
            ("PUT", "/users/intruder", intruder),
            ("DELETE", f"/users/{other_user.name}", None),
        ]:
            status, doc = admin(server, method, path, body, creds=creds)
            assert (status, doc["error"]) == (403, "AccessDenied")
    names = user_names(server)
    assert other_user.name in names and "intruder" not in names
    other_user.client.list_buckets()  # still works


def test_admin_wrong_signature_refused(server):
    status, doc = admin(server, "GET", "/users", creds=(server.access_key, "wrong-secret-value"))
    assert (status, doc["error"]) == (403, "SignatureDoesNotMatch")
    status, doc = admin(server, "GET", "/users", creds=("NOSUCHACCESSKEY1", "whatever-secret"))
    assert (status, doc["error"]) == (403, "InvalidAccessKeyId")


def test_admin_body_must_match_signed_hash(server):
    """The body is covered by the signature (x-amz-content-sha256): a body swapped in transit
    must not create a user."""
    signed = json.dumps({"access_key": "GOODKEY0001", "secret_key": "good secret value"}).encode()
    sent = json.dumps({"access_key": "EVILKEY0001", "secret_key": "evil secret value"}).encode()
    path = f"{ADMIN}/users/swapped{os.getpid()}"
    signed_hash = hashlib.sha256(signed).hexdigest()
    for claimed in (signed_hash, "UNSIGNED-PAYLOAD"):
        status, _, raw = raw_request(server, "PUT", path, body=sent, payload=claimed)
        assert status == 400, raw
    assert f"swapped{os.getpid()}" not in user_names(server)
    with pytest.raises(ClientError) as exc:
        client_for(server, "EVILKEY0001", "evil secret value").list_buckets()
    assert code_of(exc) == "InvalidAccessKeyId"


# -- ownership ---------------------------------------------------------------------------------


def _denied(call, *args, **kwargs) -> None:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    assert status_of(exc) == 403, exc.value.response
    # HEAD responses carry no body, so the code is only the status there.
    assert code_of(exc) in ("AccessDenied", "403")


def test_bucket_belongs_to_its_creator(server, s3, user, other_user, bucket_name):
    alice, bob = user.client, other_user.client
    alice.create_bucket(Bucket=bucket_name)
    alice.put_object(Bucket=bucket_name, Key="doc", Body=b"alice's data")
    alice.create_multipart_upload(Bucket=bucket_name, Key="mp")
    bob_bucket = f"{bucket_name}-bob"
    bob.create_bucket(Bucket=bob_bucket)

    b = bucket_name
    for call, kwargs in [
        (bob.head_bucket, {}),
        (bob.list_objects, {}),
        (bob.list_objects_v2, {}),
        (bob.list_object_versions, {}),
        (bob.list_multipart_uploads, {}),
        (bob.get_bucket_acl, {}),
        (bob.get_bucket_location, {}),
        (bob.put_bucket_acl, {"ACL": "public-read"}),
        (bob.get_object, {"Key": "doc"}),
        (bob.head_object, {"Key": "doc"}),
        (bob.get_object_acl, {"Key": "doc"}),
        (bob.put_object_acl, {"Key": "doc", "ACL": "public-read"}),
        (bob.put_object, {"Key": "doc", "Body": b"bob was here"}),
        (bob.put_object, {"Key": "new", "Body": b"bob was here"}),
        (bob.copy_object, {"Key": "copy", "CopySource": {"Bucket": b, "Key": "doc"}}),
        (bob.delete_object, {"Key": "doc"}),
        (bob.delete_objects, {"Delete": {"Objects": [{"Key": "doc"}]}}),
        (bob.create_multipart_upload, {"Key": "bob-mp"}),
        (bob.delete_bucket, {}),
    ]:
        _denied(call, Bucket=b, **kwargs)
    # Reading alice's object as a copy source into bob's own bucket is denied too.
    source = {"Bucket": b, "Key": "doc"}
    _denied(bob.copy_object, Bucket=bob_bucket, Key="stolen", CopySource=source)
    bob_upload = bob.create_multipart_upload(Bucket=bob_bucket, Key="stolen")["UploadId"]
    _denied(
        bob.upload_part_copy,
        Bucket=bob_bucket,
        Key="stolen",
        UploadId=bob_upload,
        PartNumber=1,
        CopySource=source,
    )
    assert "Parts" not in bob.list_parts(Bucket=bob_bucket, Key="stolen", UploadId=bob_upload)
    bob.abort_multipart_upload(Bucket=bob_bucket, Key="stolen", UploadId=bob_upload)

    # Nothing bob tried changed anything.
    assert alice.get_object(Bucket=b, Key="doc")["Body"].read() == b"alice's data"
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=b)["Contents"]] == ["doc"]
    assert "Contents" not in bob.list_objects_v2(Bucket=bob_bucket)
    grants = alice.get_object_acl(Bucket=b, Key="doc")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert alice.get_bucket_acl(Bucket=b)["Grants"][0]["Grantee"]["DisplayName"] == user.name
    assert len(alice.get_bucket_acl(Bucket=b)["Grants"]) == 1
    uploads = alice.list_multipart_uploads(Bucket=b)["Uploads"]
    assert [u["Key"] for u in uploads] == ["mp"]

    # The owner shows as alice; root may do everything on alice's bucket.
    acl = s3.get_bucket_acl(Bucket=b)
    assert acl["Owner"]["DisplayName"] == user.name
    s3.head_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="from-root", Body=b"root")
    assert alice.get_object(Bucket=b, Key="from-root")["Body"].read() == b"root"
    assert s3.get_object(Bucket=b, Key="doc")["Body"].read() == b"alice's data"
    s3.copy_object(Bucket=bob_bucket, Key="copied", CopySource={"Bucket": b, "Key": "doc"})
    assert bob.get_object(Bucket=bob_bucket, Key="copied")["Body"].read() == b"alice's data"
    s3.abort_multipart_upload(Bucket=b, Key="mp", UploadId=uploads[0]["UploadId"])
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "doc"}, {"Key": "from-root"}]})
    s3.delete_bucket(Bucket=b)
    with pytest.raises(ClientError) as exc:
        alice.head_bucket(Bucket=b)
    assert status_of(exc) == 404


def test_list_buckets_shows_own_buckets_only(s3, user, other_user, bucket_name):
    mine, theirs = f"{bucket_name}-a", f"{bucket_name}-b"
    user.client.create_bucket(Bucket=mine)
    other_user.client.create_bucket(Bucket=theirs)
    root_bucket = f"{bucket_name}-r"
    s3.create_bucket(Bucket=root_bucket)

    listed = user.client.list_buckets()
    assert names_of(listed) == [mine]
    assert listed["Owner"]["DisplayName"] == user.name
    assert names_of(other_user.client.list_buckets()) == [theirs]
    everything = s3.list_buckets()
    assert {mine, theirs, root_bucket} <= set(names_of(everything))
    assert names_of(everything) == sorted(names_of(everything))
    assert everything["Owner"]["DisplayName"] == "root"
    # Distinct owners have distinct canonical ids.
    ids = {c.list_buckets()["Owner"]["ID"] for c in (s3, user.client, other_user.client)}
    assert len(ids) == 3


def test_creating_an_existing_bucket(s3, user, other_user, bucket_name):
    user.client.create_bucket(Bucket=bucket_name)
    with pytest.raises(ClientError) as exc:
        other_user.client.create_bucket(Bucket=bucket_name)
    assert (code_of(exc), status_of(exc)) == ("BucketAlreadyExists", 409)
    with pytest.raises(ClientError) as exc:
        user.client.create_bucket(Bucket=bucket_name)
    assert (code_of(exc), status_of(exc)) == ("BucketAlreadyOwnedByYou", 409)
    # Still alice's: bob did not take it over.
    assert names_of(user.client.list_buckets()) == [bucket_name]
    assert bucket_name not in names_of(other_user.client.list_buckets())
    assert s3.get_bucket_acl(Bucket=bucket_name)["Owner"]["DisplayName"] == user.name


def test_anonymous_requests_are_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret data")
    anon = anonymous_client(server)
    _denied(anon.list_buckets)
    _denied(anon.create_bucket, Bucket=f"{bucket}-anon")
    _denied(anon.list_objects_v2, Bucket=bucket)
    _denied(anon.get_object, Bucket=bucket, Key="k")
    _denied(anon.head_object, Bucket=bucket, Key="k")
    _denied(anon.put_object, Bucket=bucket, Key="k", Body=b"overwritten")
    _denied(anon.delete_object, Bucket=bucket, Key="k")
    _denied(anon.get_bucket_acl, Bucket=bucket)
    _denied(anon.delete_bucket, Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"secret data"
    assert f"{bucket}-anon" not in names_of(s3.list_buckets())


def test_bad_credentials(server, s3, bucket):
    wrong = client_for(server, server.access_key, server.secret_key + "x")
    with pytest.raises(ClientError) as exc:
        wrong.list_objects_v2(Bucket=bucket)
    assert (code_of(exc), status_of(exc)) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as exc:
        wrong.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert code_of(exc) == "SignatureDoesNotMatch"
    unknown = client_for(server, "NOSUCHACCESSKEY0", server.secret_key)
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    assert (code_of(exc), status_of(exc)) == ("InvalidAccessKeyId", 403)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_removed_users_key_stops_working(server, s3, bucket_name):
    made = new_user(server)
    made.client.create_bucket(Bucket=bucket_name)
    made.client.put_object(Bucket=bucket_name, Key="k", Body=b"kept")
    assert admin(server, "DELETE", f"/users/{made.name}")[0] == 204
    for call, kwargs in [
        (made.client.list_buckets, {}),
        (made.client.get_object, {"Bucket": bucket_name, "Key": "k"}),
        (made.client.put_object, {"Bucket": bucket_name, "Key": "k2", "Body": b"x"}),
    ]:
        with pytest.raises(ClientError) as exc:
            call(**kwargs)
        assert code_of(exc) == "InvalidAccessKeyId"
    # The data stays, and root can still reach it.
    assert s3.get_object(Bucket=bucket_name, Key="k")["Body"].read() == b"kept"
    assert made.name not in user_names(server)


def test_users_survive_restart_and_secrets_are_not_stored_in_plain_text(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        alice, bob = new_user(srv), new_user(srv)
        alice.client.create_bucket(Bucket="alices-bucket")
        alice.client.put_object(Bucket="alices-bucket", Key="k", Body=b"alice")
    finally:
        assert srv.stop() == 0
    assert alice.secret_key not in srv.log and srv.secret_key not in srv.log

    secrets = [alice.secret_key, bob.secret_key, srv.secret_key]
    scanned = 0
    for path in data.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            scanned += 1
            for secret in secrets:
                for form in (secret.encode(), secret.encode().hex().encode()):
                    assert form not in blob, f"a secret is stored in plain text in {path}"
    assert scanned > 0

    srv = start_server(data)
    try:
        alice2 = client_for(srv, alice.access_key, alice.secret_key)
        bob2 = client_for(srv, bob.access_key, bob.secret_key)
        assert names_of(alice2.list_buckets()) == ["alices-bucket"]
        assert alice2.get_object(Bucket="alices-bucket", Key="k")["Body"].read() == b"alice"
        assert names_of(bob2.list_buckets()) == []
        _denied(bob2.get_object, Bucket="alices-bucket", Key="k")
        with pytest.raises(ClientError) as exc:
            client_for(srv, alice.access_key, bob.secret_key).list_buckets()
        assert code_of(exc) == "SignatureDoesNotMatch"
        # Removal persists too.
        assert admin(srv, "DELETE", f"/users/{bob.name}")[0] == 204
    finally:
        assert srv.stop() == 0
    srv = start_server(data)
    try:
        assert user_names(srv) == ["root", alice.name]
        with pytest.raises(ClientError) as exc:
            client_for(srv, bob.access_key, bob.secret_key).list_buckets()
        assert code_of(exc) == "InvalidAccessKeyId"
    finally:
        assert srv.stop() == 0


def test_user_secrets_need_the_root_secret(tmp_path):
    """User records are sealed with a key derived from the root secret: a server started with
    another root secret cannot use them (and must still start)."""
    data = tmp_path / "data"
    srv = start_server(data)
    try:
        alice = new_user(srv)
        alice.client.list_buckets()
    finally:
        srv.stop()
    srv = start_server(data, env={"S3FREE_SECRET_KEY": "a-completely-different-root-secret"})
    try:
        with pytest.raises(ClientError) as exc:
            client_for(srv, alice.access_key, alice.secret_key).list_buckets()
        assert code_of(exc) == "InvalidAccessKeyId"
    finally:
        srv.stop()


def test_presigned_urls_carry_the_signers_rights(server, user, other_user, bucket_name):
    user.client.create_bucket(Bucket=bucket_name)
    user.client.put_object(Bucket=bucket_name, Key="k", Body=b"presigned body")
    params = {"Bucket": bucket_name, "Key": "k"}
    good = user.client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    bad = other_user.client.generate_presigned_url("get_object", Params=params, ExpiresIn=60)
    for url, expected in [(good, 200), (bad, 403)]:
        path = url[len(server.endpoint) :]
        status, _, body = raw_request(server, "GET", path, creds=None)
        assert status == expected, body
        if expected == 200:
            assert body == b"presigned body"
        else:
            assert error_code(body) == "AccessDenied" and b"presigned body" not in body
    # Once the signer is removed, its URLs stop working.
    admin(server, "DELETE", f"/users/{user.name}")
    status, _, body = raw_request(server, "GET", good[len(server.endpoint) :], creds=None)
    assert (status, error_code(body)) == (403, "InvalidAccessKeyId")
