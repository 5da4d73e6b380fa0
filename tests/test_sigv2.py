"""SigV2 (HMAC-SHA1) verification: s3free.s3.auth.sigv2.authenticate_v2.

The oracle is independent of the code under test: botocore's own V2 signers (HmacV1Auth for the
Authorization header, HmacV1QueryAuth for presigned URLs) sign many requests, and the published
examples of AWS's "Signing and Authenticating REST Requests" page must verify. Then every single
change to a signed request must be refused with the right error code. Last, end to end: a
boto3 presigned URL made with default settings (SigV2 for us-east-1) works against a real
server, and a boto3 client signing with SigV2 can do the everyday operations.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from multidict import CIMultiDict

from s3free.s3.auth.sigv2 import authenticate_v2
from s3free.s3.auth.sigv4 import Credentials, parse_query
from s3free.s3.errors import S3Error

AK = "AKIAV2TESTKEY0001"
SK = "v2-secret/with+odd=chars-0123456789"
CREDS = Credentials(AK, SK, "alice")


def lookup(access_key: str) -> Credentials | None:
    return CREDS if access_key == AK else None


# ---------------------------------------------------------------------------------------------
# Signing with botocore and handing the result to authenticate_v2 as the server would see it


class Signed:
    """A botocore-signed request, as (method, raw path, decoded query, headers) plus `now`."""

    def __init__(self, method: str, url: str, headers: CIMultiDict, now: datetime) -> None:
        split = urlsplit(url)
        self.method = method
        self.path = split.path
        self.query = parse_query(split.query)
        self.headers = headers
        self.now = now

    def auth(self, **changes):
        kwargs = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "lookup": lookup,
            "now": self.now,
        }
        kwargs.update(changes)
        return authenticate_v2(**kwargs)


def _request(method, url, headers, auth_path):
    request = AWSRequest(method=method, url=url, data=b"")
    for name, value in headers:
        request.headers[name] = value  # HTTPHeaders: a repeated name adds a value
    request.auth_path = auth_path
    return request


def sign_header(method, url, headers=(), *, auth_path=None, secret=SK, access=AK) -> Signed:
    request = _request(method, url, headers, auth_path)
    HmacV1Auth(BotoCredentials(access, secret)).add_auth(request)
    sent = CIMultiDict()
    for name in set(request.headers.keys()):
        for value in request.headers.get_all(name):
            sent.add(name, value)
    now = email.utils.parsedate_to_datetime(request.headers["Date"])
    return Signed(method, request.url, sent, now)


def sign_query(method, url, headers=(), *, expires=3600) -> Signed:
    request = _request(method, url, headers, None)
    before = datetime.now(UTC)
    HmacV1QueryAuth(BotoCredentials(AK, SK), expires=expires).add_auth(request)
    # The presigner moved Content-Type/MD5 and x-amz-* into the query; a browser sends none.
    return Signed(method, request.url, CIMultiDict(), before)


HOST = "http://127.0.0.1:9000"

HEADER_CASES = {
    "get-object": ("GET", "/bkt/photos/puppy.jpg", [], None),
    "encoded-key": ("GET", "/bkt/dir/h%C3%A9%20llo%2Bx%3D1.txt", [], None),
    "lowercase-escapes-literal": ("GET", "/bkt/fran%c3%a7ais", [], None),
    "list-buckets": ("GET", "/", [], None),
    "bucket-acl": ("GET", "/bkt?acl", [], None),
    "list-with-unsigned-params": ("GET", "/bkt?prefix=a%2Fb&max-keys=5&marker=x", [], None),
    "versioned-get-with-overrides": (
        "GET",
        "/bkt/k?versionId=3%2Fabc&response-content-type=text%2Fplain"
        "&response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22",
        [],
        None,
    ),
    "put-with-metadata": (
        "PUT",
        "/bkt/k.bin",
        [
            ("Content-Type", "application/x-download"),
            ("Content-MD5", base64.b64encode(hashlib.md5(b"x").digest()).decode()),
            ("x-amz-acl", "public-read"),
            ("X-Amz-Meta-ReviewedBy", "joe@example.net"),
            ("X-Amz-Meta-ReviewedBy", " jane@example.net "),
            ("x-amz-meta-empty", ""),
        ],
        None,
    ),
    "multi-delete": ("POST", "/bkt?delete", [("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==")], None),
    "upload-part": ("PUT", "/bkt/big?partNumber=2&uploadId=abc%2Bdef", [], None),
    "create-multipart": ("POST", "/bkt/big?uploads", [("Content-Type", "video/mp4")], None),
    "copy": ("PUT", "/bkt/dst", [("x-amz-copy-source", "/bkt/src%20key")], None),
    # botocore signs bucket operations as "/bucket/" even when it sends path-style "/bucket"
    "path-style-bucket-as-botocore-signs": ("PUT", "/bkt", [], "/bkt/"),
    "path-style-bucket-subresource": ("GET", "/bkt?versioning", [], "/bkt/"),
}


@pytest.mark.parametrize("case", sorted(HEADER_CASES))
def test_botocore_header_signatures_verify(case):
    method, target, headers, auth_path = HEADER_CASES[case]
    signed = sign_header(method, HOST + target, headers, auth_path=auth_path)
    result = signed.auth()
    assert result is not None
    assert result.credentials == CREDS
    assert (result.payload, result.presigned) == ("UNSIGNED-PAYLOAD", False)
    assert (result.signing_key, result.seed_signature) == (b"", "")


def test_virtual_hosted_requests_sign_the_bucket_from_the_host():
    # botocore's virtual-host signing: the URL has no bucket, the auth path has it.
    signed = sign_header(
        "GET", "http://bkt.s3.example.com/photos/a.jpg", auth_path="/bkt/photos/a.jpg"
    )
    assert signed.auth(bucket="bkt").credentials == CREDS
    with pytest.raises(S3Error) as err:
        signed.auth()  # without the bucket the resource differs
    assert err.value.code == "SignatureDoesNotMatch"
    with pytest.raises(S3Error) as err:
        signed.auth(bucket="other")
    assert err.value.code == "SignatureDoesNotMatch"
    listing = sign_header("GET", "http://bkt.s3.example.com/?acl", auth_path="/bkt/")
    assert listing.auth(bucket="bkt").credentials == CREDS


def _expect(code: str, signed: Signed, **changes) -> S3Error:
    with pytest.raises(S3Error) as err:
        signed.auth(**changes)
    assert err.value.code == code, err.value.message
    return err.value


def _with_header(headers: CIMultiDict, name: str, value: str | None) -> CIMultiDict:
    out = CIMultiDict(headers)
    out.popall(name, None)
    if value is not None:
        out.add(name, value)
    return out


PUT_HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
    ("x-amz-meta-color", "blue"),
]


@pytest.fixture
def signed_put():
    signed = sign_header("PUT", HOST + "/bkt/key?versionId=v1", PUT_HEADERS)
    assert signed.auth().credentials == CREDS
    return signed


def test_header_auth_refuses_any_single_change(signed_put):
    s = signed_put
    h = s.headers
    mismatch = "SignatureDoesNotMatch"
    err = _expect(mismatch, s, method="POST")
    assert err.extra["StringToSign"].startswith("POST\n")  # tells the client what we signed
    assert err.extra["AWSAccessKeyId"] == AK
    _expect(mismatch, s, path="/bkt/kez")
    _expect(mismatch, s, path="/bkt/KEY")
    _expect(mismatch, s, path="/bkt2/key")
    _expect(mismatch, s, path="/bkt/key%20")
    _expect(mismatch, s, query=[("versionId", "v2")])
    _expect(mismatch, s, query=[])
    _expect(mismatch, s, query=[*s.query, ("acl", "")])
    _expect(mismatch, s, query=[*s.query, ("tagging", "")])
    _expect(mismatch, s, headers=_with_header(h, "Content-Type", "text/html"))
    _expect(mismatch, s, headers=_with_header(h, "Content-Type", None))
    _expect(mismatch, s, headers=_with_header(h, "Content-MD5", "XrY7u+Ae7tCTyyK7j1rNww=="))
    _expect(mismatch, s, headers=_with_header(h, "x-amz-meta-color", "red"))
    _expect(mismatch, s, headers=_with_header(h, "x-amz-meta-color", None))
    _expect(mismatch, s, headers=_with_header(h, "x-amz-acl", "public-read"))
    date = email.utils.parsedate_to_datetime(h["Date"])
    _expect(
        mismatch,
        s,
        headers=_with_header(
            h, "Date", email.utils.format_datetime(date + timedelta(seconds=1), usegmt=True)
        ),
    )
    provided = h["Authorization"]
    flipped = provided[:-3] + ("A" if provided[-3] != "A" else "B") + provided[-2:]
    _expect(mismatch, s, headers=_with_header(h, "Authorization", flipped))
    # a different key entirely
    other = sign_header("PUT", HOST + "/bkt/key?versionId=v1", PUT_HEADERS, secret=SK + "x")
    _expect(mismatch, other)


def test_header_auth_time_and_key_checks(signed_put):
    s = signed_put
    h = s.headers
    # the signature is fine, the clock is not: 15 minutes is the limit either way
    assert s.auth(now=s.now + timedelta(minutes=14, seconds=59)).credentials == CREDS
    err = _expect("RequestTimeTooSkewed", s, now=s.now + timedelta(minutes=15, seconds=2))
    assert err.status == 403
    _expect("RequestTimeTooSkewed", s, now=s.now - timedelta(minutes=16))
    err = _expect("AccessDenied", s, headers=_with_header(h, "Date", None))
    assert "Date" in err.message
    _expect("AccessDenied", s, headers=_with_header(h, "Date", "yesterday-ish"))
    unknown = _with_header(h, "Authorization", h["Authorization"].replace(AK, "AKIANOSUCHKEY0000"))
    err = _expect("InvalidAccessKeyId", s, headers=unknown)
    assert err.status == 403
    for bad in ("AWS " + AK, "AWS :sig", "AWS " + AK + ":", "AWS "):
        _expect("InvalidArgument", s, headers=_with_header(h, "Authorization", bad))
    # V2 header plus a V4 or V2 presigned query: only one mechanism
    _expect("InvalidArgument", s, query=[*s.query, ("X-Amz-Algorithm", "AWS4-HMAC-SHA256")])
    _expect("InvalidArgument", s, query=[*s.query, ("Signature", "abc")])


def test_not_v2_is_left_to_sigv4():
    common = {"method": "GET", "path": "/bkt/k", "lookup": lookup}
    assert authenticate_v2(query=[], headers=CIMultiDict(), **common) is None
    v4_auth = (
        "AWS4-HMAC-SHA256 Credential=x/20240101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=00"
    )
    v4 = CIMultiDict({"Authorization": v4_auth})
    assert authenticate_v2(query=[], headers=v4, **common) is None
    v4q = [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Signature", "00")]
    assert authenticate_v2(query=v4q, headers=CIMultiDict(), **common) is None
    # "AWSx" is not the V2 scheme either
    odd = CIMultiDict({"Authorization": "AWSX " + AK + ":abc"})
    assert authenticate_v2(query=[], headers=odd, **common) is None


def _sign_sts(sts: str, secret: str = SK) -> str:
    return base64.b64encode(hmac.digest(secret.encode(), sts.encode(), "sha1")).decode()


def test_x_amz_date_is_the_request_time_and_empties_the_date_position():
    """AWS: "if you include the x-amz-date header, use the empty string for the Date when
    constructing the StringToSign" (x-amz-date itself is an x-amz- header, so it is signed)."""
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    amz_date = email.utils.format_datetime(now, usegmt=True)
    sts = f"DELETE\n\n\n\nx-amz-date:{amz_date}\n/bkt/k"
    headers = CIMultiDict({"x-amz-date": amz_date, "Authorization": f"AWS {AK}:{_sign_sts(sts)}"})
    common = {"method": "DELETE", "path": "/bkt/k", "query": [], "lookup": lookup}
    assert authenticate_v2(headers=headers, now=now, **common).credentials == CREDS
    # a Date header, when also sent, does not take part (nor decide the time)
    stale = email.utils.format_datetime(now - timedelta(days=3), usegmt=True)
    both = CIMultiDict(headers, Date=stale)
    assert authenticate_v2(headers=both, now=now, **common).credentials == CREDS
    # the time is x-amz-date's
    with pytest.raises(S3Error) as err:
        authenticate_v2(headers=headers, now=now + timedelta(minutes=20), **common)
    assert err.value.code == "RequestTimeTooSkewed"
    changed = _with_header(
        headers, "x-amz-date", email.utils.format_datetime(now + timedelta(seconds=1), usegmt=True)
    )
    with pytest.raises(S3Error) as err:
        authenticate_v2(headers=changed, now=now, **common)
    assert err.value.code == "SignatureDoesNotMatch"


def test_botocore_style_date_with_x_amz_date_also_verifies():
    """botocore (and MinIO) put the Date header's value in the Date position even when an
    x-amz-date header is sent; the request time is then x-amz-date's."""
    now_http = email.utils.formatdate(usegmt=True)
    signed = sign_header("GET", HOST + "/bkt/k", [("x-amz-date", now_http)])
    assert "x-amz-date" in signed.headers
    assert signed.auth().credentials == CREDS
    skewed = _with_header(
        signed.headers,
        "x-amz-date",
        email.utils.format_datetime(signed.now - timedelta(hours=1), usegmt=True),
    )
    _expect("RequestTimeTooSkewed", signed, headers=skewed)


# ---------------------------------------------------------------------------------------------
# Query-string authentication (presigned URLs)


def test_botocore_presigned_urls_verify():
    for target in (
        "/bkt/photos/puppy.jpg",
        "/bkt/a%20b%2Bc",
        "/bkt/k?versionId=v%2B1",
        "/bkt/k?response-content-type=text%2Fplain",
    ):
        signed = sign_query("GET", HOST + target)
        names = [k for k, _ in signed.query]
        assert {"AWSAccessKeyId", "Signature", "Expires"} <= set(names)
        result = signed.auth()
        assert result.credentials == CREDS
        assert (result.presigned, result.payload) == (True, "UNSIGNED-PAYLOAD")


def test_presigned_url_refuses_any_single_change():
    signed = sign_query("GET", HOST + "/bkt/key?versionId=v1")
    q = signed.query

    def replaced(name, value):
        return [(k, value if k == name else v) for k, v in q]

    mismatch = "SignatureDoesNotMatch"
    _expect(mismatch, signed, method="HEAD")
    _expect(mismatch, signed, path="/bkt/kez")
    _expect(mismatch, signed, query=replaced("versionId", "v2"))
    _expect(mismatch, signed, query=[*q, ("acl", "")])
    expires = int(dict(q)["Expires"])
    _expect(mismatch, signed, query=replaced("Expires", str(expires + 1)))
    sig = dict(q)["Signature"]
    _expect(
        mismatch, signed, query=replaced("Signature", ("A" if sig[0] != "A" else "B") + sig[1:])
    )
    # headers that were not in the URL cannot be added
    _expect(mismatch, signed, headers=CIMultiDict({"Content-Type": "text/html"}))
    _expect(mismatch, signed, headers=CIMultiDict({"x-amz-acl": "public-read"}))
    _expect("InvalidAccessKeyId", signed, query=replaced("AWSAccessKeyId", "AKIANOSUCHKEY0000"))
    for missing in ("AWSAccessKeyId", "Signature", "Expires"):
        _expect("AccessDenied", signed, query=[(k, v) for k, v in q if k != missing])
    _expect("AccessDenied", signed, query=replaced("Expires", "tomorrow"))
    _expect("AccessDenied", signed, query=[*q, ("Signature", sig)])  # given twice
    # a V4 presigned parameter beside the V2 ones: two mechanisms
    _expect("InvalidArgument", signed, query=[*q, ("X-Amz-Algorithm", "AWS4-HMAC-SHA256")])


def test_presigned_url_expiry():
    signed = sign_query("GET", HOST + "/bkt/key", expires=60)
    expires = datetime.fromtimestamp(int(dict(signed.query)["Expires"]), UTC)
    assert signed.auth(now=expires).credentials == CREDS  # valid up to Expires
    err = _expect("AccessDenied", signed, now=expires + timedelta(seconds=1))
    assert err.message == "Request has expired"
    assert err.status == 403
    # no Date header rule for query auth: a URL is good until it expires, if that is at
    # most a week (plus the allowed clock skew) away, as SigV4 caps X-Amz-Expires
    assert signed.auth(now=expires - timedelta(days=7, minutes=15)).credentials == CREDS
    err = _expect(
        "AuthorizationQueryParametersError",
        signed,
        now=expires - timedelta(days=7, minutes=15, seconds=1),
    )
    assert err.status == 400 and "604800" in err.message
    _expect("AuthorizationQueryParametersError", signed, now=expires - timedelta(days=30))


def test_presigned_headers_moved_into_the_query_are_signed():
    signed = sign_query(
        "PUT",
        HOST + "/bkt/upload.txt",
        [("Content-Type", "text/plain"), ("x-amz-acl", "public-read"), ("x-amz-meta-a", "1")],
    )
    q = dict(signed.query)
    assert q["content-type"] == "text/plain" and q["x-amz-acl"] == "public-read"
    assert signed.auth().credentials == CREDS  # a client sending no such header
    same = CIMultiDict({"Content-Type": "text/plain"})
    assert signed.auth(headers=same).credentials == CREDS  # or sending the same one
    _expect("SignatureDoesNotMatch", signed, headers=CIMultiDict({"Content-Type": "text/html"}))
    tampered = [(k, "private" if k == "x-amz-acl" else v) for k, v in signed.query]
    _expect("SignatureDoesNotMatch", signed, query=tampered)
    dropped = [(k, v) for k, v in signed.query if k != "x-amz-meta-a"]
    _expect("SignatureDoesNotMatch", signed, query=dropped)


def test_unescaped_plus_in_signature_is_tolerated():
    # find a URL whose signature has a '+', then send it with '+' unescaped (read as ' ')
    for i in range(200):
        signed = sign_query("GET", HOST + f"/bkt/k{i}")
        sig = dict(signed.query)["Signature"]
        if "+" in sig:
            break
    else:
        pytest.skip("no signature with '+' in 200 tries")
    spaced = [(k, v.replace("+", " ") if k == "Signature" else v) for k, v in signed.query]
    assert signed.auth(query=spaced).credentials == CREDS


# ---------------------------------------------------------------------------------------------
# AWS's published examples (docs: "Signing and authenticating REST requests", AWS signature
# version 2). Credentials AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY. The
# published signatures were computed for the bucket "johnsmith" (later page versions renamed
# the bucket to awsexamplebucket1 in the text but kept the signatures), so that is the bucket
# used here. The "Delete" example is left out: its StringToSign puts x-amz-date's value in the
# Date position and omits the x-amz-date header line, contradicting the page's own rule (and
# what s3cmd, boto 2 and Ceph RGW do), which test_x_amz_date_... covers.

DOC_CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "doc")

DOC_EXAMPLES = {
    "object-get": (
        "GET", "/photos/puppy.jpg", [], "johnsmith",
        {"Date": "Tue, 27 Mar 2007 19:36:42 +0000"}, "bWq2s1WEIj+Ydj0vQ697zp+IXMU=",
    ),
    "object-put": (
        "PUT", "/photos/puppy.jpg", [], "johnsmith",
        {"Content-Type": "image/jpeg", "Content-Length": "94328",
         "Date": "Tue, 27 Mar 2007 21:15:45 +0000"},
        "MyyxeRY7whkBe+bq8fHCL/2kKUg=",
    ),
    "list": (
        "GET", "/", [("prefix", "photos"), ("max-keys", "50"), ("marker", "puppy")], "johnsmith",
        {"User-Agent": "Mozilla/5.0", "Date": "Tue, 27 Mar 2007 19:42:41 +0000"},
        "htDYFYduRNen8P9ZfE/s9SuKy0U=",
    ),
    "fetch-acl": (
        "GET", "/", [("acl", "")], "johnsmith",
        {"Date": "Tue, 27 Mar 2007 19:44:46 +0000"}, "c2WLPFtWHVgbEmeEG93a4cG37dM=",
    ),
    "upload-cname": (
        "PUT", "/db-backup.dat.gz", [], "static.johnsmith.net",
        [("User-Agent", "curl/7.15.5"), ("Host", "static.johnsmith.net:8080"),
         ("Date", "Tue, 27 Mar 2007 21:06:08 +0000"), ("x-amz-acl", "public-read"),
         ("content-type", "application/x-download"), ("Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="),
         ("X-Amz-Meta-ReviewedBy", "joe@johnsmith.net"),
         ("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net"),
         ("X-Amz-Meta-FileChecksum", "0x02661779"), ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
         ("Content-Disposition", "attachment; filename=database.dat"),
         ("Content-Encoding", "gzip"), ("Content-Length", "5913339")],
        "ilyl83RwaSoYIEdixDQcA4OnAnc=",
    ),
    "list-all-my-buckets": (
        "GET", "/", [], None, {"Date": "Wed, 28 Mar 2007 01:29:59 +0000"},
        "qGdzdERIC03wnaRNKh6OqZehG9s=",
    ),
    "unicode-keys": (
        "GET", "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re", [], None,
        {"Date": "Wed, 28 Mar 2007 01:49:49 +0000"}, "DNEZGsoieTZ92F3bUfSPQcbGmlM=",
    ),
}  # fmt: skip


def _doc_lookup(access_key):
    return DOC_CREDS if access_key == DOC_CREDS.access_key else None


@pytest.mark.parametrize("name", sorted(DOC_EXAMPLES))
def test_aws_published_header_examples(name):
    method, path, query, bucket, headers, signature = DOC_EXAMPLES[name]
    headers = CIMultiDict(headers)
    headers["Authorization"] = f"AWS {DOC_CREDS.access_key}:{signature}"
    now = email.utils.parsedate_to_datetime(headers["Date"])
    kwargs = {"method": method, "path": path, "query": query, "lookup": _doc_lookup, "now": now}
    result = authenticate_v2(headers=headers, bucket=bucket, **kwargs)
    assert result.credentials == DOC_CREDS
    # and the same signature does not fit a neighbouring request
    with pytest.raises(S3Error) as err:
        authenticate_v2(headers=headers, bucket=bucket, **{**kwargs, "method": "HEAD"})
    assert err.value.code == "SignatureDoesNotMatch"


def test_aws_published_query_string_example():
    query = [
        ("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"),
        ("Signature", "NpgCjnDzrM+WFzoENXmpNDUsSn8="),  # %2B / %3D decoded
        ("Expires", "1175139620"),
    ]
    kwargs = {
        "method": "GET",
        "path": "/photos/puppy.jpg",
        "headers": CIMultiDict(),
        "lookup": _doc_lookup,
        "bucket": "johnsmith",
    }
    before = datetime.fromtimestamp(1175139620 - 600, UTC)
    assert authenticate_v2(query=query, now=before, **kwargs).presigned
    with pytest.raises(S3Error) as err:
        authenticate_v2(query=query, now=datetime.fromtimestamp(1175139621, UTC), **kwargs)
    assert (err.value.code, err.value.message) == ("AccessDenied", "Request has expired")


# ---------------------------------------------------------------------------------------------
# End to end against a real server


@pytest.fixture(scope="module")
def v2_server(tmp_path_factory):
    from tests.support.server import start_server

    srv = start_server(tmp_path_factory.mktemp("s3free-sigv2"))
    yield srv
    srv.stop()


def _client(srv, **config):
    from tests.support.server import make_client

    return make_client(srv, **config)


def _fetch(url: str, method: str = "GET", data: bytes | None = None, headers=None):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), dict(exc.headers)


def _code(body: bytes) -> str:
    return body.split(b"<Code>")[1].split(b"</Code>")[0].decode()


def test_boto3_default_presigned_get_works_and_tampering_fails(v2_server):
    s3 = _client(v2_server)  # default settings: SigV4 for requests, SigV2 for presigning
    s3.create_bucket(Bucket="presign-v2")
    key = "dir/hé llo+x=1.txt"
    s3.put_object(Bucket="presign-v2", Key=key, Body=b"hello v2")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presign-v2", "Key": key})
    query = dict(parse_query(urlsplit(url).query))
    assert {"AWSAccessKeyId", "Signature", "Expires"} <= set(query)  # it is SigV2
    assert "X-Amz-Algorithm" not in query
    status, body, _ = _fetch(url)
    assert (status, body) == (200, b"hello v2")

    status, body, _ = _fetch(
        url.replace("hello", "hellp", 1).replace("h%C3%A9%20llo", "h%C3%A9%20llp")
    )
    assert (status, _code(body)) == (403, "SignatureDoesNotMatch")
    status, body, _ = _fetch(url.replace("Expires=", "Expires=0"))  # same time, other text
    assert (status, _code(body)) == (403, "SignatureDoesNotMatch")
    status, body, _ = _fetch(url + "&response-content-type=text%2Fhtml")
    assert (status, _code(body)) == (403, "SignatureDoesNotMatch")
    status, body, _ = _fetch(url, method="DELETE")
    assert (status, _code(body)) == (403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket="presign-v2", Key=key)["Body"].read() == b"hello v2"

    # a signed response override is honoured
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": "presign-v2", "Key": key, "ResponseContentType": "text/x-v2"},
    )
    status, body, headers = _fetch(url)
    assert (status, body, headers["Content-Type"]) == (200, b"hello v2", "text/x-v2")

    # expired: Expires is whole seconds, so wait past it
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "presign-v2", "Key": key}, ExpiresIn=1
    )
    time.sleep(2.1)
    status, body, _ = _fetch(url)
    assert (status, _code(body)) == (403, "AccessDenied")
    assert b"Request has expired" in body


def test_boto3_presigned_put_with_content_type(v2_server):
    s3 = _client(v2_server)
    s3.create_bucket(Bucket="presign-v2-put")
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": "presign-v2-put", "Key": "up.txt", "ContentType": "text/plain"},
    )
    status, body, _ = _fetch(url, "PUT", b"uploaded", {"Content-Type": "text/html"})
    assert (status, _code(body)) == (403, "SignatureDoesNotMatch")
    status, _, _ = _fetch(url, "PUT", b"uploaded", {"Content-Type": "text/plain"})
    assert status == 200
    got = s3.get_object(Bucket="presign-v2-put", Key="up.txt")
    assert (got["Body"].read(), got["ContentType"]) == (b"uploaded", "text/plain")


def test_boto3_sigv2_client_everyday_operations(v2_server):
    s3 = _client(v2_server, signature_version="s3")  # every request signed with SigV2
    bucket = "sigv2-ops"
    s3.create_bucket(Bucket=bucket)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket,
        Key="a/b c.txt",
        Body=b"abc",
        Metadata={"who": "v2"},
        ContentType="text/plain",
    )
    head = s3.head_object(Bucket=bucket, Key="a/b c.txt")
    assert (head["Metadata"], head["ContentType"]) == ({"who": "v2"}, "text/plain")
    assert s3.get_object(Bucket=bucket, Key="a/b c.txt", Range="bytes=1-")["Body"].read() == b"bc"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"]] == [
        "a/b c.txt"
    ]
    assert s3.get_bucket_location(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object_acl(Bucket=bucket, Key="a/b c.txt")["Grants"]
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "a/b c.txt"})

    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part1 = s3.upload_part(
        Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"x" * (5 << 20)
    )
    part2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=b"tail")
    assert len(s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]) == 2
    parts = [{"PartNumber": n, "ETag": p["ETag"]} for n, p in ((1, part1), (2, part2))]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert s3.head_object(Bucket=bucket, Key="mp")["ContentLength"] == (5 << 20) + 4

    deleted = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in ("a/b c.txt", "copy", "mp")]}
    )
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["a/b c.txt", "copy", "mp"]
    s3.delete_bucket(Bucket=bucket)


def test_sigv2_with_a_wrong_secret_is_refused_by_the_server(v2_server):
    from botocore.exceptions import ClientError

    from tests.support.server import make_client

    class Wrong:
        endpoint, access_key, ca_file = v2_server.endpoint, v2_server.access_key, None
        secret_key = v2_server.secret_key + "x"

    s3 = make_client(Wrong, signature_version="s3")
    with pytest.raises(ClientError) as err:
        s3.list_buckets()
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"

    class Unknown(Wrong):
        access_key = "NOSUCHKEY000000"

    with pytest.raises(ClientError) as err:
        make_client(Unknown, signature_version="s3").list_buckets()
    assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"


def test_boto3_presigned_url_expiry_is_capped_at_a_week(v2_server):
    """A SigV2 URL good until year 9999 was accepted (SigV4 caps X-Amz-Expires at a week)."""
    s3 = _client(v2_server)
    s3.create_bucket(Bucket="presign-v2-cap")
    s3.put_object(Bucket="presign-v2-cap", Key="k", Body=b"capped")
    params = {"Bucket": "presign-v2-cap", "Key": "k"}
    week = 7 * 24 * 3600
    url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=week)
    assert "Expires=" in url and "X-Amz-Algorithm" not in url
    assert _fetch(url)[:2] == (200, b"capped")
    for too_long in (week + 3600, 8000 * 365 * 24 * 3600):  # a week and an hour; year ~9999
        url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=too_long)
        status, body, _ = _fetch(url)
        assert (status, _code(body)) == (400, "AuthorizationQueryParametersError"), body
        assert b"604800" in body
