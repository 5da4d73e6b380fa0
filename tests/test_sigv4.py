"""SigV4 verification against AWS's published examples and against botocore's own signer.

Requests are signed by botocore (S3SigV4Auth / S3SigV4QueryAuth, and a real boto3 S3 client
whose requests are captured just before they would be sent), then checked by
s3free.s3.auth.sigv4.authenticate as a server sees them: the raw path, the decoded query, the
headers.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from multidict import CIMultiDict
from yarl import URL

from s3free.s3.auth.sigv4 import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    AuthResult,
    Credentials,
    authenticate,
    parse_query,
    signing_key,
    uri_encode_path,
    verify_payload_sha256,
)
from s3free.s3.errors import S3Error

REGION = "eu-test-1"
AK, SK = "AKIDS3FREETEST", "s3cr3t/Key+With=Odd~Chars"
USER = Credentials(AK, SK, "alice")
ENDPOINT = "http://127.0.0.1:9000"

DOC_AK, DOC_SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_USER = Credentials(DOC_AK, DOC_SK, "doc")
DOC_NOW = datetime(2013, 5, 24, tzinfo=UTC)


def lookup(access_key: str) -> Credentials | None:
    return {AK: USER, DOC_AK: DOC_USER}.get(access_key)


def _str(v: str | bytes) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else v


def server_view(method: str, url: str, headers) -> dict:
    """What an HTTP server receives for a request botocore prepared: raw path, decoded query,
    the headers (plus Host, which the HTTP client adds)."""
    parts = urlsplit(url)
    h = CIMultiDict()
    items = headers.items() if hasattr(headers, "items") else headers
    for k, v in items:
        h.add(_str(k), _str(v))
    if "host" not in h:
        h["Host"] = parts.netloc
    return {
        "method": method,
        "path": parts.path or "/",
        "query": parse_query(parts.query),
        "headers": h,
    }


def auth(view: dict, **kw) -> AuthResult:
    args = {"lookup": lookup, "region": REGION} | kw
    return authenticate(**view, **args)


def expect_error(code: str, view: dict, **kw) -> S3Error:
    with pytest.raises(S3Error) as info:
        auth(view, **kw)
    assert info.value.code == code, (info.value.code, info.value.message)
    return info.value


def botocore_sign(
    method: str,
    path: str,
    query: str = "",
    headers: dict | None = None,
    body: bytes = b"",
    *,
    creds: tuple[str, str] = (AK, SK),
    region: str = REGION,
) -> tuple[dict, str]:
    """Header-signed request (botocore S3SigV4Auth); returns the server view and its amz date."""
    url = ENDPOINT + path + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    S3SigV4Auth(BotoCredentials(*creds), "s3", region).add_auth(req)
    view = server_view(method, req.url, req.headers.items())
    return view, _str(req.headers.get("X-Amz-Date", ""))


def botocore_presign(method: str, path: str, query: str = "", expires: int = 3600, **kw) -> dict:
    url = ENDPOINT + path + (f"?{query}" if query else "")
    req = AWSRequest(method=method, url=url, headers=kw.pop("headers", {}))
    S3SigV4QueryAuth(
        BotoCredentials(AK, SK), "s3", kw.pop("region", REGION), expires=expires
    ).add_auth(req)
    return server_view(method, req.url, req.headers.items())


def amz_time(amz_date: str) -> datetime:
    return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def with_query(view: dict, query: list[tuple[str, str]]) -> dict:
    return view | {"query": query}


def with_headers(view: dict, **changes: str | None) -> dict:
    h = CIMultiDict(view["headers"])
    for k, v in changes.items():
        name = k.replace("_", "-")
        h.popall(name, None)
        if v is not None:
            h[name] = v
    return view | {"headers": h}


# ---------------------------------------------------------------------------------------------
# AWS documentation examples (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth
# and sigv4-query-string-auth): example key AKIAIOSFODNN7EXAMPLE, 20130524T000000Z, us-east-1.


def doc_view(
    method: str, raw_path: str, raw_query: str, headers: dict[str, str], signed: str, sig: str
) -> dict:
    h = CIMultiDict(headers)
    h["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={DOC_AK}/20130524/us-east-1/s3/aws4_request,"
        f"SignedHeaders={signed},Signature={sig}"
    )
    return {"method": method, "path": raw_path, "query": parse_query(raw_query), "headers": h}


DOC_HEADERS = {"Host": "examplebucket.s3.amazonaws.com", "x-amz-date": "20130524T000000Z"}


def test_aws_doc_get_object_example():
    view = doc_view(
        "GET",
        "/test.txt",
        "",
        DOC_HEADERS | {"Range": "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256},
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    )
    result = authenticate(**view, lookup=lookup, region="us-east-1", now=DOC_NOW)
    assert result.credentials == DOC_USER
    assert result.payload == EMPTY_SHA256 and not result.presigned
    assert result.scope == "20130524/us-east-1/s3/aws4_request"
    assert result.amz_date == "20130524T000000Z"
    assert (
        result.seed_signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    # The same request for another byte range was not what was signed.
    bad = with_headers(view, Range="bytes=0-10")
    with pytest.raises(S3Error) as info:
        authenticate(**bad, lookup=lookup, region="us-east-1", now=DOC_NOW)
    assert info.value.code == "SignatureDoesNotMatch"
    assert "range:bytes=0-10" in info.value.extra["CanonicalRequest"]


async def test_aws_doc_put_object_example_with_escaped_key_and_body():
    body = b"Welcome to Amazon S3."
    payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    assert hashlib.sha256(body).hexdigest() == payload
    view = doc_view(
        "PUT",
        "/test%24file.text",
        "",
        DOC_HEADERS
        | {
            "Date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
            "x-amz-content-sha256": payload,
        },
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    )
    result = authenticate(**view, lookup=lookup, region="us-east-1", now=DOC_NOW)
    assert result.payload == payload

    async def body_through() -> bytes:
        async def src():
            yield body[:7]
            yield body[7:]

        return b"".join([c async for c in verify_payload_sha256(src(), result.payload)])

    assert await body_through() == body
    # A client that sent the key unescaped ('$') canonicalises the same way: S3 decodes the
    # path and re-encodes it.
    assert authenticate(
        **(view | {"path": "/test$file.text"}), lookup=lookup, region="us-east-1", now=DOC_NOW
    )


@pytest.mark.parametrize(
    ("raw_query", "sig"),
    [
        ("lifecycle", "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ("max-keys=2&prefix=J", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
        ("prefix=J&max-keys=2", "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ],
)
def test_aws_doc_bucket_examples_with_queries(raw_query, sig):
    view = doc_view(
        "GET", "/", raw_query, DOC_HEADERS | {"x-amz-content-sha256": EMPTY_SHA256},
        "host;x-amz-content-sha256;x-amz-date", sig,
    )  # fmt: skip
    assert (
        authenticate(**view, lookup=lookup, region="us-east-1", now=DOC_NOW).credentials == DOC_USER
    )


DOC_PRESIGNED = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def test_aws_doc_presigned_url_example_and_its_expiry():
    view = {
        "method": "GET",
        "path": "/test.txt",
        "query": parse_query(DOC_PRESIGNED),
        "headers": CIMultiDict(Host="examplebucket.s3.amazonaws.com"),
    }
    kw = {"lookup": lookup, "region": "us-east-1"}
    last_valid = DOC_NOW + timedelta(seconds=86400)
    result = authenticate(**view, now=last_valid, **kw)
    assert (
        result.presigned and result.payload == UNSIGNED_PAYLOAD and result.credentials == DOC_USER
    )
    with pytest.raises(S3Error) as info:
        authenticate(**view, now=last_valid + timedelta(seconds=1), **kw)
    assert (info.value.code, info.value.message) == ("AccessDenied", "Request has expired")
    with pytest.raises(S3Error) as info:  # signed for GET, not for DELETE
        authenticate(**(view | {"method": "DELETE"}), now=DOC_NOW, **kw)
    assert info.value.code == "SignatureDoesNotMatch"


# ---------------------------------------------------------------------------------------------
# botocore-signed requests: accepted as signed, rejected after any single change

KEYS = [
    "plain.txt",
    "with space/and+plus.bin",
    "100%/percent%20literal",
    "unicode/ключ/日本語/émoji😀",
    "~tilde/a=b&c=d?e#f",
    "dir//double//slash/",
    "./dots/../not-normalised",
    "sub-delims!$'()*,;:@[]",
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
def test_botocore_signed_keys_round_trip(key, method):
    body = b"object body \x00\xff" if method == "PUT" else b""
    path = "/bucket/" + quote(key, safe="/~")  # what botocore's S3 client puts on the wire
    view, _ = botocore_sign(
        method, path, headers={"x-amz-meta-note": "  two   spaces  "}, body=body
    )
    result = auth(view)
    assert result.credentials == USER and result.payload == hashlib.sha256(body).hexdigest()
    # The canonical URI is the path re-encoded after decoding: the client's own encoding.
    assert uri_encode_path(path) == path
    # Another key (last character changed) is not what was signed.
    other = path[:-1] + ("x" if path[-1] != "x" else "y")
    expect_error("SignatureDoesNotMatch", view | {"path": other})


QUERIES = [
    "uploads=",
    "acl=",
    "list-type=2&prefix=a%20b%2Bc&delimiter=%2F&max-keys=10",
    "partNumber=3&uploadId=abc%2Fdef%3D%3D",
    "start-after=%E2%82%AC%2F%25&encoding-type=url",
    "versionId=null&response-content-disposition=attachment%3B%20filename%3D%22x.txt%22",
    "a=1&a=2&a=0&b=",
]


@pytest.mark.parametrize("query", QUERIES)
def test_botocore_signed_queries_round_trip(query):
    view, _ = botocore_sign("GET", "/bucket/key", query)
    assert auth(view).credentials == USER
    pairs = view["query"]
    # Changing any one value (or dropping or adding a parameter) breaks the signature.
    for i in range(len(pairs)):
        changed = [(k, v + "x") if j == i else (k, v) for j, (k, v) in enumerate(pairs)]
        expect_error("SignatureDoesNotMatch", with_query(view, changed))
        expect_error("SignatureDoesNotMatch", with_query(view, pairs[:i] + pairs[i + 1 :]))
    expect_error("SignatureDoesNotMatch", with_query(view, [*pairs, ("extra", "")]))


def test_parse_query_matches_aiohttp_request_query():
    """The lead may pass list(request.query.items()) (yarl) or parse_query(raw): same pairs."""
    for raw in [*QUERIES, "a+b=c+d&e=%2B&f", "x=%ZZ&y=%E2%82%AC"]:
        assert parse_query(raw) == list(URL("http://h/p?" + raw).query.items()), raw


def test_every_single_change_is_rejected():
    body = b"x" * 1000
    view, amz = botocore_sign(
        "PUT",
        "/bucket/some/key",
        "tagging=",
        headers={"x-amz-meta-color": "blue", "Content-Type": "text/plain"},
        body=body,
    )
    when = amz_time(amz)
    assert auth(view, now=when).credentials == USER
    expect_error("SignatureDoesNotMatch", view | {"method": "POST"}, now=when)
    expect_error("SignatureDoesNotMatch", with_headers(view, x_amz_meta_color="red"), now=when)
    expect_error("SignatureDoesNotMatch", with_headers(view, content_type="text/html"), now=when)
    expect_error("SignatureDoesNotMatch", with_headers(view, host="127.0.0.1:9001"), now=when)
    other_hash = hashlib.sha256(body + b"!").hexdigest()
    expect_error(
        "SignatureDoesNotMatch", with_headers(view, x_amz_content_sha256=other_hash), now=when
    )
    # Same access key, another secret.
    wrong = {AK: Credentials(AK, SK + "x", "alice")}
    expect_error("SignatureDoesNotMatch", view, now=when, lookup=wrong.get)
    # A signature with one hex digit changed.
    authz = view["headers"]["Authorization"]
    flipped = authz[:-1] + ("0" if authz[-1] != "0" else "1")
    err = expect_error("SignatureDoesNotMatch", with_headers(view, authorization=flipped), now=when)
    assert err.extra["AWSAccessKeyId"] == AK and err.extra["StringToSign"].startswith(
        "AWS4-HMAC-SHA256\n"
    )
    # Unknown access key.
    err = expect_error("InvalidAccessKeyId", view, now=when, lookup=lambda ak: None)
    assert err.status == 403
    # Wrong region: AWS answers with the region it expected.
    err = expect_error("AuthorizationHeaderMalformed", view, now=when, region="us-west-2")
    assert err.extra["Region"] == "us-west-2" and "'eu-test-1' is wrong" in err.message
    # An x-amz-* header sent but not signed.
    err = expect_error("AccessDenied", with_headers(view, x_amz_acl="public-read"), now=when)
    assert err.extra["HeadersNotSigned"] == "x-amz-acl"


def test_request_time_skew_is_15_minutes_either_way():
    view, amz = botocore_sign("GET", "/bucket/k")
    when = amz_time(amz)
    for delta in (timedelta(minutes=-15), timedelta(minutes=14, seconds=59), timedelta(minutes=15)):
        assert auth(view, now=when + delta).credentials == USER
    for delta in (timedelta(minutes=15, seconds=1), timedelta(minutes=-16), timedelta(days=1)):
        err = expect_error("RequestTimeTooSkewed", view, now=when + delta)
        assert err.status == 403 and err.extra["RequestTime"] == amz


def test_date_header_instead_of_x_amz_date():
    view, _ = botocore_sign("GET", "/bucket/k", headers={"Date": "placeholder"})
    assert "x-amz-date" not in view["headers"]
    # botocore rewrote the Date header ("..., -0000": a naive datetime here, UTC by RFC 2822).
    when = email.utils.parsedate_to_datetime(view["headers"]["Date"]).replace(tzinfo=UTC)
    assert auth(view, now=when).amz_date == when.strftime("%Y%m%dT%H%M%SZ")
    expect_error("SignatureDoesNotMatch", with_headers(view, date=email.utils.format_datetime(
        when + timedelta(seconds=1), usegmt=True)), now=when)  # fmt: skip
    expect_error("AccessDenied", with_headers(view, date="not a date"), now=when)


def test_repeated_headers_are_joined_in_order():
    url = ENDPOINT + "/bucket/k"
    req = AWSRequest(method="GET", url=url)
    req.headers["x-amz-meta-dup"] = "first"
    req.headers["x-amz-meta-dup"] = "second"  # botocore's HTTPHeaders appends
    S3SigV4Auth(BotoCredentials(AK, SK), "s3", REGION).add_auth(req)
    view = server_view("GET", req.url, req.headers.items())
    assert view["headers"].getall("x-amz-meta-dup") == ["first", "second"]
    assert auth(view).credentials == USER
    h = CIMultiDict(view["headers"])
    h.popall("x-amz-meta-dup")
    h.add("x-amz-meta-dup", "second")
    h.add("x-amz-meta-dup", "first")
    expect_error("SignatureDoesNotMatch", view | {"headers": h})


def test_malformed_and_unsupported_authorization():
    view, amz = botocore_sign("GET", "/bucket/k")
    now = amz_time(amz)
    authz = view["headers"]["Authorization"]
    no_sig = authz.split(", Signature=")[0]
    expect_error("AuthorizationHeaderMalformed", with_headers(view, authorization=no_sig), now=now)
    bad_cred = authz.replace(f"Credential={AK}/", f"Credential={AK}:")
    expect_error(
        "AuthorizationHeaderMalformed", with_headers(view, authorization=bad_cred), now=now
    )
    for part, code in (("/s3/", "/ec2/"), ("aws4_request", "aws5_request")):
        changed = authz.replace(part, code)
        expect_error(
            "AuthorizationHeaderMalformed", with_headers(view, authorization=changed), now=now
        )
    # Credential date other than the request date.
    other_day = authz.replace(f"/{amz[:8]}/", "/20000101/")
    expect_error(
        "AuthorizationHeaderMalformed", with_headers(view, authorization=other_day), now=now
    )
    # host must be signed.
    unsigned_host = authz.replace("SignedHeaders=host;", "SignedHeaders=")
    err = expect_error("AccessDenied", with_headers(view, authorization=unsigned_host), now=now)
    assert "host" in err.extra["HeadersNotSigned"]
    # SigV2 and unknown schemes.
    err = expect_error(
        "InvalidRequest", with_headers(view, authorization="AWS AKID:c2lnbmF0dXJl"), now=now
    )
    assert "AWS4-HMAC-SHA256" in err.message
    expect_error("InvalidArgument", with_headers(view, authorization="Bearer abc"), now=now)
    # x-amz-content-sha256 is required for header auth, and must be a hash or a known literal.
    err = expect_error("InvalidRequest", with_headers(view, x_amz_content_sha256=None), now=now)
    assert err.message == "Missing required header for this request: x-amz-content-sha256"
    expect_error("InvalidArgument", with_headers(view, x_amz_content_sha256="abc"), now=now)
    # Header auth and query auth together.
    both = with_query(view, [("X-Amz-Signature", "0" * 64)])
    expect_error("InvalidArgument", both, now=now)


def test_anonymous_requests_are_reported_as_such():
    view = server_view("GET", ENDPOINT + "/bucket/k?acl", {"x-amz-content-sha256": EMPTY_SHA256})
    result = auth(view)
    assert result.anonymous and result.credentials is None and result.payload == EMPTY_SHA256
    assert auth(server_view("GET", ENDPOINT + "/b/k", {})).payload == UNSIGNED_PAYLOAD
    # A SigV2 presigned URL is not anonymous: it is refused.
    v2 = server_view("GET", ENDPOINT + "/b/k?AWSAccessKeyId=AK&Expires=1&Signature=x", {})
    expect_error("InvalidRequest", v2)


# ---------------------------------------------------------------------------------------------
# Presigned URLs


def test_botocore_presigned_urls_round_trip_and_tampering():
    for key in KEYS:
        path = "/bucket/" + quote(key, safe="/~")
        view = botocore_presign("PUT", path, "partNumber=2&uploadId=u%2Bp", expires=900)
        result = auth(view)
        assert (
            result.presigned and result.credentials == USER and result.payload == UNSIGNED_PAYLOAD
        )
        expect_error("SignatureDoesNotMatch", view | {"path": path + "x"})
        q = [(k, "3" if k == "partNumber" else v) for k, v in view["query"]]
        expect_error("SignatureDoesNotMatch", with_query(view, q))


def test_presigned_url_time_window_and_parameter_errors():
    view = botocore_presign("GET", "/bucket/k", expires=600)
    q = dict(view["query"])
    signed_at = amz_time(q["X-Amz-Date"])
    assert auth(view, now=signed_at + timedelta(seconds=600)).presigned
    err = expect_error("AccessDenied", view, now=signed_at + timedelta(seconds=601))
    assert err.message == "Request has expired"
    err = expect_error("AccessDenied", view, now=signed_at - timedelta(minutes=16))
    assert err.message == "Request is not valid yet"

    def replaced(name: str, value: str | None) -> dict:
        pairs = [
            (k, value if k == name else v)
            for k, v in view["query"]
            if not (k == name and value is None)
        ]
        return with_query(view, pairs)

    now = signed_at
    for name in (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
    ):
        expect_error("AuthorizationQueryParametersError", replaced(name, None), now=now)
    expect_error("AuthorizationQueryParametersError", replaced("X-Amz-Expires", "604801"), now=now)
    expect_error("AuthorizationQueryParametersError", replaced("X-Amz-Expires", "-1"), now=now)
    expect_error("AuthorizationQueryParametersError", replaced("X-Amz-Expires", "soon"), now=now)
    expect_error(
        "AuthorizationQueryParametersError",
        replaced("X-Amz-Algorithm", "AWS4-HMAC-SHA512"),
        now=now,
    )
    expect_error("AuthorizationQueryParametersError", replaced("X-Amz-Date", "2013-05-24"), now=now)
    err = expect_error("AuthorizationQueryParametersError", view, now=now, region="us-east-1")
    assert err.extra["Region"] == "us-east-1"
    expect_error("InvalidAccessKeyId", view, now=now, lookup=lambda ak: None)
    # Expires is signed: stretching it breaks the signature.
    expect_error("SignatureDoesNotMatch", replaced("X-Amz-Expires", "604800"), now=now)
    # An x-amz header added to a presigned request must have been signed.
    expect_error("AccessDenied", with_headers(view, x_amz_acl="public-read"), now=now)


def test_presigned_url_with_signed_header_and_week_expiry():
    view = botocore_presign("GET", "/bucket/k", expires=604800, headers={"x-amz-meta-a": "1"})
    q = dict(view["query"])
    assert q["X-Amz-SignedHeaders"] == "host;x-amz-meta-a"
    assert auth(view, now=amz_time(q["X-Amz-Date"]) + timedelta(days=7)).presigned
    expect_error("SignatureDoesNotMatch", with_headers(view, x_amz_meta_a="2"))


# ---------------------------------------------------------------------------------------------
# A real boto3 S3 client: every request it would send verifies


class _Captured(Exception):
    pass


@pytest.fixture(scope="module")
def s3client():
    client = boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    captured: list = []

    def capture(request, **kwargs):
        captured.append(request)
        raise _Captured

    client.meta.events.register("before-send.s3", capture)
    client.captured = captured
    return client


def sent(client, operation: str, **params) -> tuple[dict, bytes]:
    client.captured.clear()
    with pytest.raises(_Captured):
        getattr(client, operation)(**params)
    req = client.captured[-1]
    body = req.body
    if hasattr(body, "read"):
        body = body.read()
    return server_view(req.method, req.url, req.headers.items()), body or b""


@pytest.mark.parametrize("key", KEYS)
def test_boto3_client_requests_verify(s3client, key):
    calls = [
        ("put_object", {"Bucket": "bkt", "Key": key, "Body": b"hello " + key.encode()}),
        ("get_object", {"Bucket": "bkt", "Key": key, "Range": "bytes=0-3"}),
        ("head_object", {"Bucket": "bkt", "Key": key}),
        ("delete_object", {"Bucket": "bkt", "Key": key}),
        ("create_multipart_upload", {"Bucket": "bkt", "Key": key, "Metadata": {"k": "v v"}}),
        (
            "upload_part",
            {"Bucket": "bkt", "Key": key, "UploadId": "id+/=", "PartNumber": 7, "Body": b"p"},
        ),
        ("list_objects_v2", {"Bucket": "bkt", "Prefix": key, "Delimiter": "/", "StartAfter": key}),
        ("delete_objects", {"Bucket": "bkt", "Delete": {"Objects": [{"Key": key}]}}),
        (
            "copy_object",
            {"Bucket": "bkt", "Key": key + ".copy", "CopySource": {"Bucket": "bkt", "Key": key}},
        ),
    ]
    for operation, params in calls:
        view, body = sent(s3client, operation, **params)
        result = auth(view)
        assert result.credentials == USER, operation
        if result.payload != UNSIGNED_PAYLOAD:
            assert result.payload == hashlib.sha256(body).hexdigest(), operation
        assert uri_encode_path(view["path"]) == view["path"], operation


def test_boto3_presigned_urls_verify(s3client):
    for key in KEYS:
        for method, params in (
            ("get_object", {"ResponseContentDisposition": 'attachment; filename="a b.txt"'}),
            ("put_object", {"ContentType": "text/plain"}),
        ):
            url = s3client.generate_presigned_url(
                method, Params={"Bucket": "bkt", "Key": key} | params, ExpiresIn=60
            )
            http = "GET" if method == "get_object" else "PUT"
            headers = {"Content-Type": "text/plain"} if method == "put_object" else {}
            view = server_view(http, url, headers)
            assert auth(view).presigned, (key, method)


# ---------------------------------------------------------------------------------------------
# Signing key cache and payload hash verification


def test_signing_keys_are_derived_once_per_day_and_region():
    expected = SK.encode()
    k = hmac.digest(b"AWS4" + expected, b"20300101", "sha256")
    for part in (REGION, "s3", "aws4_request"):
        k = hmac.digest(k, part.encode(), "sha256")
    signing_key.cache_clear()
    assert signing_key(SK, "20300101", REGION) == k
    view, _ = botocore_sign("GET", "/bucket/a")
    auth(view)
    auth(view)
    view2, _ = botocore_sign("GET", "/bucket/b")
    auth(view2)
    info = signing_key.cache_info()
    assert info.misses == 2 and info.hits == 2  # one derivation for today, reused after


def test_verify_payload_sha256_passes_data_and_fails_at_the_end():
    data = [b"abc", b"", b"def" * 1000]
    good = hashlib.sha256(b"".join(data)).hexdigest()

    async def src():
        for d in data:
            yield d

    async def collect(expected: str) -> tuple[list[bytes], S3Error | None]:
        out: list[bytes] = []
        try:
            async for piece in verify_payload_sha256(src(), expected):
                out.append(piece)
        except S3Error as e:
            return out, e
        return out, None

    out, err = asyncio.run(collect(good.upper()))
    assert out == data and err is None
    out, err = asyncio.run(collect(EMPTY_SHA256))
    assert out == data  # everything passed through, then the error instead of the end
    assert err is not None and err.code == "XAmzContentSHA256Mismatch" and err.status == 400
    assert err.extra["S3ComputedContentSHA256"] == good
