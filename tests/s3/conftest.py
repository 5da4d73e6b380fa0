"""Fixtures for S3 API tests: a real server process per test session (HTTP and HTTPS), and
boto3 clients pointed at it with default settings."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.s3.users_support import admin, new_user
from tests.support.server import make_client, start_server

_names = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("s3free-http"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("s3free-https"), tls=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def s3(server):
    return make_client(server)


@pytest.fixture(scope="session")
def s3_tls(tls_server):
    return make_client(tls_server)


@pytest.fixture(params=["http", "https"])
def any_s3(request):
    """The same test over plain HTTP and over HTTPS (where clients use aws-chunked bodies and
    trailing checksums)."""
    return request.getfixturevalue("s3" if request.param == "http" else "s3_tls")


@pytest.fixture(params=["http", "https"])
def srv(request):
    """The server over plain HTTP and over HTTPS, for the real clients (tests/support/interop:
    `https_fast` keeps the fast set to HTTPS)."""
    return request.getfixturevalue("server" if request.param == "http" else "tls_server")


@pytest.fixture
def bucket_name():
    return f"test-{os.getpid()}-{next(_names)}"


@pytest.fixture
def bucket(s3, bucket_name):
    s3.create_bucket(Bucket=bucket_name)
    return bucket_name


@pytest.fixture
def user(server):
    """A fresh non-root user with a boto3 client signed with its keys; removed afterwards."""
    made = new_user(server)
    yield made
    admin(server, "DELETE", f"/users/{made.name}")


@pytest.fixture
def other_user(server):
    made = new_user(server)
    yield made
    admin(server, "DELETE", f"/users/{made.name}")
