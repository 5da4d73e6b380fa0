"""`s3free admin user add|list|remove`, run as a real subprocess against a real server.

What the CLI does must show on the server: a user it adds can use S3 (boto3) and one it
removes cannot. Failures must say what went wrong on stderr, print nothing on stdout, and exit
non-zero: 1 when the server refused or could not be reached, 2 for usage and missing
credentials.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess

import pytest
from botocore.exceptions import ClientError

from tests.s3.cli_support import admin, base_env, root_env
from tests.support.server import make_client

_ids = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_ids)}"


def at(srv) -> list[str]:
    return ["--endpoint", srv.endpoint, *(["--ca-bundle", srv.ca_file] if srv.ca_file else [])]


def listed(srv) -> dict[str, dict]:
    out = admin("user", "list", "--json", *at(srv), env=root_env(srv))
    assert out.returncode == 0, out.stderr
    return {u["name"]: u for u in json.loads(out.stdout)["users"]}


def failed(out: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert out.stdout == ""
    for word in words:
        assert word in out.stderr, out.stderr


class _Creds:
    def __init__(self, srv, access_key: str, secret_key: str) -> None:
        self.endpoint, self.ca_file = srv.endpoint, srv.ca_file
        self.access_key, self.secret_key = access_key, secret_key


def test_add_list_remove_user_and_what_it_can_do(server, bucket_name):
    name, access, secret = unique("cli-"), unique("CLIKEY"), "cli-secret-0123456789"
    out = admin(
        "user", "add", name, "--access-key", access, "--secret-key", secret,
        *at(server), env=root_env(server),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert name in out.stdout and access in out.stdout
    assert secret not in out.stdout + out.stderr  # never echoed

    table = admin("user", "list", *at(server), env=root_env(server))
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:]}
    assert rows[name][1] == access
    assert rows["root"][1] == server.access_key
    users = listed(server)
    assert users[name]["access_key"] == access
    assert users[name]["created_ms"] > 0
    assert "secret" not in json.dumps(users).lower()

    # the new user works with S3
    s3 = make_client(_Creds(server, access, secret))
    s3.create_bucket(Bucket=bucket_name)
    s3.put_object(Bucket=bucket_name, Key="k", Body=b"made by a CLI user")
    assert s3.get_object(Bucket=bucket_name, Key="k")["Body"].read() == b"made by a CLI user"

    out = admin("user", "remove", name, *at(server), env=root_env(server))
    assert out.returncode == 0, out.stderr
    assert name in out.stdout
    assert name not in listed(server)
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket_name, Key="k")
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"

    failed(admin("user", "remove", name, *at(server), env=root_env(server)), 1, "does not exist")


def test_duplicates_are_refused(server):
    name, access = unique("dup-"), unique("DUPKEY")
    args = ["--access-key", access, "--secret-key", "dup-secret-123", *at(server)]
    assert admin("user", "add", name, *args, env=root_env(server)).returncode == 0
    failed(admin("user", "add", name, *args, env=root_env(server)), 1, "already exists", name)
    other = unique("dup-")
    failed(
        admin("user", "add", other, *args, env=root_env(server)), 1, "access key", "already in use"
    )
    assert other not in listed(server)
    assert admin("user", "remove", name, *at(server), env=root_env(server)).returncode == 0


@pytest.mark.parametrize(
    ("name", "access", "secret", "words"),
    [
        ("has space", "BADNAMEKEY1", "long-enough-secret", ["not allowed"]),
        ("-leading-dash", "BADNAMEKEY2", "long-enough-secret", ["not allowed"]),
        ("root", "BADNAMEKEY3", "long-enough-secret", ["not allowed"]),
        ("x" * 65, "BADNAMEKEY4", "long-enough-secret", ["not allowed"]),
        ("a/b", "BADNAMEKEY5", "long-enough-secret", ["not allowed"]),
        ("..", "BADNAMEKEY6", "long-enough-secret", ["not allowed"]),
        ("okname", "K", "long-enough-secret", ["access key"]),
        ("okname", "BAD KEY", "long-enough-secret", ["access key"]),
        ("okname", "BADNAMEKEY7", "short", ["secret key"]),
    ],
)
def test_bad_user_specs_are_refused(server, name, access, secret, words):
    before = listed(server)
    out = admin(
        "user", "add", "--access-key", access, "--secret-key", secret, *at(server), "--", name,
        env=root_env(server),
    )  # fmt: skip
    failed(out, 1, "invalid request", *words)
    assert listed(server) == before  # nothing added, root untouched


def test_endpoint_down(server):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = admin("user", "list", "--endpoint", f"http://127.0.0.1:{port}", env=root_env(server))
    failed(out, 1, "cannot reach", f"127.0.0.1:{port}", "connection refused")
    out = admin(
        "user", "add", "nobody", "--access-key", "NOBODYKEY1", "--secret-key", "nobody-secret",
        "--endpoint", f"http://127.0.0.1:{port}", env=root_env(server),
    )  # fmt: skip
    failed(out, 1, "cannot reach")


def test_bad_endpoint_or_ca_bundle_is_a_usage_error(server, tmp_path):
    for endpoint in ("127.0.0.1:9000", "ftp://127.0.0.1:9000", "http://127.0.0.1:9000/?x=1"):
        out = admin("user", "list", "--endpoint", endpoint, env=root_env(server))
        failed(out, 2, "endpoint", "http://HOST:PORT" if "?" not in endpoint else "query")
    not_a_cert = tmp_path / "ca.pem"
    not_a_cert.write_text("this is not a certificate\n")
    https = "https://127.0.0.1:1"
    out = admin(
        "user", "list", "--endpoint", https, "--ca-bundle", str(not_a_cert), env=root_env(server)
    )
    failed(out, 2, "CA bundle", str(not_a_cert))
    out = admin(
        "user", "list", "--endpoint", https, "--ca-bundle", str(tmp_path / "none.pem"),
        env=root_env(server),
    )  # fmt: skip
    failed(out, 2, "--ca-bundle")


def test_wrong_or_missing_root_credentials(server, tmp_path):
    env = {**root_env(server), "S3FREE_SECRET_KEY": server.secret_key + "x"}
    failed(admin("user", "list", *at(server), env=env), 1, "access denied", "SignatureDoesNotMatch")
    env = {**root_env(server), "S3FREE_ACCESS_KEY": "NOSUCHROOTKEY1"}
    failed(admin("user", "list", *at(server), env=env), 1, "access denied", "InvalidAccessKeyId")
    # a wrong region is refused by the server and said so
    env = {**root_env(server), "S3FREE_REGION": "eu-west-3"}
    failed(admin("user", "list", *at(server), env=env), 1, "eu-west-3", "us-east-1")

    failed(admin("user", "list", *at(server), env=base_env()), 2, "S3FREE_ACCESS_KEY")
    env = {**base_env(), "S3FREE_ACCESS_KEY": server.access_key}
    failed(admin("user", "list", *at(server), env=env), 2, "S3FREE_SECRET_KEY")
    # a half S3FREE pair is not completed from AWS_*
    env = {**env, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": server.secret_key}
    failed(admin("user", "list", *at(server), env=env), 2, "S3FREE_SECRET_KEY")


def test_aws_environment_credentials_are_the_fallback(server):
    env = {
        **base_env(),
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
    }
    out = admin("user", "list", "--json", *at(server), env=env)
    assert out.returncode == 0, out.stderr
    assert "root" in {u["name"] for u in json.loads(out.stdout)["users"]}
    # S3FREE_* win over AWS_*
    wrong = {**env, "S3FREE_ACCESS_KEY": server.access_key, "S3FREE_SECRET_KEY": "not-it-at-all"}
    failed(admin("user", "list", *at(server), env=wrong), 1, "access denied")


def test_a_non_root_user_cannot_administer(server):
    name, access, secret = unique("plain-"), unique("PLAINKEY"), "plain-secret-0123"
    out = admin(
        "user", "add", name, "--access-key", access, "--secret-key", secret,
        *at(server), env=root_env(server),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    env = {**base_env(), "S3FREE_ACCESS_KEY": access, "S3FREE_SECRET_KEY": secret}
    failed(admin("user", "list", *at(server), env=env), 1, "access denied", "root")
    failed(admin("user", "remove", name, *at(server), env=env), 1, "access denied")
    assert name in listed(server)
    assert admin("user", "remove", name, *at(server), env=root_env(server)).returncode == 0


def test_https_with_ca_bundle(tls_server):
    name, access = unique("tls-"), unique("TLSKEY")
    out = admin(
        "user", "add", name, "--access-key", access, "--secret-key", "tls-secret-0123",
        *at(tls_server), env=root_env(tls_server),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert listed(tls_server)[name]["access_key"] == access
    # without the CA bundle the self-signed certificate is refused, with a hint
    out = admin("user", "list", "--endpoint", tls_server.endpoint, env=root_env(tls_server))
    failed(out, 1, "cannot reach", "certificate", "--ca-bundle")
    # plain HTTP to the HTTPS port gets no HTTP answer
    plain = tls_server.endpoint.replace("https://", "http://")
    failed(admin("user", "list", "--endpoint", plain, env=root_env(tls_server)), 1, "cannot reach")
    assert admin("user", "remove", name, *at(tls_server), env=root_env(tls_server)).returncode == 0


@pytest.mark.parametrize("args", [("nonsense", "-x")])
def test_admin_commands_not_built_yet(args):
    out = admin(*args, env=base_env())
    failed(out, 2, "not built yet", f"admin {args[0]}")


def test_user_command_usage_errors(server):
    # missing options or arguments: click's usage error, exit 2, nothing done
    failed(admin("user", "add", unique("u-"), *at(server), env=root_env(server)), 2, "--access-key")
    failed(admin("user", "remove", *at(server), env=root_env(server)), 2, "NAME")
