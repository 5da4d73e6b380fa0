"""Our own SigV4 signer (used by the admin CLI and the load benchmark) against our verifier."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict

from s3free.s3.auth.sigv4 import Credentials, authenticate, sign_headers
from s3free.s3.errors import S3Error

AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)


def lookup(key):
    return Credentials(AK, SK, "root") if key == AK else None


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/", []),
        ("PUT", "/bucket/a%20key/with%2Bplus", []),
        ("GET", "/bucket", [("list-type", "2"), ("prefix", "a/b c"), ("max-keys", "5")]),
        ("DELETE", "/_s3free/admin/v1/users/alice", []),
    ],
)
def test_signed_requests_verify(method, path, query):
    """The verifier is checked against botocore's signer (tests/test_sigv4.py); ours must
    produce what it accepts."""
    headers = sign_headers(
        method=method, host="127.0.0.1:9000", path=path, query=query,
        access_key=AK, secret_key=SK, region="us-east-1", now=NOW,
    )  # fmt: skip
    result = authenticate(
        method=method, path=path, query=query, headers=CIMultiDict(headers),
        lookup=lookup, region="us-east-1", now=NOW,
    )  # fmt: skip
    assert result.credentials.user == "root"


def test_a_changed_request_does_not_verify():
    headers = sign_headers(
        method="GET", host="127.0.0.1:9000", path="/bucket/key", query=[],
        access_key=AK, secret_key=SK, region="us-east-1", now=NOW,
    )  # fmt: skip
    with pytest.raises(S3Error) as err:
        authenticate(
            method="GET", path="/bucket/other", query=[], headers=CIMultiDict(headers),
            lookup=lookup, region="us-east-1", now=NOW,
        )  # fmt: skip
    assert err.value.code == "SignatureDoesNotMatch"
