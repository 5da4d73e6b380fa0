"""Full disks through a real server (issue 12 item 5): four 16 MiB tmpfs disks filled by boto3
PUTs. The refused PUT is 507 XS3freeStorageFull, which boto3 with its default retry policy does
not retry; readyz stays ready and says read-only; `disk status` shows the disks full, not
offline; everything acknowledged reads back; DELETE frees the space and writes work again."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from botocore.exceptions import ClientError

from chaos.served import mount_tmpfs, unmount
from tests.s3.cli_support import disk, root_env
from tests.support.obs import health, wait_for
from tests.support.server import make_client, start_server

SIZE = 192 * 1024


@pytest.fixture
def full_server(tmp_path):
    data = tmp_path / "data"
    paths = [data / f"disk{i}" for i in range(1, 5)]
    mounted = []
    try:
        for path in paths:
            why = mount_tmpfs(path, 16)
            if why:
                pytest.skip(f"needs small real filesystems: {why}")
            mounted.append(path)
        srv = start_server(data, env={"S3FREE_DISK_PROBE_S": "0.1"})
        yield srv
        srv.stop()
    finally:
        for path in mounted:
            unmount(path)


def test_full_disks_answer_507_and_recover_after_deletes(full_server):
    srv = full_server
    s3 = make_client(srv)
    retrying = _retrying_client(srv)
    s3.create_bucket(Bucket="fill")
    acked: dict[str, str] = {}
    refused = None
    for i in range(200):  # 4 x 16 MiB at RS(2,2) hold about 160 such objects
        body = random.Random(i).randbytes(SIZE)
        try:
            retrying.put_object(Bucket="fill", Key=f"k{i:03d}", Body=body)
        except ClientError as exc:
            refused = exc.response
            break
        acked[f"k{i:03d}"] = hashlib.sha256(body).hexdigest()
    assert refused is not None, "the disks never filled"
    assert refused["ResponseMetadata"]["HTTPStatusCode"] == 507, refused
    assert refused["Error"]["Code"] == "XS3freeStorageFull"
    assert "free of 16.0 MiB" in refused["Error"]["Message"]
    assert refused["ResponseMetadata"]["RetryAttempts"] == 0  # not retried by the SDK
    # Ready (reads and deletes work), read-only, no disk offline.
    body = wait_for(lambda: _read_only(srv), timeout=30, what="readyz read_only")
    assert body["disks"]["offline"] == 0 and body["full_positions"]
    out = disk("status", "--endpoint", srv.endpoint, env=root_env(srv))
    assert out.returncode == 0, out.stderr
    assert "full, no new data" in out.stdout, out.stdout
    out = disk("status", "--json", "--endpoint", srv.endpoint, env=root_env(srv))
    states = [d["state"] for d in json.loads(out.stdout)["disks"]]
    assert "full" in states and "offline" not in states, states
    for key, digest in acked.items():
        got = s3.get_object(Bucket="fill", Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == digest, key
    for key in sorted(acked)[: len(acked) // 2]:
        s3.delete_object(Bucket="fill", Key=key)
        del acked[key]
    wait_for(lambda: _writable(srv), timeout=60, what="disks writable again")
    s3.put_object(Bucket="fill", Key="after", Body=b"room again")
    assert s3.get_object(Bucket="fill", Key="after")["Body"].read() == b"room again"
    for key, digest in acked.items():
        got = s3.get_object(Bucket="fill", Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == digest, key
    assert " offline: " not in srv.log


def _retrying_client(srv):
    """boto3 as users run it: the standard retry mode, 3 attempts (503s would be retried)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=srv.access_key,
        aws_secret_access_key=srv.secret_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def _read_only(srv) -> dict | None:
    status, body = health(srv.endpoint, "readyz")
    assert status == 200, body  # full disks never make the server unready
    return body if body["read_only"] else None


def _writable(srv) -> bool:
    status, body = health(srv.endpoint, "readyz")
    return status == 200 and not body["read_only"] and not body["full_positions"]
