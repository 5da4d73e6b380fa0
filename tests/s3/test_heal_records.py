"""Records kept on every disk (buckets, users) are what a lost index is rebuilt from: a scrub
finds their rotten, truncated and missing copies and rewrites them, so damage that moves from
disk to disk over the weeks never takes them all (issue 11: "bucket records included")."""

from __future__ import annotations

import shutil

from s3free.storage.layout import bucket_record_path
from tests.s3.cli_support import disk, root_env
from tests.s3.raw import disks
from tests.s3.users_support import client_for, new_user
from tests.support.server import make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.2", "S3FREE_SCRUB_INTERVAL_S": "0"}


def test_scrub_restores_bucket_and_user_records_then_a_rebuild_finds_them(tmp_path):
    data = tmp_path / "data"
    srv = start_server(data, env=FAST)
    try:
        s3 = make_client(srv)
        s3.create_bucket(Bucket="records", ACL="public-read")
        s3.put_object(Bucket="records", Key="k", Body=b"kept")
        user = new_user(srv)
        paths = disks(srv)
        bucket_files = [p / bucket_record_path("records") for p in paths]
        user_files = [p / "users" / f"{user.name}.json" for p in paths]
        good_bucket = bucket_files[0].read_bytes()
        good_user = user_files[0].read_bytes()
        # Every copy but one damaged, each a different way.
        bucket_files[1].write_bytes(good_bucket[: len(good_bucket) // 2])
        rotten = bytearray(good_bucket)
        rotten[len(rotten) // 3] ^= 0x20
        bucket_files[2].write_bytes(bytes(rotten))
        bucket_files[3].unlink()
        user_files[1].unlink()
        user_files[2].write_bytes(good_user[:10])
        rotten = bytearray(good_user)
        rotten[-20] ^= 0x01  # inside the sealed secret: its MAC fails
        user_files[3].write_bytes(bytes(rotten))

        out = disk("scrub", "--wait", "--endpoint", srv.endpoint, env=root_env(srv))
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert "records restored  6" in out.stdout, out.stdout
        assert [f.read_bytes() for f in bucket_files] == [good_bucket] * len(paths)
        assert [f.read_bytes() for f in user_files] == [good_user] * len(paths)
    finally:
        srv.stop()

    # Now the one copy that was never damaged rots too, and the index is lost.
    bucket_files[0].write_bytes(b"{")
    user_files[0].unlink()
    shutil.rmtree(data / "meta")
    srv = start_server(data, env=FAST)
    try:
        s3 = make_client(srv)
        grants = s3.get_bucket_acl(Bucket="records")["Grants"]
        assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants), grants
        assert s3.get_object(Bucket="records", Key="k")["Body"].read() == b"kept"
        dave = client_for(srv, user.access_key, user.secret_key)
        assert dave.list_buckets()["Buckets"] is not None  # his key still works
    finally:
        srv.stop()
