"""Virtual-hosted-style addressing (--domain): bucket.DOMAIN/key works beside path style."""

from __future__ import annotations

import http.client
import os
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.support.server import make_client, start_server

DOMAIN = "s3.example.test"


@pytest.fixture(scope="module")
def vhost_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("vhost"), "--domain", DOMAIN)
    yield srv
    srv.stop()


def signed(srv, method: str, host: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a SigV4-signed request to 127.0.0.1 with the given Host header."""
    port = urlsplit(srv.endpoint).port
    request = AWSRequest(
        method=method,
        url=f"http://{host}:{port}{path}",
        data=body,
        headers={"Host": f"{host}:{port}"},
    )
    S3SigV4Auth(Credentials(srv.access_key, srv.secret_key), "s3", "us-east-1").add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body, headers=dict(request.headers))
    response = conn.getresponse()
    return response.status, response.read()


def test_virtual_hosted_and_path_style_reach_the_same_objects(vhost_server):
    srv = vhost_server
    path_style = make_client(srv)
    path_style.create_bucket(Bucket="vbucket")
    data = os.urandom(5000)
    status, body = signed(srv, "PUT", f"vbucket.{DOMAIN}", "/dir/obj.bin", data)
    assert status == 200, body
    assert path_style.get_object(Bucket="vbucket", Key="dir/obj.bin")["Body"].read() == data
    status, body = signed(srv, "GET", f"vbucket.{DOMAIN}", "/dir/obj.bin")
    assert (status, body) == (200, data)
    status, body = signed(srv, "GET", f"vbucket.{DOMAIN}", "/?list-type=2")
    assert status == 200 and b"<Key>dir/obj.bin</Key>" in body
    # The bare domain is the service; a path-style request on it still works.
    status, body = signed(srv, "GET", DOMAIN, "/vbucket/dir/obj.bin")
    assert (status, body) == (200, data)
    status, body = signed(srv, "GET", f"nosuchbucket.{DOMAIN}", "/x")
    assert status == 404 and b"NoSuchBucket" in body


def test_keys_under_the_admin_prefix_are_keys_on_a_bucket_host(vhost_server):
    """ "_s3free/..." is a valid key: on a bucket's virtual host it must reach the bucket, not
    s3free's admin API, metrics or health endpoints (which live on the service host)."""
    srv = vhost_server
    path_style = make_client(srv)
    path_style.create_bucket(Bucket="adminkeys")
    for key in ("_s3free/admin/v1/info", "_s3free/metrics", "_s3free/livez"):
        data = os.urandom(300)
        status, body = signed(srv, "PUT", f"adminkeys.{DOMAIN}", f"/{key}", data)
        assert status == 200, body
        assert path_style.get_object(Bucket="adminkeys", Key=key)["Body"].read() == data
        status, body = signed(srv, "GET", f"adminkeys.{DOMAIN}", f"/{key}")
        assert (status, body) == (200, data)
    status, body = signed(srv, "GET", f"adminkeys.{DOMAIN}", "/?list-type=2&prefix=_s3free")
    assert status == 200 and body.count(b"<Key>_s3free/") == 3
    status, body = signed(srv, "GET", DOMAIN, "/_s3free/livez")  # the service host: s3free's
    assert status == 200 and b"<Key>" not in body
