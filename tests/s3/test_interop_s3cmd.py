"""Interop: the real s3cmd (pip package `s3cmd`) against a real `s3free server` process.

s3cmd runs as a subprocess with a generated config file (-c), path-style addressing
(host_bucket = host_base = 127.0.0.1:PORT), SigV4, over HTTP and over HTTPS with the server's
certificate as ca_certs_file (certificate and hostname checks on).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.interop import find_executable, https_fast, urlopen
from tests.support.server import make_client

MIB = 1024 * 1024

S3CMD = find_executable("s3cmd")
pytestmark = pytest.mark.skipif(
    S3CMD is None, reason="s3cmd (pip package s3cmd) is not installed in this venv"
)


def write_config(srv, path: Path) -> Path:
    url = urlsplit(srv.endpoint)
    https = url.scheme == "https"
    lines = [
        "[default]",
        f"access_key = {srv.access_key}",
        f"secret_key = {srv.secret_key}",
        f"host_base = {url.netloc}",
        f"host_bucket = {url.netloc}",
        "bucket_location = us-east-1",
        f"use_https = {https}",
        f"signurl_use_https = {https}",
        "signature_v2 = False",
        "check_ssl_certificate = True",
        "check_ssl_hostname = True",
        f"ca_certs_file = {srv.ca_file or ''}",
        "proxy_host = ",
        "proxy_port = 0",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class S3cmd:
    def __init__(self, srv, home: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.config = write_config(srv, home / "s3cfg")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env["HOME"] = str(home)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [S3CMD, "-c", str(self.config), "--no-progress", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"s3cmd {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout


@pytest.fixture
def s3cmd(srv, tmp_path):
    return S3cmd(srv, tmp_path / "home")


def ls_keys(text: str) -> dict[str, int]:
    """{url: size} from `s3cmd ls` object lines (date time size url)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith("s3://"):
            out[parts[3]] = int(parts[2])
    return out


@https_fast
def test_put_get_ls_del(s3cmd, srv, bucket_name, tmp_path):
    b = bucket_name
    assert f"Bucket 's3://{b}/' created" in s3cmd.out("mb", f"s3://{b}")
    data = os.urandom(70_001)
    src = tmp_path / "obj.bin"
    src.write_bytes(data)
    (tmp_path / "note.txt").write_text("hello s3cmd\n")
    s3cmd.out("put", str(src), f"s3://{b}/data/obj.bin")
    s3cmd.out("put", str(tmp_path / "note.txt"), f"s3://{b}/note.txt")

    top = s3cmd.out("ls", f"s3://{b}")
    assert f"DIR  s3://{b}/data/" in top
    assert ls_keys(top) == {f"s3://{b}/note.txt": 12}
    rec = s3cmd.out("ls", "--recursive", f"s3://{b}")
    assert ls_keys(rec) == {f"s3://{b}/data/obj.bin": len(data), f"s3://{b}/note.txt": 12}
    assert f"s3://{b}" in s3cmd.out("ls")

    dst = tmp_path / "back.bin"
    s3cmd.out("get", f"s3://{b}/data/obj.bin", str(dst))
    assert dst.read_bytes() == data
    head = make_client(srv).head_object(Bucket=b, Key="data/obj.bin")
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'

    # A missing object: s3cmd reports it and exits non-zero.
    missing = s3cmd.run("get", f"s3://{b}/nope", str(tmp_path / "nope"), check=False)
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr, missing.stderr

    assert f"delete: 's3://{b}/note.txt'" in s3cmd.out("del", f"s3://{b}/note.txt")
    assert ls_keys(s3cmd.out("ls", "--recursive", f"s3://{b}")) == {
        f"s3://{b}/data/obj.bin": len(data)
    }
    # A bucket that is not empty cannot be removed.
    assert s3cmd.run("rb", f"s3://{b}", check=False).returncode != 0
    s3cmd.out("del", "--recursive", "--force", f"s3://{b}")
    assert ls_keys(s3cmd.out("ls", "--recursive", f"s3://{b}")) == {}
    assert f"Bucket 's3://{b}/' removed" in s3cmd.out("rb", f"s3://{b}")


@https_fast
def test_multipart_put(s3cmd, srv, bucket_name, tmp_path):
    b = bucket_name
    s3cmd.out("mb", f"s3://{b}")
    data = os.urandom(12 * MIB)
    src = tmp_path / "m12.bin"
    src.write_bytes(data)
    s3cmd.out("put", "--multipart-chunk-size-mb=5", str(src), f"s3://{b}/big/m12.bin")

    # Three parts of 5, 5 and 2 MiB: S3's multipart ETag is md5(concatenated part md5s)-3.
    bounds = [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, 12 * MIB)]
    etag = hashlib.md5(b"".join(hashlib.md5(data[a:c]).digest() for a, c in bounds)).hexdigest()
    head = make_client(srv).head_object(Bucket=b, Key="big/m12.bin")
    assert head["ETag"] == f'"{etag}-3"'
    assert head["ContentLength"] == len(data)

    info = s3cmd.out("info", f"s3://{b}/big/m12.bin")
    assert "File size: 12582912" in info
    dst = tmp_path / "m12.out"
    s3cmd.out("get", f"s3://{b}/big/m12.bin", str(dst))
    assert hashlib.md5(dst.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    listed = s3cmd.out("multipart", f"s3://{b}")
    assert "big/m12.bin" not in listed  # no upload left in progress


@https_fast
def test_sync_up_and_down(s3cmd, bucket_name, tmp_path):
    b = bucket_name
    s3cmd.out("mb", f"s3://{b}")
    files = {"a.txt": b"alpha\n", "d/b.bin": os.urandom(5000), "d/e/c.bin": os.urandom(10)}
    up = tmp_path / "up"
    for rel, data in files.items():
        (up / rel).parent.mkdir(parents=True, exist_ok=True)
        (up / rel).write_bytes(data)
    out = s3cmd.out("sync", f"{up}/", f"s3://{b}/tree/")
    assert out.count("upload:") == len(files), out
    again = s3cmd.out("sync", f"{up}/", f"s3://{b}/tree/")
    assert "upload:" not in again, again

    down = tmp_path / "down"
    down.mkdir()
    out = s3cmd.out("sync", f"s3://{b}/tree/", f"{down}/")
    assert out.count("download:") == len(files), out
    got = {p.relative_to(down).as_posix(): p.read_bytes() for p in down.rglob("*") if p.is_file()}
    assert got == files
    again = s3cmd.out("sync", f"s3://{b}/tree/", f"{down}/")
    assert "download:" not in again, again


@https_fast
def test_copy_move_modify_public(s3cmd, srv, bucket_name, tmp_path):
    b = bucket_name
    s3cmd.out("mb", f"s3://{b}")
    data = os.urandom(20_000)
    (tmp_path / "orig.bin").write_bytes(data)
    s3cmd.out("put", "--mime-type=application/x-orig", str(tmp_path / "orig.bin"), f"s3://{b}/o")
    s3cmd.out("cp", f"s3://{b}/o", f"s3://{b}/copy")
    s3cmd.out("mv", f"s3://{b}/copy", f"s3://{b}/moved")
    s3cmd.out("modify", "--add-header=Cache-Control:max-age=5", f"s3://{b}/moved")
    client = make_client(srv)
    head = client.head_object(Bucket=b, Key="moved")
    assert head["ContentType"] == "application/x-orig"
    assert head["CacheControl"] == "max-age=5"
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert client.get_object(Bucket=b, Key="moved")["Body"].read() == data
    assert ls_keys(s3cmd.out("ls", f"s3://{b}")) == {
        f"s3://{b}/o": len(data),
        f"s3://{b}/moved": len(data),
    }
    du = s3cmd.out("du", f"s3://{b}").split()
    assert du[:2] == [str(2 * len(data)), "2"], du

    # put --acl-public sends x-amz-acl: public-read; an unsigned GET then works.
    (tmp_path / "pub.txt").write_text("for everyone\n")
    s3cmd.out("put", "--acl-public", str(tmp_path / "pub.txt"), f"s3://{b}/pub.txt")
    with urlopen(srv, f"{srv.endpoint}/{b}/pub.txt") as r:
        assert r.read() == b"for everyone\n"
    with pytest.raises(urllib.error.HTTPError) as info:
        urlopen(srv, f"{srv.endpoint}/{b}/o")
    assert info.value.code == 403


@https_fast
def test_signurl_and_signature_v2(srv, bucket_name, tmp_path):
    """s3cmd's signurl makes a SigV2 query-auth URL; with signature_v2 = True it signs every
    request with SigV2 headers."""
    s3cmd = S3cmd(srv, tmp_path / "home")
    b = bucket_name
    s3cmd.out("mb", f"s3://{b}")
    (tmp_path / "x.txt").write_text("signed url\n")
    s3cmd.out("put", str(tmp_path / "x.txt"), f"s3://{b}/x.txt")
    url = s3cmd.out("signurl", f"s3://{b}/x.txt", "+300").strip()
    assert "Signature=" in url
    assert url.startswith(f"{srv.endpoint}/{b}/x.txt?")
    with urlopen(srv, url) as r:
        assert r.read() == b"signed url\n"

    cfg = s3cmd.config.read_text().replace("signature_v2 = False", "signature_v2 = True")
    s3cmd.config.write_text(cfg)
    data = os.urandom(3000)
    (tmp_path / "v2.bin").write_bytes(data)
    s3cmd.out("put", str(tmp_path / "v2.bin"), f"s3://{b}/v2.bin")
    s3cmd.out("get", f"s3://{b}/v2.bin", str(tmp_path / "v2.out"))
    assert (tmp_path / "v2.out").read_bytes() == data
    assert set(ls_keys(s3cmd.out("ls", f"s3://{b}"))) == {f"s3://{b}/x.txt", f"s3://{b}/v2.bin"}
    s3cmd.out("del", f"s3://{b}/v2.bin")
    assert set(ls_keys(s3cmd.out("ls", f"s3://{b}"))) == {f"s3://{b}/x.txt"}
