"""Interop: rclone (Debian package `rclone`) against a real `s3free server` process.

The remote is configured only through environment variables, as a user would for a one-off
(RCLONE_CONFIG_S3FREE_TYPE=s3, PROVIDER=Other, ENDPOINT, keys, REGION, FORCE_PATH_STYLE), with an
empty config file; over HTTPS rclone is given the server's certificate with --ca-cert. Skipped
when rclone is not installed (tools/ci_setup.sh installs it with apt-get).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.interop import https_fast, read_tree, write_tree
from tests.support.server import make_client

MIB = 1024 * 1024
RCLONE = shutil.which("rclone")
pytestmark = pytest.mark.skipif(
    RCLONE is None,
    reason="rclone is not installed (Debian package rclone; tools/ci_setup.sh installs it)",
)


class Rclone:
    def __init__(self, srv, home: Path):
        home.mkdir(parents=True, exist_ok=True)
        # No AWS_* variable from the outside reaches rclone's S3 SDK (AWS_CA_BUNDLE, say).
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AWS_", "RCLONE_"))
            and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY")
        }
        self.env.update(
            HOME=str(home),
            RCLONE_CONFIG=str(home / "rclone.conf"),
            RCLONE_CONFIG_S3FREE_TYPE="s3",
            RCLONE_CONFIG_S3FREE_PROVIDER="Other",
            RCLONE_CONFIG_S3FREE_ENV_AUTH="false",
            RCLONE_CONFIG_S3FREE_ACCESS_KEY_ID=srv.access_key,
            RCLONE_CONFIG_S3FREE_SECRET_ACCESS_KEY=srv.secret_key,
            RCLONE_CONFIG_S3FREE_ENDPOINT=srv.endpoint,
            RCLONE_CONFIG_S3FREE_REGION="us-east-1",
            RCLONE_CONFIG_S3FREE_FORCE_PATH_STYLE="true",
            NO_PROXY="127.0.0.1",
        )
        (home / "rclone.conf").write_text("")
        self.ca = srv.ca_file

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [RCLONE, *args, "--retries", "1", "--low-level-retries", "1"]
        if self.ca:
            cmd += ["--ca-cert", self.ca]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"rclone {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc


@pytest.fixture
def rclone(srv, tmp_path):
    return Rclone(srv, tmp_path / "home")


@https_fast
def test_copy_up_check_copy_down(rclone, srv, bucket_name, tmp_path):
    b = bucket_name
    rclone.run("mkdir", f"s3free:{b}")
    big = os.urandom(12 * MIB + 3)
    files = {
        "big.bin": big,
        "sub/a.txt": b"hello rclone\n",
        "sub/b.bin": os.urandom(4096),
        "sub/empty": b"",
        "sp ace/\u00e9t\u00e9.txt": b"summer\n",
    }
    up = tmp_path / "up"
    write_tree(up, files)
    old = datetime(2021, 3, 4, 5, 6, 7).timestamp()
    os.utime(up / "sub/a.txt", (old, old))

    # 5 MiB cutoff and chunks: big.bin goes as a multipart upload of 5 + 5 + 2 MiB.
    out = rclone.run(
        "copy", "-v", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
        str(up), f"s3free:{b}/tree",
    )  # fmt: skip
    assert out.stderr.count("Copied (new)") == len(files), out.stderr
    head = make_client(srv).head_object(Bucket=b, Key="tree/big.bin")
    bounds = [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, len(big))]
    etag = hashlib.md5(b"".join(hashlib.md5(big[x:y]).digest() for x, y in bounds)).hexdigest()
    assert head["ETag"] == f'"{etag}-3"'

    listed = json.loads(rclone.run("lsjson", "-R", "--files-only", f"s3free:{b}/tree").stdout)
    assert {e["Path"]: e["Size"] for e in listed} == {k: len(v) for k, v in files.items()}
    # rclone keeps the modification time in user metadata (X-Amz-Meta-Mtime).
    mtime = next(e["ModTime"] for e in listed if e["Path"] == "sub/a.txt")
    assert mtime.startswith("2021-03-04T05:06:07")

    # check compares sizes and MD5s (ETag, or rclone's md5chksum metadata for multipart).
    check = rclone.run("check", str(up), f"s3free:{b}/tree")
    assert "0 differences found" in check.stderr, check.stderr
    assert f"{len(files)} matching files" in check.stderr, check.stderr

    # Nothing changed: a second copy transfers nothing.
    again = rclone.run("copy", "-v", str(up), f"s3free:{b}/tree")
    assert "Copied" not in again.stderr, again.stderr

    down = tmp_path / "down"
    out = rclone.run("copy", "-v", f"s3free:{b}/tree", str(down))
    assert read_tree(down) == files
    assert (down / "sub/a.txt").stat().st_mtime == pytest.approx(old, abs=1)

    # Server-side copy within the remote: CopyObject, and UploadPartCopy above the cutoff.
    out = rclone.run("copy", "-v", "--s3-copy-cutoff", "5M", f"s3free:{b}/tree", f"s3free:{b}/t2")
    assert out.stderr.count("Copied (server-side copy)") == len(files), out.stderr
    assert make_client(srv).head_object(Bucket=b, Key="t2/big.bin")["ETag"] == f'"{etag}-3"'
    check = rclone.run("check", "--download", str(up), f"s3free:{b}/t2")
    assert f"{len(files)} matching files" in check.stderr, check.stderr

    # A change of content at the same size is seen by check (it really compares hashes).
    (up / "sub/a.txt").write_bytes(b"HELLO RCLONE\n")
    bad = rclone.run("check", str(up), f"s3free:{b}/tree", check=False)
    assert bad.returncode != 0
    assert "1 differences found" in bad.stderr, bad.stderr


@https_fast
def test_check_download_delete_purge(rclone, bucket_name, tmp_path):
    b = bucket_name
    rclone.run("mkdir", f"s3free:{b}")
    files = {f"d{i % 3}/f{i}.bin": os.urandom(1000 + i) for i in range(12)}
    up = tmp_path / "up"
    write_tree(up, files)
    rclone.run("copy", str(up), f"s3free:{b}")
    # --download compares the bytes read back, not the hashes.
    check = rclone.run("check", "--download", str(up), f"s3free:{b}")
    assert f"{len(files)} matching files" in check.stderr, check.stderr

    size = json.loads(rclone.run("size", "--json", f"s3free:{b}").stdout)
    assert size["count"] == len(files)
    assert size["bytes"] == sum(len(v) for v in files.values())

    rclone.run("delete", f"s3free:{b}/d1")
    left = json.loads(rclone.run("lsjson", "-R", "--files-only", f"s3free:{b}").stdout)
    assert sorted(e["Path"] for e in left) == sorted(k for k in files if not k.startswith("d1/"))

    rclone.run("purge", f"s3free:{b}")
    buckets = json.loads(rclone.run("lsjson", "s3free:").stdout)
    assert b not in [e["Path"] for e in buckets]


@https_fast
def test_v2_auth(rclone, bucket_name, tmp_path):
    """rclone with v2_auth = true signs every request with SigV2 (HMAC-SHA1), multipart too."""
    rclone.env["RCLONE_CONFIG_S3FREE_V2_AUTH"] = "true"
    b = bucket_name
    files = {"big.bin": os.urandom(6 * MIB), "small.txt": b"v2\n"}
    up = tmp_path / "up"
    write_tree(up, files)
    rclone.run("mkdir", f"s3free:{b}")
    rclone.run("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(up), f"s3free:{b}")
    check = rclone.run("check", "--download", str(up), f"s3free:{b}")
    assert "2 matching files" in check.stderr, check.stderr
    rclone.run("purge", f"s3free:{b}")
    assert b not in [e["Path"] for e in json.loads(rclone.run("lsjson", "s3free:").stdout)]
    # and a wrong secret is refused under V2 as well
    rclone.env["RCLONE_CONFIG_S3FREE_SECRET_ACCESS_KEY"] = "wrong-secret-0123456789"
    denied = rclone.run("lsjson", "s3free:", check=False)
    assert denied.returncode != 0
    assert "SignatureDoesNotMatch" in denied.stderr, denied.stderr
