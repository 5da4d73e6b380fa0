"""S3 additional checksums: published check values, agreement with botocore's implementations,
header parsing, and the verifying stream wrapper."""

from __future__ import annotations

import base64
import random

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)
from multidict import CIMultiDict

from s3free.s3.checksums import (
    ALGORITHMS,
    Checksum,
    ChecksumRequest,
    ChecksumStream,
    checksum_of,
    checksum_request,
    decode_value,
    header_name,
    new_checksum,
    normalize_algorithm,
)
from s3free.s3.errors import S3Error

# Check values of "123456789": CRC catalogue (CRC-32/ISO-HDLC, CRC-32/ISCSI, CRC-64/NVME) and
# the well-known SHA-1 / SHA-256 digests of that string.
CHECK = {
    "CRC32": "cbf43926",
    "CRC32C": "e3069283",
    "CRC64NVME": "ae8b14860a799888",
    "SHA1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    "SHA256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
}
BOTOCORE = {
    "CRC32": Crc32Checksum,
    "CRC32C": CrtCrc32cChecksum,
    "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum,
    "SHA256": Sha256Checksum,
}


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_check_values_of_123456789(alg):
    c = new_checksum(alg)
    c.update(b"12345")
    c.update(memoryview(b"6789"))
    assert c.digest().hex() == CHECK[alg]
    assert c.digest_b64() == base64.b64encode(bytes.fromhex(CHECK[alg])).decode()
    assert checksum_of(alg.lower(), b"123456789") == c.digest_b64()


def test_empty_and_published_s3_values():
    assert checksum_of("CRC32", b"") == "AAAAAA=="
    assert checksum_of("CRC64NVME", b"") == "AAAAAAAAAAA="
    # AWS's sigv4-streaming-trailers example: 66560 bytes of 'a' carry
    # x-amz-checksum-crc32c:sOO8/Q==
    assert checksum_of("x-amz-checksum-crc32c", b"a" * 66560) == "sOO8/Q=="


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_agrees_with_botocore_over_random_splits(alg):
    rnd = random.Random(alg)
    for _ in range(20):
        data = rnd.randbytes(rnd.choice([0, 1, 7, 1000, 70_000]))
        ours, theirs = Checksum(alg), BOTOCORE[alg]()
        i = 0
        while i < len(data):
            n = rnd.randrange(1, 5000)
            ours.update(data[i : i + n])
            i += n
        theirs.update(data)
        assert ours.digest_b64() == theirs.b64digest()
        # digest() does not end the checksum: more data may follow.
        ours.update(b"tail")
        theirs.update(b"tail")
        assert ours.digest_b64() == theirs.b64digest()


def test_names():
    for name in ("crc32c", "CRC32C", "x-amz-checksum-crc32c", " X-Amz-Checksum-CRC32C "):
        assert normalize_algorithm(name) == "CRC32C"
    assert header_name("sha256") == "x-amz-checksum-sha256"
    assert new_checksum("x-amz-checksum-crc64nvme").header == "x-amz-checksum-crc64nvme"
    for bad in ("md5", "crc16", "", "x-amz-checksum-"):
        with pytest.raises(S3Error) as info:
            normalize_algorithm(bad)
        assert info.value.code == "InvalidRequest"


def test_decode_value_checks_base64_and_size():
    assert decode_value("CRC32", "y/Q5Jg==") == bytes.fromhex("cbf43926")
    for alg, bad in [
        ("CRC32", "y/Q5"),
        ("CRC32", "not base64!"),
        ("CRC64NVME", "y/Q5Jg=="),
        ("SHA1", ""),
    ]:
        with pytest.raises(S3Error) as info:
            decode_value(alg, bad)
        assert info.value.code == "InvalidRequest"
        assert info.value.message == f"Value for {header_name(alg)} header is invalid."


def test_checksum_request_from_headers():
    h = CIMultiDict
    assert checksum_request(h()) is None
    assert checksum_request(h({"x-amz-checksum-crc32": "y/Q5Jg=="})) == ChecksumRequest(
        "CRC32", "y/Q5Jg=="
    )
    assert checksum_request(
        h({"X-Amz-Checksum-Sha256": CHECK_B64["SHA256"], "x-amz-sdk-checksum-algorithm": "SHA256"})
    ) == ChecksumRequest("SHA256", CHECK_B64["SHA256"])
    assert checksum_request(h({"x-amz-sdk-checksum-algorithm": "crc64nvme"})) == ChecksumRequest(
        "CRC64NVME"
    )
    assert checksum_request(
        h({"x-amz-trailer": "x-amz-checksum-crc32c", "x-amz-sdk-checksum-algorithm": "CRC32C"})
    ) == ChecksumRequest("CRC32C", None, in_trailer=True)
    for bad in (
        {"x-amz-checksum-crc32": "y/Q5Jg==", "x-amz-checksum-crc32c": "4waSgw=="},  # two values
        {"x-amz-checksum-crc32": "y/Q5Jg==", "x-amz-sdk-checksum-algorithm": "SHA1"},  # disagree
        {"x-amz-checksum-crc32": "###"},  # malformed
        {"x-amz-sdk-checksum-algorithm": "MD5"},  # unknown
        {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-checksum-sha1": CHECK_B64["SHA1"]},
    ):
        with pytest.raises(S3Error) as info:
            checksum_request(h(bad))
        assert info.value.code == "InvalidRequest", bad


CHECK_B64 = {alg: base64.b64encode(bytes.fromhex(v)).decode() for alg, v in CHECK.items()}


async def pieces(data: bytes, n: int = 4):
    for i in range(0, len(data), n):
        yield data[i : i + n]


async def consume(stream: ChecksumStream) -> tuple[bytes, S3Error | None]:
    out = bytearray()
    try:
        async for p in stream:
            out += p
    except S3Error as e:
        return bytes(out), e
    return bytes(out), None


async def test_stream_verifies_expected_values_and_publishes_all():
    data = b"123456789"
    cs = ChecksumStream(
        pieces(data), ["sha1"], expected={"x-amz-checksum-crc32": CHECK_B64["CRC32"]}
    )
    values = cs.values  # handed out before the stream runs, filled in place at its end
    assert values == {}
    out, err = await consume(cs)
    assert out == data and err is None and cs.done and cs.size == 9
    assert values == {"SHA1": CHECK_B64["SHA1"], "CRC32": CHECK_B64["CRC32"]}


@pytest.mark.parametrize("alg", ALGORITHMS)
async def test_stream_mismatch_is_bad_digest_at_the_end(alg):
    data = b"123456789"
    wrong = base64.b64encode(bytes(len(bytes.fromhex(CHECK[alg])))).decode()
    cs = ChecksumStream(pieces(data), expected={alg: wrong})
    out, err = await consume(cs)
    assert out == data  # all data passed through, the error replaces the end of the stream
    assert err is not None and err.code == "BadDigest" and err.status == 400
    assert err.message == f"The {alg} you specified did not match the calculated checksum."
    assert cs.values == {} and not cs.done


async def test_stream_reads_trailer_values_at_the_end():
    data = random.Random(1).randbytes(100_000)
    trailers: dict[str, str] = {}
    cs = ChecksumStream(
        pieces(data, 3000), ["x-amz-checksum-crc64nvme"], expected_at_end=lambda: trailers
    )

    async def main():
        out = bytearray()
        async for p in cs:
            out += p
            if len(out) == len(data):  # the decoder fills its trailers after the last data
                trailers["x-amz-checksum-crc64nvme"] = checksum_of("CRC64NVME", data)
                trailers["x-amz-meta-other"] = "ignored"
        return bytes(out)

    assert await main() == data and cs.values == {"CRC64NVME": checksum_of("CRC64NVME", data)}
    # A wrong trailer value, and a trailer for an algorithm nobody asked to compute.
    for trailer, code in (
        ({"x-amz-checksum-crc64nvme": checksum_of("CRC64NVME", data + b"!")}, "BadDigest"),
        ({"x-amz-checksum-sha256": checksum_of("SHA256", data)}, "InvalidRequest"),
        ({"x-amz-checksum-crc64nvme": "short"}, "InvalidRequest"),
    ):
        cs = ChecksumStream(pieces(data, 5000), ["CRC64NVME"], expected_at_end=lambda t=trailer: t)
        _, err = await consume(cs)
        assert err is not None and err.code == code, trailer


def test_stream_rejects_malformed_expected_values_up_front():
    with pytest.raises(S3Error) as info:
        ChecksumStream(pieces(b""), expected={"CRC32": "AAAA"})
    assert info.value.code == "InvalidRequest"
