"""Records kept on every disk (users, buckets) converge on the newest state, deletions
included (issue 12 items 2, 3, 9): a disk taken away while a user is removed, a bucket made
private or deleted, comes back holding the old copies; a restart, an index rebuild (online or
at start) and the disk's return must all pick the newest copy, and a tombstone beats a stale
live record. Bucket owners are user ids, so a name added again owns nothing of the old
user's. A real server process, real directories renamed away and back."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from s3free.storage.layout import bucket_record_path
from tests.s3.cli_support import admin as admin_cli
from tests.s3.cli_support import root_env
from tests.s3.raw import disks
from tests.s3.users_support import admin, anonymous_client, client_for, code_of
from tests.support.server import Server, make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.2", "S3FREE_SCRUB_INTERVAL_S": "0"}


def first_disk(srv: Server) -> Path:
    """The disk at position 0: the one a first-copy-found reader would read first."""
    for path in disks(srv):
        if json.loads((path / "format.json").read_text())["position"] == 0:
            return path
    raise AssertionError("no disk at position 0")


def away(path: Path) -> Path:
    moved = path.with_name(path.name + ".away")
    path.rename(moved)
    return moved


def wait_until(what: str, check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def disk_state(srv: Server, position: int) -> str:
    status, doc = admin(srv, "GET", "/disks")
    assert status == 200, doc
    return doc["disks"][position]["state"]


def user_cli(srv: Server, *args: str):
    out = admin_cli("user", *args, "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, (out.stdout, out.stderr)
    return out.stdout


def users_listed(srv: Server) -> list[str]:
    return [u["name"] for u in admin(srv, "GET", "/users")[1]["users"]]


def refused(client) -> str:
    with pytest.raises(ClientError) as exc:
        client.list_buckets()
    return code_of(exc)


def record(path: Path) -> dict:
    return json.loads(path.read_text())


def test_user_removed_while_a_disk_was_away_stays_removed(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, env=FAST)
    try:
        user_cli(srv, "add", "dave", "--access-key", "DAVEKEY1", "--secret-key", "dave-secret-1")
        user_cli(srv, "add", "erin", "--access-key", "ERINKEY1", "--secret-key", "erin-secret-1")
        client_for(srv, "DAVEKEY1", "dave-secret-1").list_buckets()
        d0 = first_disk(srv)
        moved = away(d0)
        assert "removed user dave" in user_cli(srv, "remove", "dave")
    finally:
        srv.stop()
    moved.rename(d0)  # back, holding dave's live record, while the server is down

    srv = start_server(data, env=FAST)
    try:
        assert refused(client_for(srv, "DAVEKEY1", "dave-secret-1")) == "InvalidAccessKeyId"
        assert "dave" not in users_listed(srv) and "erin" in users_listed(srv)

        # A disk that comes back while the server runs is brought up to date at once.
        d1 = disks(srv)[1]
        position = record(d1 / "format.json")["position"]
        moved = away(d1)
        wait_until("the disk offline", lambda: disk_state(srv, position) == "offline")
        user_cli(srv, "remove", "erin")
        stale = moved / "users" / "erin.json"
        assert "deleted" not in record(stale)
        moved.rename(d1)
        wait_until(
            "erin's tombstone on the returned disk",
            lambda: record(d1 / "users" / "erin.json").get("deleted") is True,
        )
        assert refused(client_for(srv, "ERINKEY1", "erin-secret-1")) == "InvalidAccessKeyId"
    finally:
        srv.stop()


def test_bucket_made_private_and_bucket_deleted_while_a_disk_was_away(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, env=FAST)
    try:
        s3 = make_client(srv)
        s3.create_bucket(Bucket="pub", ACL="public-read")
        s3.put_object(Bucket="pub", Key="k", Body=b"secret now", ACL="public-read")
        s3.create_bucket(Bucket="gone")
        s3.put_object(Bucket="gone", Key="old", Body=b"deleted with its bucket")
        assert anonymous_client(srv).list_objects_v2(Bucket="pub")["KeyCount"] == 1
        d0 = first_disk(srv)
        moved = away(d0)
        s3.put_bucket_acl(Bucket="pub", ACL="private")
        s3.delete_object(Bucket="gone", Key="old")  # its manifest stays on the away disk
        s3.delete_bucket(Bucket="gone")
        stale = {n: (moved / bucket_record_path(n)).read_bytes() for n in ("pub", "gone")}
        assert record(moved / bucket_record_path("pub"))["acl"] == "public-read"
    finally:
        srv.stop()
    moved.rename(d0)

    def check(srv: Server) -> None:
        s3 = make_client(srv)
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["pub"]
        with pytest.raises(ClientError) as exc:
            s3.head_bucket(Bucket="gone")
        assert exc.value.response["Error"]["Code"] in ("404", "NoSuchBucket")
        with pytest.raises(ClientError) as exc:
            anonymous_client(srv).list_objects_v2(Bucket="pub")
        assert code_of(exc) == "AccessDenied"
        grants = s3.get_bucket_acl(Bucket="pub")["Grants"]
        assert not any("AllUsers" in g["Grantee"].get("URI", "") for g in grants), grants

    srv = start_server(data, env=FAST)
    try:
        out = admin_cli("rebuild-index", "--json", "--endpoint", srv.endpoint, env=root_env(srv))
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert json.loads(out.stdout)["job"]["state"] == "done"
        check(srv)
    finally:
        srv.stop()

    # The index lost at start, with the stale copies on the returned disk again.
    for name, blob in stale.items():
        (d0 / bucket_record_path(name)).write_bytes(blob)
    shutil.rmtree(data / "meta")
    srv = start_server(data, env=FAST)
    try:
        check(srv)
        # A bucket created again under the deleted name gets a higher generation than the
        # tombstone and is a bucket like any other.
        make_client(srv).create_bucket(Bucket="gone")
        assert record(d0 / bucket_record_path("gone"))["generation"] > json.loads(
            stale["gone"]
        ).get("generation", 0)
    finally:
        srv.stop()
    shutil.rmtree(data / "meta")
    srv = start_server(data, env=FAST)
    try:
        assert [b["Name"] for b in make_client(srv).list_buckets()["Buckets"]] == ["gone", "pub"]
    finally:
        srv.stop()


def test_returning_disk_gets_the_newest_bucket_records(tmp_path):
    srv = start_server(tmp_path / "data", env=FAST)
    try:
        s3 = make_client(srv)
        s3.create_bucket(Bucket="pub", ACL="public-read")
        s3.create_bucket(Bucket="gone")
        d1 = disks(srv)[1]
        position = record(d1 / "format.json")["position"]
        moved = away(d1)
        wait_until("the disk offline", lambda: disk_state(srv, position) == "offline")
        s3.put_bucket_acl(Bucket="pub", ACL="private")
        s3.delete_bucket(Bucket="gone")
        newest = {n: (disks(srv)[0] / bucket_record_path(n)).read_bytes() for n in ("pub", "gone")}
        moved.rename(d1)
        wait_until(
            "the returned disk's records brought up to date",
            lambda: all((d1 / bucket_record_path(n)).read_bytes() == b for n, b in newest.items()),
        )
        assert record(d1 / bucket_record_path("gone"))["deleted"] is True
    finally:
        srv.stop()


def test_a_user_added_again_under_a_removed_name_owns_nothing_of_the_old_one(server):
    name = f"ren{time.monotonic_ns()}"
    first = admin(
        server, "PUT", f"/users/{name}", {"access_key": name + "A", "secret_key": "s" * 12}
    )
    assert first[0] == 200, first
    old = client_for(server, name + "A", "s" * 12)
    bucket = f"{name}-old"
    old.create_bucket(Bucket=bucket)
    old.put_object(Bucket=bucket, Key="k", Body=b"the old user's")
    assert admin(server, "DELETE", f"/users/{name}")[0] == 204
    again = admin(
        server, "PUT", f"/users/{name}", {"access_key": name + "B", "secret_key": "t" * 12}
    )
    assert again[0] == 200, again
    new = client_for(server, name + "B", "t" * 12)
    assert bucket not in [b["Name"] for b in new.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as exc:
        new.get_object(Bucket=bucket, Key="k")
    assert code_of(exc) == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        new.create_bucket(Bucket=bucket)
    assert code_of(exc) == "BucketAlreadyExists"
    # root still sees it, owned by the removed user's id (not a name anyone holds now)
    s3 = make_client(server)
    owner = s3.get_bucket_acl(Bucket=bucket)["Owner"]
    assert owner["DisplayName"] != name
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"the old user's"


def test_records_written_before_ids_and_generations_still_work(tmp_path):
    """A user record without an id and a bucket record naming its owner by name (as written
    before this change): the user still owns the bucket."""
    data = tmp_path / "data"
    srv = start_server(data, env=FAST)
    try:
        assert (
            admin(srv, "PUT", "/users/olduser", {"access_key": "OLDKEY1", "secret_key": "o" * 12})[
                0
            ]
            == 200
        )
        client_for(srv, "OLDKEY1", "o" * 12).create_bucket(Bucket="oldbucket")
    finally:
        srv.stop()
    for path in disks(srv):
        user_file = path / "users" / "olduser.json"
        doc = record(user_file)
        del doc["id"], doc["generation"]
        user_file.write_text(json.dumps(doc, sort_keys=True) + "\n")
        bucket_file = path / bucket_record_path("oldbucket")
        doc = record(bucket_file)
        doc["owner"] = "olduser"
        del doc["generation"]
        bucket_file.write_text(json.dumps(doc, sort_keys=True) + "\n")
    shutil.rmtree(data / "meta")
    srv = start_server(data, env=FAST)
    try:
        old = client_for(srv, "OLDKEY1", "o" * 12)
        assert [b["Name"] for b in old.list_buckets()["Buckets"]] == ["oldbucket"]
        old.put_object(Bucket="oldbucket", Key="k", Body=b"still mine")
        acl = make_client(srv).get_bucket_acl(Bucket="oldbucket")
        assert acl["Owner"]["DisplayName"] == "olduser"
    finally:
        srv.stop()
