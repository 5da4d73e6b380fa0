"""Interop: the real AWS CLI (v1, pip package `awscli`) against a real `s3free server` process.

Each test runs `aws` as a user would: a subprocess pointed at the server with --endpoint-url,
credentials and region from the environment, settings from an AWS_CONFIG_FILE in a temp dir (no
~/.aws is read). Every test runs over HTTPS with --ca-bundle (where the CLI sends streaming
bodies aws-chunked with trailing checksums); the transfers also over plain HTTP (signed SHA-256
bodies), the rest over HTTP in the slow set only. Downloaded bytes are compared
with the originals; digests the server reports are checked against ones computed here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.interop import find_executable, https_fast, read_tree, urlopen, write_tree
from tests.support.server import make_client

MIB = 1024 * 1024

AWS = find_executable("aws")
pytestmark = pytest.mark.skipif(
    AWS is None, reason="the `aws` CLI (pip package awscli) is not installed in this venv"
)


class Aws:
    """`aws` with a private config dir, pointed at one server."""

    def __init__(self, srv, home: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.endpoint = srv.endpoint
        self.ca_file = srv.ca_file
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AWS_") and k.upper() not in ("HTTP_PROXY", "HTTPS_PROXY")
        }
        self.env.update(
            AWS_ACCESS_KEY_ID=srv.access_key,
            AWS_SECRET_ACCESS_KEY=srv.secret_key,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=str(home / "config"),
            AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            # No retries: the CLI's legacy mode retries even a 400 BadDigest, with back-off,
            # and a failure should show as one.
            AWS_RETRY_MODE="standard",
            AWS_MAX_ATTEMPTS="1",
            HOME=str(home),
            NO_PROXY="127.0.0.1",
        )

    def run(self, *args: str, check: bool = True, stdin: bytes | None = None, timeout=120):
        cmd = [AWS, "--endpoint-url", self.endpoint, *args]
        if self.ca_file:
            cmd[1:1] = ["--ca-bundle", self.ca_file]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout.decode()}\n"
                f"stderr: {proc.stderr.decode()}"
            )
        return proc

    def out(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout.decode()

    def api(self, *args: str) -> dict:
        text = self.out("s3api", *args, "--output", "json")
        return json.loads(text) if text.strip() else {}

    def configure(self, name: str, value: str) -> None:
        subprocess.run([AWS, "configure", "set", name, value], env=self.env, check=True, timeout=60)


@pytest.fixture
def aws(srv, tmp_path):
    return Aws(srv, tmp_path / "awshome")


@pytest.fixture
def bucket(srv, bucket_name):
    # Made with boto3 (in-process, quick); `aws s3 mb` / `rb` are tested in test_ls_and_rm.
    make_client(srv).create_bucket(Bucket=bucket_name)
    return bucket_name


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_cp_small_up_and_down(aws, srv, bucket, tmp_path):
    src = tmp_path / "small.bin"
    data = os.urandom(1000) + b"end"
    src.write_bytes(data)
    key = "dir one/sm\u00e4ll+file.bin"  # space, '+' and non-ASCII in the key
    aws.out(
        "s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/{key}",
        "--content-type", "application/x-small", "--cache-control", "max-age=60",
        "--content-disposition", 'attachment; filename="s.bin"', "--metadata", "k1=v1",
        "--acl", "public-read",
    )  # fmt: skip
    dst = tmp_path / "back.bin"
    aws.out("s3", "cp", "--only-show-errors", f"s3://{bucket}/{key}", str(dst))
    assert dst.read_bytes() == data
    head = aws.api("head-object", "--bucket", bucket, "--key", key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{md5_hex(data)}"'
    assert head["ContentType"] == "application/x-small"
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == 'attachment; filename="s.bin"'
    assert head["Metadata"] == {"k1": "v1"}
    # --acl public-read: anyone may read it, without signing.
    with urlopen(srv, f"{srv.endpoint}/{bucket}/{quote(key)}") as resp:
        assert resp.read() == data
    # an empty file
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    aws.out("s3", "cp", "--only-show-errors", str(empty), f"s3://{bucket}/empty")
    (tmp_path / "empty.out").write_bytes(b"junk")
    aws.out("s3", "cp", "--only-show-errors", f"s3://{bucket}/empty", str(tmp_path / "empty.out"))
    assert (tmp_path / "empty.out").read_bytes() == b""
    # ... which is private: unsigned reads are refused.
    with pytest.raises(urllib.error.HTTPError) as info:
        urlopen(srv, f"{srv.endpoint}/{bucket}/empty")
    assert info.value.code == 403


@https_fast
def test_cp_stdin_and_stdout(aws, bucket):
    """A stream from stdin above the threshold goes up as a multipart upload of unknown size."""
    aws.configure("default.s3.multipart_threshold", "5MB")
    aws.configure("default.s3.multipart_chunksize", "5MB")
    data = os.urandom(6 * MIB + 17)
    aws.run("s3", "cp", "--only-show-errors", "-", f"s3://{bucket}/stream", stdin=data)
    head = aws.api("head-object", "--bucket", bucket, "--key", "stream")
    assert head["ETag"].endswith('-2"'), head  # 5 MiB + the rest
    got = aws.run("s3", "cp", "--only-show-errors", f"s3://{bucket}/stream", "-").stdout
    assert len(got) == len(data)
    assert got == data


def test_cp_multipart_high_level_transfer(aws, bucket, tmp_path):
    aws.configure("default.s3.multipart_threshold", "8MB")
    aws.configure("default.s3.multipart_chunksize", "8MB")
    src = tmp_path / "big.bin"
    data = os.urandom(20 * MIB + 123)
    src.write_bytes(data)
    aws.out("s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/big/file.bin")

    head = aws.api("head-object", "--bucket", bucket, "--key", "big/file.bin")
    assert head["ContentLength"] == len(data)
    # It really went multipart: 8 MiB, 8 MiB, rest -> 3 parts, and S3's multipart ETag is the
    # md5 of the parts' md5 digests, then "-<count>".
    bounds = [(0, 8 * MIB), (8 * MIB, 16 * MIB), (16 * MIB, len(data))]
    parts_md5 = b"".join(hashlib.md5(data[a:b]).digest() for a, b in bounds)
    assert head["ETag"] == f'"{md5_hex(parts_md5)}-3"'

    # Download above the threshold: the CLI fetches it in ranged GETs, in parallel.
    dst = tmp_path / "big.out"
    aws.out("s3", "cp", "--only-show-errors", f"s3://{bucket}/big/file.bin", str(dst))
    assert dst.stat().st_size == len(data)
    assert md5_hex(dst.read_bytes()) == md5_hex(data)

    # No upload left behind.
    listed = aws.api("list-multipart-uploads", "--bucket", bucket)
    assert not listed.get("Uploads")


@https_fast
def test_cp_with_checksum_algorithm(aws, bucket, tmp_path):
    """A SHA-256 the client computes (in a trailer over HTTPS) is stored and given back."""
    data = os.urandom(256 * 1024 + 5)
    src = tmp_path / "c.bin"
    src.write_bytes(data)
    aws.out(
        "s3", "cp", "--only-show-errors", "--checksum-algorithm", "SHA256", str(src),
        f"s3://{bucket}/c.bin",
    )  # fmt: skip
    head = aws.api(
        "head-object", "--bucket", bucket, "--key", "c.bin", "--checksum-mode", "ENABLED"
    )
    want = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert head.get("ChecksumSHA256") == want
    got = tmp_path / "c.out"
    aws.out("s3", "cp", "--only-show-errors", f"s3://{bucket}/c.bin", str(got))
    assert got.read_bytes() == data


@https_fast
def test_sync_both_directions(aws, bucket, tmp_path):
    files = {
        "a.txt": b"alpha\n",
        "sub/b.bin": os.urandom(70_000),
        "sub/deeper/c.bin": os.urandom(1234),
        "sub/deeper/empty": b"",
        "z z/\u00fc.txt": b"unicode name\n",
    }
    up = tmp_path / "up"
    write_tree(up, files)
    out = aws.out("s3", "sync", "--no-progress", str(up), f"s3://{bucket}/tree")
    assert out.count("upload:") == len(files)

    listing = aws.out("s3", "ls", "--recursive", f"s3://{bucket}/tree/")
    listed = {}
    for line in listing.splitlines():
        _date, _time, size, key = line.split(None, 3)
        listed[key] = int(size)
    assert listed == {f"tree/{k}": len(v) for k, v in files.items()}

    # Nothing changed: a second sync copies nothing.
    again = aws.out("s3", "sync", "--no-progress", str(up), f"s3://{bucket}/tree")
    assert "upload:" not in again, again

    down = tmp_path / "down"
    out = aws.out("s3", "sync", "--no-progress", f"s3://{bucket}/tree", str(down))
    assert out.count("download:") == len(files)
    assert read_tree(down) == files
    again = aws.out("s3", "sync", "--no-progress", f"s3://{bucket}/tree", str(down))
    assert "download:" not in again, again

    # One file changes size, one is removed: sync --delete sends exactly that.
    (up / "a.txt").write_bytes(b"alpha, longer now\n")
    (up / "sub/deeper/c.bin").unlink()
    out = aws.out("s3", "sync", "--no-progress", "--delete", str(up), f"s3://{bucket}/tree")
    lines = sorted(out.splitlines())
    assert len(lines) == 2, out
    assert lines[0].startswith("delete: s3://") and lines[0].endswith("tree/sub/deeper/c.bin")
    assert lines[1].startswith("upload: ") and lines[1].endswith(f"s3://{bucket}/tree/a.txt")
    out = aws.out("s3", "sync", "--no-progress", "--delete", f"s3://{bucket}/tree", str(down))
    expected = dict(files, **{"a.txt": b"alpha, longer now\n"})
    del expected["sub/deeper/c.bin"]
    assert read_tree(down) == expected


@https_fast
def test_ls_and_rm_recursive(aws, bucket_name, tmp_path):
    bucket = bucket_name
    assert f"make_bucket: {bucket}" in aws.out("s3", "mb", f"s3://{bucket}")
    keys = ["top.txt", "d1/x.txt", "d1/y.txt", "d1/d2/z.txt", "d3/w.txt"]
    write_tree(tmp_path / "src", {key: b"x" * (i + 1) for i, key in enumerate(keys)})
    aws.out("s3", "sync", "--only-show-errors", str(tmp_path / "src"), f"s3://{bucket}")

    top = aws.out("s3", "ls", f"s3://{bucket}/").splitlines()
    prefixes = sorted(line.split()[-1] for line in top if line.strip().startswith("PRE "))
    objects = [line.split()[-1] for line in top if not line.strip().startswith("PRE ")]
    assert prefixes == ["d1/", "d3/"]
    assert objects == ["top.txt"]

    inner = aws.out("s3", "ls", f"s3://{bucket}/d1/").splitlines()
    assert sorted(line.split()[-1] for line in inner) == ["d2/", "x.txt", "y.txt"]

    rec = aws.out("s3", "ls", "--recursive", f"s3://{bucket}").splitlines()
    got = {line.split()[-1]: int(line.split()[2]) for line in rec}
    assert got == {key: i + 1 for i, key in enumerate(keys)}

    out = aws.out("s3", "rm", "--recursive", f"s3://{bucket}/d1/")
    assert out.count("delete:") == 3
    rec = aws.out("s3", "ls", "--recursive", f"s3://{bucket}").splitlines()
    assert sorted(line.split()[-1] for line in rec) == ["d3/w.txt", "top.txt"]

    out = aws.out("s3", "rm", "--recursive", f"s3://{bucket}")
    assert out.count("delete:") == 2
    # rb without --force fails on a bucket that still holds anything: this also checks that
    # the recursive rm left nothing.
    assert f"remove_bucket: {bucket}" in aws.out("s3", "rb", f"s3://{bucket}")
    assert bucket not in [line.split()[-1] for line in aws.out("s3", "ls").splitlines()]


@https_fast
def test_s3api_calls(aws, bucket, tmp_path):
    body = tmp_path / "body"
    data = b"The quick brown fox jumps over the lazy dog" * 100
    body.write_bytes(data)
    md5_b64 = base64.b64encode(hashlib.md5(data).digest()).decode()
    put = aws.api(
        "put-object", "--bucket", bucket, "--key", "api/obj", "--body", str(body),
        "--content-md5", md5_b64, "--content-type", "text/plain",
        "--metadata", "color=blue,owner=me",
    )  # fmt: skip
    assert put["ETag"] == f'"{md5_hex(data)}"'

    # A Content-MD5 that does not match the body is refused, and nothing is stored.
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    proc = aws.run(
        "s3api", "put-object", "--bucket", bucket, "--key", "api/bad", "--body", str(body),
        "--content-md5", wrong, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert b"BadDigest" in proc.stderr, proc.stderr
    missing = aws.run("s3api", "head-object", "--bucket", bucket, "--key", "api/bad", check=False)
    assert missing.returncode != 0
    assert b"404" in missing.stderr

    # Conditional create: If-None-Match: * on a key that exists is refused.
    proc = aws.run(
        "s3api", "put-object", "--bucket", bucket, "--key", "api/obj", "--body", str(body),
        "--if-none-match", "*", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert b"PreconditionFailed" in proc.stderr, proc.stderr

    head = aws.api("head-object", "--bucket", bucket, "--key", "api/obj")
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "text/plain"
    assert head["Metadata"] == {"color": "blue", "owner": "me"}
    assert head["ETag"] == f'"{md5_hex(data)}"'

    # Ranged get-object into a file.
    part = tmp_path / "part"
    got = aws.api(
        "get-object", "--bucket", bucket, "--key", "api/obj", "--range", "bytes=4-18", str(part)
    )
    assert part.read_bytes() == data[4:19]
    assert got["ContentLength"] == 15
    assert got["ContentRange"] == f"bytes 4-18/{len(data)}"

    write_tree(tmp_path / "many", {f"k{i}": data for i in range(5)})
    aws.out("s3", "cp", "--only-show-errors", "--recursive", str(tmp_path / "many"),
            f"s3://{bucket}/api/list/")  # fmt: skip
    listed = aws.api("list-objects-v2", "--bucket", bucket, "--prefix", "api/", "--delimiter", "/")
    assert [o["Key"] for o in listed["Contents"]] == ["api/obj"]
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["api/list/"]
    # Paging: the CLI follows continuation tokens two keys at a time.
    paged = aws.api(
        "list-objects-v2", "--bucket", bucket, "--prefix", "api/list/", "--page-size", "2"
    )
    assert [o["Key"] for o in paged["Contents"]] == [f"api/list/k{i}" for i in range(5)]
    assert all(o["Size"] == len(data) for o in paged["Contents"])

    aws.api("delete-object", "--bucket", bucket, "--key", "api/obj")
    left = aws.api("list-objects-v2", "--bucket", bucket, "--prefix", "api/o")
    assert not left.get("Contents")


@https_fast
def test_wrong_secret_is_refused(srv, tmp_path):
    aws = Aws(srv, tmp_path / "home")
    aws.env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret-0123456789"
    proc = aws.run("s3", "ls", check=False)
    assert proc.returncode != 0
    assert b"SignatureDoesNotMatch" in proc.stderr, proc.stderr


@https_fast
def test_server_side_copy_and_mv(aws, bucket, tmp_path):
    """s3 -> s3: CopyObject below the threshold, UploadPartCopy with source ranges above it."""
    aws.configure("default.s3.multipart_threshold", "5MB")
    aws.configure("default.s3.multipart_chunksize", "5MB")
    data = os.urandom(11 * MIB + 1)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    aws.out("s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/a/big.bin")
    aws.out("s3", "cp", "--only-show-errors", f"s3://{bucket}/a/big.bin", f"s3://{bucket}/b/big")
    head = aws.api("head-object", "--bucket", bucket, "--key", "b/big")
    bounds = [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, len(data))]
    parts_md5 = b"".join(hashlib.md5(data[a:b]).digest() for a, b in bounds)
    assert head["ETag"] == f'"{md5_hex(parts_md5)}-3"'  # copied in three ranged parts
    assert head["ContentLength"] == len(data)

    small = tmp_path / "small"
    small.write_bytes(b"move me\n")
    aws.out("s3", "cp", "--only-show-errors", str(small), f"s3://{bucket}/a/small")
    out = aws.out("s3", "mv", "--no-progress", f"s3://{bucket}/a/small", f"s3://{bucket}/c/small")
    assert out.startswith(f"move: s3://{bucket}/a/small to s3://{bucket}/c/small"), out
    dst = tmp_path / "dl"
    aws.out("s3", "sync", "--only-show-errors", f"s3://{bucket}", str(dst))
    assert read_tree(dst) == {"a/big.bin": data, "b/big": data, "c/small": b"move me\n"}


@https_fast
def test_presign(aws, srv, bucket, tmp_path):
    body = tmp_path / "p"
    body.write_bytes(b"presigned\n")
    aws.out("s3", "cp", "--only-show-errors", str(body), f"s3://{bucket}/p.txt")
    # The CLI v1 presigns with SigV2 (query auth) unless told otherwise.
    v2 = aws.out("s3", "presign", f"s3://{bucket}/p.txt").strip()
    assert "Signature=" in v2 and "X-Amz-Signature" not in v2
    with urlopen(srv, v2) as resp:
        assert resp.read() == b"presigned\n"
    # A V2 URL with a changed Expires is refused.
    bumped = re.sub(r"Expires=(\d+)", lambda m: f"Expires={int(m.group(1)) + 1}", v2)
    assert bumped != v2
    with pytest.raises(urllib.error.HTTPError) as info:
        urlopen(srv, bumped)
    assert info.value.code == 403

    aws.configure("default.s3.signature_version", "s3v4")
    url = aws.out("s3", "presign", "--expires-in", "300", f"s3://{bucket}/p.txt").strip()
    assert "X-Amz-Signature=" in url
    with urlopen(srv, url) as resp:
        assert resp.read() == b"presigned\n"


@pytest.mark.slow
@pytest.mark.parametrize("srv", ["http"], indirect=True)
def test_sync_more_than_a_listing_page(aws, bucket, tmp_path):
    """1100 keys: every listing the CLI makes spans two pages (continuation tokens)."""
    up = tmp_path / "up"
    files = {f"f{i:04d} +%.txt": f"{i}\n".encode() for i in range(1100)}
    write_tree(up, files)
    aws.out("s3", "sync", "--only-show-errors", str(up), f"s3://{bucket}/m")
    rec = aws.out("s3", "ls", "--recursive", f"s3://{bucket}/m/").splitlines()
    assert sorted(line.split(None, 3)[3] for line in rec) == sorted(f"m/{k}" for k in files)
    again = aws.out("s3", "sync", str(up), f"s3://{bucket}/m")
    assert again.strip() == ""
    aws.out("s3", "rm", "--recursive", "--only-show-errors", f"s3://{bucket}/m")
    assert aws.out("s3", "ls", "--recursive", f"s3://{bucket}").strip() == ""


@pytest.mark.slow
def test_big_multipart_many_parts(aws, bucket, tmp_path):
    """100 MiB in 5 MiB parts: 20 parts, ten at a time (the CLI's default concurrency)."""
    aws.configure("default.s3.multipart_threshold", "5MB")
    aws.configure("default.s3.multipart_chunksize", "5MB")
    src = tmp_path / "big"
    with src.open("wb") as f:
        for _ in range(20):
            f.write(os.urandom(5 * MIB))
    aws.out("s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/big")
    head = aws.api("head-object", "--bucket", bucket, "--key", "big")
    assert head["ETag"].endswith('-20"')
    dst = tmp_path / "big.out"
    aws.out("s3", "cp", "--only-show-errors", f"s3://{bucket}/big", str(dst))
    assert md5_hex(dst.read_bytes()) == md5_hex(src.read_bytes())


@pytest.mark.slow
@pytest.mark.parametrize("srv", ["http"], indirect=True)
def test_killed_upload_is_listed_and_aborted(aws, bucket):
    """The CLI SIGKILLed mid multipart upload: the upload stays, is listed with its parts, and
    abort-multipart-upload removes it; no object appears."""
    aws.configure("default.s3.multipart_threshold", "5MB")
    aws.configure("default.s3.multipart_chunksize", "5MB")
    cmd = [AWS, "--endpoint-url", aws.endpoint, "s3", "cp", "-", f"s3://{bucket}/killed"]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=aws.env,
    )  # fmt: skip
    try:
        assert proc.stdin is not None
        proc.stdin.write(os.urandom(11 * MIB))  # two full parts; stdin stays open
        proc.stdin.flush()
        upload_id, parts = None, []
        deadline = time.monotonic() + 60
        while not parts and time.monotonic() < deadline:
            uploads = aws.api("list-multipart-uploads", "--bucket", bucket).get("Uploads", [])
            if uploads:
                upload_id = uploads[0]["UploadId"]
                listed = aws.api(
                    "list-parts", "--bucket", bucket, "--key", "killed", "--upload-id", upload_id
                )
                parts = listed.get("Parts", [])
            time.sleep(0.1)
        assert parts, "the CLI never got a part up"
    finally:
        proc.kill()
        proc.wait(30)
    uploads = aws.api("list-multipart-uploads", "--bucket", bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("killed", upload_id)]
    assert all(p["Size"] == 5 * MIB for p in parts)
    aws.api(
        "abort-multipart-upload", "--bucket", bucket, "--key", "killed", "--upload-id", upload_id
    )
    assert not aws.api("list-multipart-uploads", "--bucket", bucket).get("Uploads")
    missing = aws.run("s3api", "head-object", "--bucket", bucket, "--key", "killed", check=False)
    assert missing.returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("srv", ["https"], indirect=True)
def test_checksums_when_required(aws, bucket, tmp_path):
    """The opt-out older clients behave like (request_checksum_calculation = when_required):
    no aws-chunked body, no CRC trailer; a Content-Length body with a signed SHA-256 instead."""
    aws.configure("default.request_checksum_calculation", "when_required")
    aws.configure("default.response_checksum_validation", "when_required")
    aws.configure("default.s3.multipart_threshold", "5MB")
    aws.configure("default.s3.multipart_chunksize", "5MB")
    data = os.urandom(7 * MIB + 9)
    src = tmp_path / "w.bin"
    src.write_bytes(data)
    (tmp_path / "s.txt").write_bytes(b"small\n")
    aws.out("s3", "cp", "--only-show-errors", str(src), f"s3://{bucket}/w.bin")
    aws.out("s3", "cp", "--only-show-errors", str(tmp_path / "s.txt"), f"s3://{bucket}/s.txt")
    head = aws.api("head-object", "--bucket", bucket, "--key", "w.bin")
    assert head["ETag"].endswith('-2"')
    aws.out("s3", "sync", "--only-show-errors", f"s3://{bucket}", str(tmp_path / "down"))
    assert read_tree(tmp_path / "down") == {"w.bin": data, "s.txt": b"small\n"}


@https_fast
def test_s3api_object_tagging(aws, bucket, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"tagged by the CLI")
    aws.api(
        "put-object", "--bucket", bucket, "--key", "t/obj", "--body", str(body),
        "--tagging", "project=s3free&empty",
    )  # fmt: skip
    got = aws.api("get-object-tagging", "--bucket", bucket, "--key", "t/obj")
    assert got["TagSet"] == [{"Key": "empty", "Value": ""}, {"Key": "project", "Value": "s3free"}]
    out = aws.api("get-object", "--bucket", bucket, "--key", "t/obj", str(tmp_path / "back"))
    assert out["TagCount"] == 2
    aws.api(
        "put-object-tagging", "--bucket", bucket, "--key", "t/obj",
        "--tagging", '{"TagSet": [{"Key": "n\u00e4me", "Value": "v"}]}',
    )  # fmt: skip
    got = aws.api("get-object-tagging", "--bucket", bucket, "--key", "t/obj")
    assert got["TagSet"] == [{"Key": "n\u00e4me", "Value": "v"}]
    # S3's limits, with S3's error code; the tags stay as they were
    eleven = json.dumps({"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    proc = aws.run(
        "s3api", "put-object-tagging", "--bucket", bucket, "--key", "t/obj", "--tagging", eleven,
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and b"InvalidTag" in proc.stderr, proc.stderr
    proc = aws.run(
        "s3api", "put-object-tagging", "--bucket", bucket, "--key", "t/obj",
        "--tagging", '{"TagSet": [{"Key": "aws:mine", "Value": "v"}]}', check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and b"InvalidTag" in proc.stderr, proc.stderr
    aws.api(
        "copy-object", "--bucket", bucket, "--key", "t/copy", "--copy-source", f"{bucket}/t/obj",
        "--tagging-directive", "REPLACE", "--tagging", "c=1",
    )  # fmt: skip
    got = aws.api("get-object-tagging", "--bucket", bucket, "--key", "t/copy")
    assert got["TagSet"] == [{"Key": "c", "Value": "1"}]
    aws.api("delete-object-tagging", "--bucket", bucket, "--key", "t/obj")
    assert aws.api("get-object-tagging", "--bucket", bucket, "--key", "t/obj")["TagSet"] == []


@https_fast
def test_s3api_bucket_tagging(aws, bucket):
    proc = aws.run("s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
    assert proc.returncode != 0 and b"NoSuchTagSet" in proc.stderr, proc.stderr
    aws.api(
        "put-bucket-tagging", "--bucket", bucket,
        "--tagging", '{"TagSet": [{"Key": "team", "Value": "ops"}, {"Key": "Cost", "Value": ""}]}',
    )  # fmt: skip
    got = aws.api("get-bucket-tagging", "--bucket", bucket)
    assert got["TagSet"] == [{"Key": "Cost", "Value": ""}, {"Key": "team", "Value": "ops"}]
    fifty_one = json.dumps({"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]})
    proc = aws.run(
        "s3api", "put-bucket-tagging", "--bucket", bucket, "--tagging", fifty_one, check=False
    )
    assert proc.returncode != 0 and b"InvalidTag" in proc.stderr, proc.stderr
    aws.api("delete-bucket-tagging", "--bucket", bucket)
    proc = aws.run("s3api", "get-bucket-tagging", "--bucket", bucket, check=False)
    assert proc.returncode != 0 and b"NoSuchTagSet" in proc.stderr, proc.stderr
