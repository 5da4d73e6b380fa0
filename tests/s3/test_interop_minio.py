"""Interop: the MinIO Python SDK (pip package `minio`) against a real `s3free server` process.

The client is built as a user would (`Minio("127.0.0.1:PORT", access_key, secret_key,
secure=..., region="us-east-1")`), over HTTP and over HTTPS with the server's certificate as CA.
Presigned URLs it makes are used with plain urllib.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.support.interop import https_fast, urlopen

minio = pytest.importorskip("minio", reason="the minio SDK (pip package minio) is not installed")
urllib3 = pytest.importorskip("urllib3")

from minio.commonconfig import REPLACE, ComposeSource, CopySource  # noqa: E402
from minio.deleteobjects import DeleteObject  # noqa: E402
from minio.error import S3Error  # noqa: E402

MIB = 1024 * 1024


@pytest.fixture
def mc(srv):
    url = urlsplit(srv.endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=60),
        cert_reqs="CERT_REQUIRED" if srv.ca_file else "CERT_NONE",
        ca_certs=srv.ca_file,
        retries=urllib3.Retry(total=0, redirect=0),  # a failure shows as one
    )
    return minio.Minio(
        endpoint=url.netloc,
        access_key=srv.access_key,
        secret_key=srv.secret_key,
        secure=url.scheme == "https",
        region="us-east-1",
        http_client=http,
    )


@pytest.fixture
def bucket(mc, bucket_name):
    mc.make_bucket(bucket_name=bucket_name)
    return bucket_name


def test_put_get_list_stat_remove(mc, bucket):
    assert mc.bucket_exists(bucket_name=bucket)
    assert bucket in [b.name for b in mc.list_buckets()]
    data = os.urandom(100_000)
    res = mc.put_object(
        bucket_name=bucket,
        object_name="dir/obj.bin",
        data=io.BytesIO(data),
        length=len(data),
        content_type="application/x-test",
        metadata={"x-amz-meta-colour": "green"},
    )
    assert res.etag == hashlib.md5(data).hexdigest()
    mc.put_object(bucket_name=bucket, object_name="top.txt", data=io.BytesIO(b"top\n"), length=4)

    resp = mc.get_object(bucket_name=bucket, object_name="dir/obj.bin")
    try:
        assert resp.read() == data
    finally:
        resp.close()
        resp.release_conn()
    part = mc.get_object(bucket_name=bucket, object_name="dir/obj.bin", offset=10, length=20)
    try:
        assert part.read() == data[10:30]
    finally:
        part.close()
        part.release_conn()

    st = mc.stat_object(bucket_name=bucket, object_name="dir/obj.bin")
    assert st.size == len(data)
    assert st.etag == hashlib.md5(data).hexdigest()
    assert st.content_type == "application/x-test"
    assert st.metadata.get("x-amz-meta-colour") == "green"

    top = sorted((o.object_name, o.is_dir) for o in mc.list_objects(bucket_name=bucket))
    assert top == [("dir/", True), ("top.txt", False)]
    rec = {o.object_name: o.size for o in mc.list_objects(bucket_name=bucket, recursive=True)}
    assert rec == {"dir/obj.bin": len(data), "top.txt": 4}
    v1 = [o.object_name for o in mc.list_objects(bucket_name=bucket, use_api_v1=True)]
    assert sorted(v1) == ["dir/", "top.txt"]

    mc.remove_object(bucket_name=bucket, object_name="top.txt")
    with pytest.raises(S3Error) as info:
        mc.stat_object(bucket_name=bucket, object_name="top.txt")
    assert info.value.code in ("NoSuchKey", "ResponseCode404")

    # remove_objects: a multi-object delete (POST ?delete).
    for i in range(3):
        mc.put_object(bucket_name=bucket, object_name=f"many/{i}", data=io.BytesIO(b"x"), length=1)
    errors = list(
        mc.remove_objects(
            bucket_name=bucket,
            delete_object_list=[DeleteObject(f"many/{i}") for i in range(3)],
        )
    )
    assert errors == []
    left = [o.object_name for o in mc.list_objects(bucket_name=bucket, recursive=True)]
    assert left == ["dir/obj.bin"]
    mc.remove_object(bucket_name=bucket, object_name="dir/obj.bin")
    mc.remove_bucket(bucket_name=bucket)
    assert not mc.bucket_exists(bucket_name=bucket)


def test_fput_multipart_and_fget(mc, bucket, tmp_path):
    # The SDK's part size is at least 5 MiB: 11 MiB goes in three parts (5 + 5 + 1).
    data = os.urandom(11 * MIB + 7)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    res = mc.fput_object(bucket_name=bucket, object_name="big.bin", file_path=str(src))
    bounds = [(0, 5 * MIB), (5 * MIB, 10 * MIB), (10 * MIB, len(data))]
    etag = hashlib.md5(b"".join(hashlib.md5(data[a:b]).digest() for a, b in bounds)).hexdigest()
    assert res.etag == f"{etag}-3"
    st = mc.stat_object(bucket_name=bucket, object_name="big.bin")
    assert st.size == len(data)
    assert st.etag == f"{etag}-3"

    dst = tmp_path / "big.out"
    mc.fget_object(bucket_name=bucket, object_name="big.bin", file_path=str(dst))
    assert hashlib.md5(dst.read_bytes()).digest() == hashlib.md5(data).digest()


@https_fast
def test_put_unknown_length_streams_multipart(mc, bucket):
    """length=-1: the SDK reads part_size chunks and uploads them as parts as it goes."""
    data = os.urandom(6 * MIB + 100)
    mc.put_object(
        bucket_name=bucket,
        object_name="stream",
        data=io.BytesIO(data),
        length=-1,
        part_size=5 * MIB,
    )
    resp = mc.get_object(bucket_name=bucket, object_name="stream")
    try:
        got = resp.read()
    finally:
        resp.close()
        resp.release_conn()
    assert got == data
    assert mc.stat_object(bucket_name=bucket, object_name="stream").etag.endswith("-2")


def test_presigned_get_and_put(mc, srv, bucket):
    data = b"presigned body \x00\xff" * 1000
    put_url = mc.presigned_put_object(
        bucket_name=bucket, object_name="pre/s i.bin", expires=timedelta(minutes=5)
    )
    req = urllib.request.Request(put_url, data=data, method="PUT")
    with urlopen(srv, req) as resp:
        assert resp.status == 200
        assert resp.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'

    get_url = mc.presigned_get_object(
        bucket_name=bucket, object_name="pre/s i.bin", expires=timedelta(minutes=5)
    )
    with urlopen(srv, get_url) as resp:
        assert resp.read() == data

    # With response overrides (signed into the URL).
    get_url = mc.presigned_get_object(
        bucket_name=bucket,
        object_name="pre/s i.bin",
        expires=timedelta(minutes=5),
        response_headers={"response-content-type": "text/x-override"},
    )
    with urlopen(srv, get_url) as resp:
        assert resp.headers["Content-Type"] == "text/x-override"
        assert resp.read() == data

    # The URL is good for that object only: the same signature for another key is refused.
    parts = urlsplit(get_url)
    other = urlunsplit(parts._replace(path=parts.path.replace("s%20i.bin", "other.bin")))
    assert other != get_url
    with pytest.raises(urllib.error.HTTPError) as info:
        urlopen(srv, other)
    assert info.value.code == 403
    assert b"SignatureDoesNotMatch" in info.value.read()

    # A tampered signature is refused.
    query = dict(parse_qsl(parts.query))
    sig = query["X-Amz-Signature"]
    query["X-Amz-Signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    tampered = urlunsplit(parts._replace(query=urlencode(query)))
    with pytest.raises(urllib.error.HTTPError) as info:
        urlopen(srv, tampered)
    assert info.value.code == 403


@https_fast
def test_presigned_url_expires(mc, srv, bucket):
    mc.put_object(bucket_name=bucket, object_name="e", data=io.BytesIO(b"e"), length=1)
    url = mc.presigned_get_object(bucket_name=bucket, object_name="e", expires=timedelta(seconds=1))
    time.sleep(2.2)  # X-Amz-Date has 1 s resolution: 2.2 s is past any rounding
    with pytest.raises(urllib.error.HTTPError) as info:
        urlopen(srv, url)
    assert info.value.code == 403
    assert b"AccessDenied" in info.value.read()


@https_fast
def test_copy_and_compose(mc, bucket):
    a = os.urandom(6 * MIB)
    s = b"tail" * 100
    mc.put_object(
        bucket_name=bucket, object_name="a", data=io.BytesIO(a), length=len(a),
        metadata={"x-amz-meta-k": "v"},
    )  # fmt: skip
    mc.put_object(bucket_name=bucket, object_name="s", data=io.BytesIO(s), length=len(s))

    res = mc.copy_object(bucket_name=bucket, object_name="a2", source=CopySource(bucket, "a"))
    assert res.etag == hashlib.md5(a).hexdigest()
    assert mc.stat_object(bucket_name=bucket, object_name="a2").metadata["x-amz-meta-k"] == "v"
    mc.copy_object(
        bucket_name=bucket, object_name="s2", source=CopySource(bucket, "s"),
        metadata={"x-amz-meta-new": "n"}, metadata_directive=REPLACE,
    )  # fmt: skip
    st = mc.stat_object(bucket_name=bucket, object_name="s2")
    assert st.metadata["x-amz-meta-new"] == "n"
    assert st.size == len(s)

    # compose: a multipart upload whose parts are server-side copies (UploadPartCopy), one of
    # them a byte range of its source.
    mc.compose_object(
        bucket_name=bucket,
        object_name="c",
        sources=[
            ComposeSource(bucket, "a"),
            ComposeSource(bucket, "a", offset=10, length=5 * MIB),
            ComposeSource(bucket, "s"),
        ],
    )
    want = a + a[10 : 10 + 5 * MIB] + s
    resp = mc.get_object(bucket_name=bucket, object_name="c")
    try:
        got = resp.read()
    finally:
        resp.close()
        resp.release_conn()
    assert len(got) == len(want)
    assert got == want
    st = mc.stat_object(bucket_name=bucket, object_name="c")
    parts = [a, a[10 : 10 + 5 * MIB], s]
    etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    assert st.etag == f"{etag}-3"

    after = [
        o.object_name for o in mc.list_objects(bucket_name=bucket, recursive=True, start_after="a2")
    ]
    assert after == ["c", "s", "s2"]
