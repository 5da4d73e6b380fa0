"""Upload integrity against a real server: Content-MD5 (BadDigest, InvalidDigest), a signed
x-amz-content-sha256 that does not match the body (XAmzContentSHA256Mismatch), and the
additional checksums CRC32 / CRC32C / CRC64NVME / SHA1 / SHA256 — as headers (HTTP) and as
aws-chunked trailers (boto3 over HTTPS, and hand-built trailer bodies) — verified on the way in
(a wrong value is BadDigest and stores nothing), stored, and returned by GetObject / HeadObject
with ChecksumMode=ENABLED.

Expected checksum values come from botocore's own implementations, not from the server's.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from botocore.exceptions import ClientError
from botocore.httpchecksum import (
    CrtCrc32cChecksum,
    CrtCrc32Checksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from s3free.s3.auth.sigv4 import STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER, AuthResult
from tests.s3.raw import (
    REGION,
    UNSIGNED,
    assert_nothing_left,
    client_error,
    connect,
    object_path,
    raw_head,
    raw_request,
    read_reply,
    sha256_hex,
    sign,
    temp_files,
    version_dirs,
    wait_until,
)
from tests.support.server import make_client
from tests.test_chunked import derive_key, encode

ALGORITHMS = {
    "CRC32": CrtCrc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}
DIGEST_SIZE = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}
DATA = b"integrity matters " * 3000  # 54 KB


def checksum(algorithm: str, data: bytes) -> str:
    c = ALGORITHMS[algorithm]()
    c.update(data)
    return base64.b64encode(c.digest()).decode()


def wrong_value(algorithm: str, data: bytes) -> str:
    """A well-formed value of the right size that is not the data's checksum."""
    right = base64.b64decode(checksum(algorithm, data))
    return base64.b64encode(bytes([right[0] ^ 0xFF]) + right[1:]).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.fixture
def any_server(request, any_s3):
    """The server behind any_s3 (HTTP or HTTPS)."""
    https = any_s3.meta.endpoint_url.startswith("https:")
    return request.getfixturevalue("tls_server" if https else "server")


@pytest.fixture
def any_bucket(any_s3, bucket_name):
    any_s3.create_bucket(Bucket=bucket_name)
    return bucket_name


class SentHeaders:
    """The headers of the requests a boto3 client sends (a before-send hook)."""

    def __init__(self, client):
        self.client = client
        self.seen: list[dict[str, str]] = []

    def __enter__(self):
        self.client.meta.events.register("before-send.s3", self._hook)
        return self

    def __exit__(self, *exc):
        self.client.meta.events.unregister("before-send.s3", self._hook)

    def _hook(self, request, **_):
        self.seen.append(
            {
                k.lower(): v.decode() if isinstance(v, bytes) else v
                for k, v in request.headers.items()
            }
        )


# ---------------------------------------------------------------------------------------------
# Content-MD5


def test_content_md5_correct(any_s3, any_bucket):
    put = any_s3.put_object(Bucket=any_bucket, Key="k", Body=DATA, ContentMD5=md5_b64(DATA))
    assert put["ETag"] == f'"{hashlib.md5(DATA).hexdigest()}"'
    assert any_s3.get_object(Bucket=any_bucket, Key="k")["Body"].read() == DATA


def test_content_md5_mismatch(any_server, any_s3, any_bucket):
    with pytest.raises(ClientError) as info:
        any_s3.put_object(Bucket=any_bucket, Key="k", Body=DATA, ContentMD5=md5_b64(b"other"))
    assert client_error(info) == ("BadDigest", 400)
    assert_nothing_left(any_server, any_s3, any_bucket, "k")


def test_content_md5_mismatch_keeps_existing_object(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    before = version_dirs(server, bucket, "k")
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="k", Body=DATA, ContentMD5=md5_b64(b"other"))
    assert client_error(info) == ("BadDigest", 400)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"
    wait_until(lambda: not temp_files(server), what="empty temp dirs")
    assert set(version_dirs(server, bucket, "k")) <= set(before)


@pytest.mark.parametrize(
    "value",
    [
        "not base64 at all!",
        base64.b64encode(b"\x00" * 15).decode(),  # 15 bytes
        base64.b64encode(b"\x00" * 17).decode(),  # 17 bytes
        hashlib.md5(DATA).hexdigest(),  # hex, not base64
        "",
    ],
    ids=["garbage", "short", "long", "hex", "empty"],
)
def test_content_md5_malformed(server, s3, bucket, value):
    reply = raw_request(
        server, "PUT", object_path(bucket, "k"), headers={"Content-MD5": value}, body=DATA
    )
    assert (reply.status, reply.code) == (400, "InvalidDigest"), reply
    assert_nothing_left(server, s3, bucket, "k")


def test_content_md5_on_upload_part(server, s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    with pytest.raises(ClientError) as info:
        s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            PartNumber=1,
            Body=DATA,
            ContentMD5=md5_b64(b"other"),
        )
    assert client_error(info) == ("BadDigest", 400)
    assert not s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts")
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert_nothing_left(server, s3, bucket, "mp")


# ---------------------------------------------------------------------------------------------
# x-amz-content-sha256


def test_signed_payload_hash_mismatch(server, s3, bucket):
    reply = raw_request(
        server, "PUT", object_path(bucket, "k"), body=DATA, payload=sha256_hex(DATA + b"!")
    )
    assert (reply.status, reply.code) == (400, "XAmzContentSHA256Mismatch"), reply
    assert_nothing_left(server, s3, bucket, "k")


def test_signed_payload_hash_correct(server, s3, bucket):
    reply = raw_request(server, "PUT", object_path(bucket, "k"), body=DATA)
    assert reply.status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == DATA


def test_signed_payload_hash_mismatch_on_delete_objects(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep", Body=b"x")
    body = b"<Delete><Object><Key>keep</Key></Object></Delete>"
    reply = raw_request(
        server, "POST", object_path(bucket), query="delete", body=body, payload=sha256_hex(b"x")
    )
    assert (reply.status, reply.code) == (400, "XAmzContentSHA256Mismatch"), reply
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"x"


# ---------------------------------------------------------------------------------------------
# Additional checksums through boto3 (header over HTTP, aws-chunked trailer over HTTPS)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_checksum_algorithm_stored_and_returned(any_server, any_s3, any_bucket, algorithm):
    expected = checksum(algorithm, DATA)
    field = f"Checksum{algorithm}"
    with SentHeaders(any_s3) as sent:
        put = any_s3.put_object(Bucket=any_bucket, Key="k", Body=DATA, ChecksumAlgorithm=algorithm)
    header = f"x-amz-checksum-{algorithm.lower()}"
    if any_s3.meta.endpoint_url.startswith("https"):
        # The value went as a trailer of an aws-chunked body.
        assert sent.seen[-1].get("x-amz-trailer") == header, sent.seen[-1]
        assert header not in sent.seen[-1]
    else:
        assert sent.seen[-1].get(header) == expected
    assert put[field] == expected
    for response in (
        any_s3.get_object(Bucket=any_bucket, Key="k", ChecksumMode="ENABLED"),
        any_s3.head_object(Bucket=any_bucket, Key="k", ChecksumMode="ENABLED"),
    ):
        assert response[field] == expected
    got = any_s3.get_object(Bucket=any_bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == DATA
    # Only asked for: not without ChecksumMode (which boto3 sends by default unless told not
    # to), and not on a range (not the range's checksum).
    plain = make_client(any_server, response_checksum_validation="when_required")
    assert field not in plain.get_object(Bucket=any_bucket, Key="k")
    assert field not in plain.head_object(Bucket=any_bucket, Key="k")
    ranged = any_s3.get_object(
        Bucket=any_bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED"
    )
    assert field not in ranged
    assert ranged["Body"].read() == DATA[:10]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_checksum_wrong_value_is_bad_digest(any_server, any_s3, any_bucket, algorithm):
    with pytest.raises(ClientError) as info:
        any_s3.put_object(
            Bucket=any_bucket,
            Key="k",
            Body=DATA,
            **{f"Checksum{algorithm}": wrong_value(algorithm, DATA)},
        )
    assert client_error(info) == ("BadDigest", 400)
    assert_nothing_left(any_server, any_s3, any_bucket, "k")


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_checksum_given_value_correct(any_s3, any_bucket, algorithm):
    value = checksum(algorithm, DATA)
    put = any_s3.put_object(
        Bucket=any_bucket, Key="k", Body=DATA, **{f"Checksum{algorithm}": value}
    )
    assert put[f"Checksum{algorithm}"] == value
    head = any_s3.head_object(Bucket=any_bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == value


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-amz-checksum-crc32", "not base64!"),
        ("x-amz-checksum-crc32", base64.b64encode(b"\x00" * 5).decode()),  # wrong size
        ("x-amz-checksum-sha256", base64.b64encode(b"\x00" * 20).decode()),
    ],
)
def test_checksum_malformed_value(server, s3, bucket, header, value):
    reply = raw_request(server, "PUT", object_path(bucket, "k"), headers={header: value}, body=DATA)
    assert (reply.status, reply.code) == (400, "InvalidRequest"), reply
    assert_nothing_left(server, s3, bucket, "k")


def test_two_checksums_refused(server, s3, bucket):
    headers = {
        "x-amz-checksum-crc32": checksum("CRC32", DATA),
        "x-amz-checksum-sha1": checksum("SHA1", DATA),
    }
    reply = raw_request(server, "PUT", object_path(bucket, "k"), headers=headers, body=DATA)
    assert (reply.status, reply.code) == (400, "InvalidRequest"), reply
    assert_nothing_left(server, s3, bucket, "k")


def test_unsupported_checksum_is_not_silently_accepted(server, s3, bucket):
    """A checksum the server cannot verify (SHA-512 here) must not be acknowledged as if it
    had been checked: a wrong value must not be stored with a 200."""
    wrong = base64.b64encode(b"\x00" * 64).decode()
    reply = raw_request(
        server, "PUT", object_path(bucket, "k"), headers={"x-amz-checksum-sha512": wrong}, body=DATA
    )
    assert reply.status >= 400, reply
    assert_nothing_left(server, s3, bucket, "k")


def test_copy_keeps_checksum(s3, bucket):
    value = checksum("CRC32C", DATA)
    s3.put_object(Bucket=bucket, Key="src", Body=DATA, ChecksumAlgorithm="CRC32C")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == value


def test_complete_multipart_with_full_object_checksum(s3, bucket):
    """On CompleteMultipartUpload, x-amz-checksum-crc32 is the whole object's checksum
    (ChecksumType FULL_OBJECT), not one of the XML body: a correct value must not be refused
    as a BadDigest of the XML."""
    parts = [b"p" * (5 * 1024 * 1024), b"q" * 1000]
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        part = s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        assert part["ChecksumCRC32"] == checksum("CRC32", data)
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        ChecksumCRC32=checksum("CRC32", b"".join(parts)),
        ChecksumType="FULL_OBJECT",
    )
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)


def _two_part_upload(s3, bucket: str, key: str) -> tuple[str, list[dict], bytes]:
    parts = [b"r" * (5 * 1024 * 1024), b"s" * 777]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        part = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
        )
        done.append({"PartNumber": number, "ETag": part["ETag"]})
    return upload_id, done, b"".join(parts)


def test_complete_multipart_with_a_wrong_full_object_checksum_is_refused(s3, bucket):
    """The full-object checksum is verified against the assembled object: a wrong one is
    BadDigest, nothing becomes visible, and the upload can still be completed."""
    upload_id, done, data = _two_part_upload(s3, bucket, "mp")
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            ChecksumCRC32C=checksum("CRC32C", data + b"x"),
            ChecksumType="FULL_OBJECT",
        )
    assert client_error(info) == ("BadDigest", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="mp")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        ChecksumCRC32C=checksum("CRC32C", data),
        ChecksumType="FULL_OBJECT",
    )
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == data


def composite(algorithm: str, parts: list[bytes]) -> str:
    """S3's composite checksum: the checksum of the parts' binary checksums, "-<count>"."""
    digests = b"".join(base64.b64decode(checksum(algorithm, p)) for p in parts)
    return f"{checksum(algorithm, digests)}-{len(parts)}"


@pytest.mark.parametrize("algorithm", ["SHA256", "CRC32"])
def test_complete_multipart_with_a_composite_checksum(s3, bucket, algorithm):
    """A composite ("checksum of checksums-N") value is checked against the parts (BadDigest,
    nothing visible, when wrong), answered with ChecksumType COMPOSITE, stored, returned by
    HeadObject/GetObject with ChecksumMode=ENABLED, and again by a repeated complete."""
    upload_id, done, data = _two_part_upload(s3, bucket, "mp")
    parts = [data[: 5 * 1024 * 1024], data[5 * 1024 * 1024 :]]
    good = composite(algorithm, parts)
    field = "Checksum" + algorithm
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            **{field: composite(algorithm, [parts[0], parts[1] + b"x"])},
        )
    assert client_error(info) == ("BadDigest", 400)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="mp")
    listed = [dict(p, **{field: checksum(algorithm, d)}) for p, d in zip(done, parts, strict=True)]
    ident = {"Bucket": bucket, "Key": "mp", "UploadId": upload_id}
    answer = s3.complete_multipart_upload(
        MultipartUpload={"Parts": listed}, **ident, **{field: good}
    )
    assert (answer[field], answer["ChecksumType"]) == (good, "COMPOSITE")
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert (head[field], head["ChecksumType"]) == (good, "COMPOSITE")
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got[field] == good and got["Body"].read() == data
    again = s3.complete_multipart_upload(
        MultipartUpload={"Parts": listed}, **ident, **{field: good}
    )
    assert (again[field], again["ETag"]) == (good, answer["ETag"])


def test_complete_multipart_part_checksums_are_checked(s3, bucket):
    """Part checksums listed in the Complete document must be the parts' (InvalidPart if not);
    without a header value the composite is computed from the parts and stored."""
    upload_id, done, data = _two_part_upload(s3, bucket, "mp")
    parts = [data[: 5 * 1024 * 1024], data[5 * 1024 * 1024 :]]
    wrong = [dict(done[0], ChecksumSHA1=checksum("SHA1", b"no")), dict(done[1])]
    ident = {"Bucket": bucket, "Key": "mp", "UploadId": upload_id}
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(MultipartUpload={"Parts": wrong}, **ident)
    assert client_error(info) == ("InvalidPart", 400)
    listed = [dict(p, ChecksumSHA1=checksum("SHA1", d)) for p, d in zip(done, parts, strict=True)]
    answer = s3.complete_multipart_upload(MultipartUpload={"Parts": listed}, **ident)
    assert answer["ChecksumSHA1"] == composite("SHA1", parts)


def test_complete_multipart_full_object_checksum_is_stored(s3, bucket):
    upload_id, done, data = _two_part_upload(s3, bucket, "mp")
    value = checksum("CRC64NVME", data)
    answer = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        ChecksumCRC64NVME=value,
    )
    assert (answer["ChecksumCRC64NVME"], answer["ChecksumType"]) == (value, "FULL_OBJECT")
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (value, "FULL_OBJECT")
    assert "ChecksumCRC64NVME" not in s3.head_object(Bucket=bucket, Key="mp")


def test_complete_multipart_checksum_type_must_fit_the_algorithm(s3, bucket):
    upload_id, done, data = _two_part_upload(s3, bucket, "mp")
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            ChecksumSHA256=checksum("SHA256", data),
            ChecksumType="FULL_OBJECT",
        )
    assert client_error(info) == ("InvalidRequest", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)


def test_upload_part_checksum(server, s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    with pytest.raises(ClientError) as info:
        s3.upload_part(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            PartNumber=1,
            Body=DATA,
            ChecksumSHA256=wrong_value("SHA256", DATA),
        )
    assert client_error(info) == ("BadDigest", 400)
    assert not s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id).get("Parts")
    part = s3.upload_part(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        PartNumber=1,
        Body=DATA,
        ChecksumAlgorithm="SHA256",
    )
    assert part["ChecksumSHA256"] == checksum("SHA256", DATA)
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert_nothing_left(server, s3, bucket, "mp")


# ---------------------------------------------------------------------------------------------
# Hand-built aws-chunked bodies with trailing checksums (over plain HTTP)


def _trailer_put(server, bucket, key, chunks, trailers, *, signed, **corrupt):
    variant = STREAMING_SIGNED_TRAILER if signed else STREAMING_UNSIGNED_TRAILER
    path = object_path(bucket, key)
    decoded = sum(len(c) for c in chunks)
    names = ",".join(n for n, _ in trailers)
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(decoded),
        "x-amz-trailer": names,
    }
    # Sign once to get the date and seed signature, encode, then sign again with the length:
    # the length is part of neither the chunk signatures nor (not being signed) the seed.
    signed_headers = sign(server, "PUT", path, headers=headers, payload=variant)
    amz_date = signed_headers["X-Amz-Date"]
    auth = AuthResult(
        credentials=None,
        payload=variant,
        presigned=False,
        signing_key=derive_key(server.secret_key, amz_date[:8], REGION),
        seed_signature=signed_headers["Authorization"].rsplit("Signature=", 1)[1],
        amz_date=amz_date,
        scope=f"{amz_date[:8]}/{REGION}/s3/aws4_request",
    )
    body = encode(chunks, variant, auth=auth if signed else None, trailers=trailers, **corrupt)
    signed_headers["Content-Length"] = str(len(body))
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", path, signed_headers) + body)
        reply = read_reply(sock)
    assert reply is not None
    return reply


CHUNKS = [b"a" * 65536, b"b" * 65536, b"tail"]
WHOLE = b"".join(CHUNKS)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_trailing_checksum_correct(server, s3, bucket, algorithm, signed):
    name = f"x-amz-checksum-{algorithm.lower()}"
    value = checksum(algorithm, WHOLE)
    reply = _trailer_put(server, bucket, "t", CHUNKS, [(name, value)], signed=signed)
    assert reply.status == 200, reply
    assert reply.headers.get(name) == value
    got = s3.get_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    assert got["Body"].read() == WHOLE
    assert got[f"Checksum{algorithm}"] == value


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("algorithm", ["CRC32", "CRC64NVME", "SHA256"])
def test_trailing_checksum_wrong(server, s3, bucket, algorithm, signed):
    name = f"x-amz-checksum-{algorithm.lower()}"
    reply = _trailer_put(
        server, bucket, "t", CHUNKS, [(name, wrong_value(algorithm, WHOLE))], signed=signed
    )
    assert (reply.status, reply.code) == (400, "BadDigest"), reply
    assert_nothing_left(server, s3, bucket, "t")


def test_trailer_signature_wrong(server, s3, bucket):
    name = "x-amz-checksum-crc32"
    reply = _trailer_put(
        server,
        bucket,
        "t",
        CHUNKS,
        [(name, checksum("CRC32", WHOLE))],
        signed=True,
        corrupt_trailer_sig=True,
    )
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch"), reply
    assert_nothing_left(server, s3, bucket, "t")


def test_trailer_not_announced(server, s3, bucket):
    """The body carries a checksum trailer other than the one x-amz-trailer announced."""
    path = object_path(bucket, "t")
    body = encode(CHUNKS, STREAMING_UNSIGNED_TRAILER, trailers=[("x-amz-checksum-sha1", "x")])
    headers = sign(
        server,
        "PUT",
        path,
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(WHOLE)),
            "x-amz-trailer": "x-amz-checksum-crc32",
            "Content-Length": str(len(body)),
        },
        payload=STREAMING_UNSIGNED_TRAILER,
    )
    with connect(server) as sock:
        sock.sendall(raw_head("PUT", path, headers) + body)
        reply = read_reply(sock)
    assert reply is not None and reply.status == 400, reply
    assert reply.code in ("InvalidRequest", "MalformedTrailerError"), reply
    assert_nothing_left(server, s3, bucket, "t")


def test_unsigned_payload_with_checksum_header(server, s3, bucket):
    """UNSIGNED-PAYLOAD bodies are still checked against a checksum header."""
    path = object_path(bucket, "u")
    reply = raw_request(
        server,
        "PUT",
        path,
        body=DATA,
        headers={"x-amz-checksum-crc32c": wrong_value("CRC32C", DATA)},
        payload=UNSIGNED,
    )
    assert (reply.status, reply.code) == (400, "BadDigest"), reply
    assert_nothing_left(server, s3, bucket, "u")
