"""`s3free disk` and the disks admin API against a real server process on real directories:
status, a disk wiped / its format.json deleted / its directory removed while the server runs
(offline, replaced, healing) with S3 reads and writes carrying on, direct mode on the disks
(refused while a server holds them, refused on paths that are not this store), and the error
paths: endpoint down, wrong credentials, non-root user, heal service absent, not built.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest

from s3free.admin.client import AdminClient, AdminError
from s3free.format.diskformat import DiskFormat
from s3free.storage.layout import FORMAT_FILE, HEALING_FILE
from tests.s3.cli_support import base_env, disk, root_env
from tests.s3.users_support import new_user
from tests.support.server import make_client, start_server

FAST = {"S3FREE_DISK_PROBE_S": "0.1"}


def status_json(srv) -> dict:
    out = disk("status", "--json", "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(srv, position: int, state: str, timeout: float = 10) -> dict:
    """Poll status until the disk is in `state` ("healing" also accepts a heal that already
    finished, as a real heal service may be that quick)."""
    deadline = time.monotonic() + timeout
    while True:
        doc = status_json(srv)["disks"][position]
        done = doc["state"] == state or (state == "healing" and doc["last_heal"])
        if done or time.monotonic() > deadline:
            assert done, doc
            return doc
        time.sleep(0.1)


def failed(out, code: int, *words: str) -> None:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    for word in words:
        assert word in out.stderr, out.stderr


@pytest.fixture
def srv(tmp_path):
    server = start_server(tmp_path / "data", env=FAST)
    yield server
    server.stop()


@pytest.fixture
def s3c(srv):
    client = make_client(srv)
    client.create_bucket(Bucket="bkt")
    return client


def put_some(s3c, n: int = 6) -> dict[str, bytes]:
    objects = {f"k{i}": bytes([i]) * (i * 70_000 + 1) for i in range(n)}
    for key, body in objects.items():
        s3c.put_object(Bucket="bkt", Key=key, Body=body)
    return objects


def check_all(s3c, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        assert s3c.get_object(Bucket="bkt", Key=key)["Body"].read() == body


def test_status_text_and_json(srv, s3c):
    put_some(s3c)
    out = disk("status", "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, out.stderr
    assert "RS(2,2)" in out.stdout
    for i in range(1, 5):
        assert str(srv.data_dir / f"disk{i}") in out.stdout
    assert out.stdout.count(" online ") == 4
    doc = status_json(srv)
    assert [d["state"] for d in doc["disks"]] == ["online"] * 4
    for d in doc["disks"]:
        fmt = DiskFormat.decode((Path(d["path"]) / FORMAT_FILE).read_bytes())
        assert (d["disk_id"], d["set_id"], d["position"]) == (fmt.disk_id, fmt.set_id, fmt.position)
        assert d["shards"]["exact"] and d["shards"]["shard_files"] >= 1
        assert d["errors"] == 0 and d["heal"] is None
    assert sum(d["shards"]["shard_files"] for d in doc["disks"]) == 6 * 4


def test_a_disk_wiped_while_serving_is_replaced_and_healing(srv, s3c):
    objects = put_some(s3c)
    victim = srv.data_dir / "disk2"
    old = DiskFormat.decode((victim / FORMAT_FILE).read_bytes())
    for entry in victim.iterdir():  # .s3free.tmp may stay: the probe writes there
        if entry.name != ".s3free.tmp":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    check_all(s3c, objects)  # reads carry on while it is gone
    doc = wait_for(srv, 1, "healing")
    assert DiskFormat.decode((victim / FORMAT_FILE).read_bytes()) == old
    heal = doc["heal"] or doc["last_heal"]
    assert heal["position"] == 1 and heal["disk_id"] == old.disk_id
    # The heal tracker is on the disk while it heals. The heal may finish between the status
    # read and this look: then a fresh status no longer says "healing".
    if (victim / HEALING_FILE).exists():
        assert doc["state"] == "healing", doc
    else:
        assert status_json(srv)["disks"][1]["state"] != "healing"
    s3c.put_object(Bucket="bkt", Key="after", Body=b"x" * 100_000)
    objects["after"] = b"x" * 100_000
    check_all(s3c, objects)


def test_format_json_deleted_then_restored(srv, s3c):
    objects = put_some(s3c, 3)
    fmt = srv.data_dir / "disk4" / FORMAT_FILE
    saved = fmt.read_bytes()
    fmt.unlink()
    doc = wait_for(srv, 3, "offline")
    assert "not empty" in doc["problem"]
    check_all(s3c, objects)
    s3c.put_object(Bucket="bkt", Key="while-offline", Body=b"y" * 5000)
    assert not fmt.exists()  # never formatted over
    fmt.write_bytes(saved)
    wait_for(srv, 3, "online")
    assert s3c.get_object(Bucket="bkt", Key="while-offline")["Body"].read() == b"y" * 5000


def test_directory_removed_then_replaced_by_the_operator(srv, s3c):
    objects = put_some(s3c, 3)
    victim = srv.data_dir / "disk1"
    gone = srv.data_dir / "pulled"
    victim.rename(gone)  # the disk is pulled at once (rmtree in place races the probe)
    shutil.rmtree(gone)
    doc = wait_for(srv, 0, "offline")
    assert "directory missing" in doc["problem"]
    out = disk("replace", "0", "--endpoint", srv.endpoint, env=root_env(srv))
    failed(out, 1)
    assert "still offline" in out.stdout
    victim.mkdir()
    out = disk("replace", str(victim), "--json", "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    # the monitor's own loop may have formatted and healed it first
    assert answer["disk"]["state"] in ("healing", "online")
    assert (victim / FORMAT_FILE).exists()
    check_all(s3c, objects)
    out = disk("replace", "nonsense", "--endpoint", srv.endpoint, env=root_env(srv))
    failed(out, 2, "not a disk of this set")


def test_repair_of_a_missing_key_fails_and_an_unknown_disk_is_usage(srv, s3c):
    """A repair of a key that is not there is an error (1), not an empty pass that exits 0;
    a disk position the set does not have is bad usage (2), as the help says."""
    s3c.put_object(Bucket="bkt", Key="there", Body=b"z" * 1000)
    env = root_env(srv)
    for wait in ((), ("--wait",)):
        out = disk("repair", "--bucket", "bkt", "--object", "nosuchkey", *wait,
                   "--endpoint", srv.endpoint, env=env)  # fmt: skip
        failed(out, 1, "bkt/nosuchkey does not exist")
        assert "started repair" not in out.stdout
    out = disk("repair", "--bucket", "bkt", "--object", "there", "--wait",
               "--endpoint", srv.endpoint, env=env)  # fmt: skip
    assert out.returncode == 0, (out.stdout, out.stderr)
    out = disk("replace", "12", "--endpoint", srv.endpoint, env=env)
    failed(out, 2, "'12' is not a disk of this set")


def test_add_and_remove_are_not_built(srv):
    client = AdminClient(srv.endpoint, srv.access_key, srv.secret_key)
    for action in ("add", "remove"):
        with pytest.raises(AdminError) as err:
            client.disk_action(action, "/somewhere")
        assert err.value.status == 501 and "not built" in str(err.value)
        out = disk(action, "/somewhere", env=base_env())
        failed(out, 2, "not built yet")


def test_endpoint_down_credentials_wrong_and_not_root(srv):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = disk("status", "--endpoint", f"http://127.0.0.1:{port}", env=root_env(srv))
    failed(out, 3, "cannot reach", "connection refused")
    env = {**root_env(srv), "S3FREE_SECRET_KEY": "wrong-secret-key-0000"}
    failed(disk("status", "--endpoint", srv.endpoint, env=env), 4, "access denied")
    failed(disk("status", "--endpoint", srv.endpoint, env=base_env()), 2, "S3FREE_ACCESS_KEY")
    user = new_user(srv)
    env = {**base_env(), "S3FREE_ACCESS_KEY": user.access_key, "S3FREE_SECRET_KEY": user.secret_key}
    failed(disk("status", "--endpoint", srv.endpoint, env=env), 4, "access denied", "root")
    failed(disk("status", "--endpoint", "ftp://x", env=root_env(srv)), 2, "endpoint")


def test_direct_mode_is_refused_while_the_server_runs(srv, s3c):
    put_some(s3c, 2)
    out = disk("status", "--data-dir", str(srv.data_dir), env=base_env())
    failed(out, 6, "in use", "--endpoint")
    paths = [a for i in range(1, 5) for a in ("--disk", str(srv.data_dir / f"disk{i}"))]
    out = disk("status", *paths, "--meta-dir", str(srv.data_dir / "meta"), env=base_env())
    failed(out, 6, "in use")
    out = disk("status", *paths, env=base_env())
    failed(out, 2, "--meta-dir")
    out = disk(
        "status", "--endpoint", srv.endpoint, "--data-dir", str(srv.data_dir), env=base_env()
    )
    failed(out, 2, "not both")
    status_json(srv)  # the server is unharmed


def test_direct_mode_on_stopped_disks(tmp_path):
    data = tmp_path / "data"
    server = start_server(data, env=FAST)
    s3c = make_client(server)
    s3c.create_bucket(Bucket="bkt")
    objects = put_some(s3c, 4)
    server.stop()

    out = disk("status", "--json", "--data-dir", str(data), env=base_env())
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [d["state"] for d in doc["disks"]] == ["online"] * 4
    assert sum(d["shards"]["shard_files"] for d in doc["disks"]) == 4 * 4

    # a wiped disk is reported, not formatted, by status; `disk replace` formats it
    victim = data / "disk3"
    shutil.rmtree(victim)
    victim.mkdir()
    out = disk("status", "--data-dir", str(data), env=base_env())
    assert out.returncode == 0, out.stderr
    assert "empty directory: not formatted here" in out.stdout
    assert not (victim / FORMAT_FILE).exists()
    out = disk("replace", "2", "--data-dir", str(data), env=base_env())
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert (victim / FORMAT_FILE).exists() and (victim / HEALING_FILE).exists()
    failed(disk("replace", "12", "--data-dir", str(data), env=base_env()), 2, "not a disk")
    out = disk("repair", "--bucket", "bkt", "--object", "nosuchkey", "--data-dir", str(data),
               env=base_env())  # fmt: skip
    failed(out, 1, "bkt/nosuchkey does not exist")

    # paths that are not this store
    empty = [tmp_path / f"e{i}" for i in range(4)]
    for p in empty:
        p.mkdir()
    args = [a for p in empty for a in ("--disk", str(p))]
    out = disk("status", *args, "--meta-dir", str(tmp_path / "m"), env=base_env())
    failed(out, 5, "not a disk of an s3free store")
    assert all(not any(p.iterdir()) for p in empty)  # nothing formatted
    three = [a for i in range(1, 4) for a in ("--disk", str(data / f"disk{i}"))]
    out = disk("status", *three, "--meta-dir", str(data / "meta"), env=base_env())
    failed(out, 5, "4 disks, 3 were given")

    server = start_server(data, env=FAST)  # the server takes the disks back
    try:
        check_all(make_client(server), objects)
    finally:
        server.stop()
