"""An S3 load generator: PUT and GET phases at a given object size and concurrency against any
endpoint, every GET body verified, latencies recorded. `tools/bench_s3.py` runs its fixed
phases (`run_load`); `s3free bench s3` (s3free/bench/s3bench.py) drives the same `Client` for
timed put/get/mixed/list/delete loads.

Bounded: every phase stops at its operation count or its time limit, whichever comes first.
Object bodies are deterministic per key (a 1 MiB random pattern shifted by the key's hash), so
a GET is verified by hashing the stream against the expected digest, without keeping bodies.
Requests are signed with SigV4 (UNSIGNED-PAYLOAD, as SDKs do over HTTPS) by s3free's own signer,
so the client spends little CPU on signing.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import ssl
import statistics
import time
import xml.etree.ElementTree as ET
from array import array
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import aiohttp
from yarl import URL

from s3free.s3.auth.sigv4 import canonical_query, sign_headers

PATTERN = random.Random(20261125).randbytes(1 << 20)
PIECE = 1 << 20
_TWICE = PATTERN * 2  # byte p of a key's body is PATTERN[(offset + p) % PIECE]


def _offset(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") % PIECE


def body_pieces(key: str, size: int) -> list[tuple[int, int]]:
    """(pattern offset, length) pieces of the deterministic body of key."""
    out = []
    start = _offset(key)
    done = 0
    while done < size:
        take = min(PIECE - start, size - done)
        out.append((start, take))
        done += take
        start = 0
    return out


def body_bytes(key: str, size: int) -> bytes:
    return b"".join(PATTERN[o : o + n] for o, n in body_pieces(key, size))


async def body_stream(key: str, size: int) -> AsyncIterator[bytes]:
    for offset, length in body_pieces(key, size):
        yield PATTERN[offset : offset + length]


def expected_md5(key: str, size: int) -> str:
    digest = hashlib.md5()
    for offset, length in body_pieces(key, size):
        digest.update(PATTERN[offset : offset + length])
    return digest.hexdigest()


class VerifyError(RuntimeError):
    """A GET or HEAD answered 2xx with bytes (or a length) other than what was written."""


@dataclass
class PhaseResult:
    """Figures of one operation type. `size` is the bytes each operation moves (0 for HEAD,
    DELETE and LIST); `verify_failures` counts the GETs whose body differed from what was
    written (they are also counted in `errors`)."""

    name: str
    size: int
    concurrency: int
    ops: int = 0
    errors: int = 0
    verify_failures: int = 0
    seconds: float = 0.0
    latencies: array = field(default_factory=lambda: array("d"))  # 8 bytes per operation
    first_error: str = ""
    done: list[str] = field(default_factory=list)  # keys whose operation succeeded

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        if isinstance(exc, VerifyError):
            self.verify_failures += 1
        self.first_error = self.first_error or (str(exc) or type(exc).__name__)[:200]

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.ops * self.size / self.seconds / 1e6 if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile latency (nearest rank), seconds; 0 when nothing succeeded."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        rank = math.ceil(len(ordered) * p / 100)
        return ordered[min(len(ordered), max(1, rank)) - 1]

    def summary(self) -> dict:
        return {
            "bytes": self.ops * self.size,
            "concurrency": self.concurrency,
            "errors": self.errors,
            "first_error": self.first_error,
            "mb_per_s": round(self.mb_per_s, 1),
            "ops": self.ops,
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p90_ms": round(self.percentile(90) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else 0,
            "seconds": round(self.seconds, 2),
            "size": self.size,
            "verify_failures": self.verify_failures,
        }


class Client:
    """Standard S3 calls, SigV4-signed (UNSIGNED-PAYLOAD), over one aiohttp session.
    `tls` is aiohttp's `ssl`: False skips certificate checks, a context trusts its CAs, None uses
    the system's. Environment proxies are not used (loopback benchmarks must not detour)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str,
        limit: int,
        tls: ssl.SSLContext | bool | None = False,
    ):
        self.endpoint = endpoint.rstrip("/")
        self.host = urlsplit(endpoint).netloc
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=tls if tls is not None else True),
            timeout=aiohttp.ClientTimeout(total=600),
            auto_decompress=False,
        )

    async def close(self) -> None:
        await self.session.close()

    def _headers(
        self, method: str, path: str, extra: dict | None = None, query: list | None = None
    ) -> dict:
        return sign_headers(
            method=method, host=self.host, path=path, query=query or [],
            access_key=self.access_key, secret_key=self.secret_key, region=self.region,
            extra=extra,
        )  # fmt: skip

    async def bucket_exists(self, bucket: str) -> bool:
        path = f"/{bucket}"
        async with self.session.head(
            self.endpoint + path, headers=self._headers("HEAD", path)
        ) as r:
            if r.status in (200, 404):
                return r.status == 200
            raise RuntimeError(f"HEAD bucket {bucket}: HTTP {r.status}")

    async def create_bucket(self, bucket: str) -> None:
        path = f"/{bucket}"
        async with self.session.put(self.endpoint + path, headers=self._headers("PUT", path)) as r:
            if r.status not in (200, 409):
                raise RuntimeError(f"create bucket: HTTP {r.status}: {await r.text()}")

    async def delete_bucket(self, bucket: str) -> None:
        path = f"/{bucket}"
        headers = self._headers("DELETE", path)
        async with self.session.delete(self.endpoint + path, headers=headers) as r:
            if r.status not in (200, 204):
                raise RuntimeError(f"delete bucket {bucket}: HTTP {r.status}: {await r.text()}")

    async def put(self, bucket: str, key: str, size: int, etag: str) -> None:
        path = f"/{bucket}/{quote(key)}"
        headers = self._headers("PUT", path, {"content-length": str(size)})
        data = body_bytes(key, size) if size <= PIECE else body_stream(key, size)
        async with self.session.put(self.endpoint + path, data=data, headers=headers) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"PUT {key}: HTTP {r.status}")
            if r.headers.get("ETag", "").strip('"') != etag:
                raise RuntimeError(f"PUT {key}: wrong ETag")

    async def get(self, bucket: str, key: str, size: int) -> None:
        path = f"/{bucket}/{quote(key)}"
        async with self.session.get(self.endpoint + path, headers=self._headers("GET", path)) as r:
            if r.status != 200:
                await r.read()
                raise RuntimeError(f"GET {key}: HTTP {r.status}")
            # Every byte is compared with what was written (a memcmp, much cheaper for the
            # client than hashing, so the client does not bound the figure).
            start = _offset(key)
            got = 0
            async for chunk in r.content.iter_chunked(PIECE):
                at = (start + got) % PIECE
                if chunk != _TWICE[at : at + len(chunk)]:
                    raise VerifyError(f"GET {key}: bytes {got}.. differ from what was written")
                got += len(chunk)
        if got != size:
            raise VerifyError(f"GET {key}: {got} bytes, {size} were written")

    async def head(self, bucket: str, key: str, size: int) -> None:
        """HEAD (warp's STAT): the object must be there with the length that was written."""
        path = f"/{bucket}/{quote(key)}"
        async with self.session.head(
            self.endpoint + path, headers=self._headers("HEAD", path)
        ) as r:
            if r.status != 200:
                raise RuntimeError(f"HEAD {key}: HTTP {r.status}")
            if r.headers.get("Content-Length") != str(size):
                raise VerifyError(f"HEAD {key}: length {r.headers.get('Content-Length')}")

    async def delete(self, bucket: str, key: str) -> None:
        path = f"/{bucket}/{quote(key)}"
        headers = self._headers("DELETE", path)
        async with self.session.delete(self.endpoint + path, headers=headers) as r:
            await r.read()
            if r.status not in (200, 204):
                raise RuntimeError(f"DELETE {key}: HTTP {r.status}")

    async def list_page(
        self, bucket: str, prefix: str, token: str | None = None, max_keys: int = 1000
    ) -> tuple[list[str], str | None]:
        """One ListObjectsV2 page: (keys, continuation token or None when it was the last)."""
        path = f"/{bucket}"
        query = [("list-type", "2"), ("prefix", prefix), ("max-keys", str(max_keys))]
        if token:
            query.append(("continuation-token", token))
        url = URL(f"{self.endpoint}{path}?{canonical_query(query)}", encoded=True)
        headers = self._headers("GET", path, query=query)
        async with self.session.get(url, headers=headers) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"LIST {bucket}/{prefix}: HTTP {r.status}")
        root = ET.fromstring(body)
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        keys = [el.text or "" for el in root.iter(f"{ns}Key")]
        truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
        nxt = root.findtext(f"{ns}NextContinuationToken") if truncated else None
        if truncated and not nxt:
            raise RuntimeError(f"LIST {bucket}/{prefix}: truncated without a continuation token")
        return keys, nxt


async def run_phase(
    name: str, op, keys: list[str], size: int, concurrency: int, max_seconds: float
) -> PhaseResult:
    """Run op(key, size) over keys with `concurrency` workers until done or out of time."""
    result = PhaseResult(name, size, concurrency)
    queue = list(reversed(keys))
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        while queue and time.perf_counter() < deadline:
            key = queue.pop()
            started = time.perf_counter()
            try:
                await op(key, size)
            except Exception as exc:  # counted and shown: the run goes on
                result.failed(exc)
                continue
            result.latencies.append(time.perf_counter() - started)
            result.ops += 1
            result.done.append(key)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class Workload:
    name: str
    size: int
    count: int
    concurrency: int
    seconds: float


DEFAULT_WORKLOADS = (
    Workload("4KiB", 4096, 6000, 32, 15),
    Workload("1MiB", 1 << 20, 400, 8, 20),
    Workload("64MiB", 64 << 20, 12, 2, 45),
)


async def run_load(
    endpoint: str,
    access_key: str,
    secret_key: str,
    *,
    region: str = "us-east-1",
    workloads=DEFAULT_WORKLOADS,
    bucket: str | None = None,
    say=print,
) -> dict:
    bucket = bucket or f"bench-{os.getpid()}"
    limit = max(w.concurrency for w in workloads)
    client = Client(endpoint, access_key, secret_key, region, limit)
    results: dict[str, dict] = {}
    try:
        await client.create_bucket(bucket)
        for w in workloads:
            keys = [f"{w.name}/{i:06d}" for i in range(w.count)]
            # The ETags to expect are computed before the clock starts: the client's own MD5
            # work must not be what the figure measures.
            etags = {k: expected_md5(k, w.size) for k in keys}
            put = await run_phase(
                f"put-{w.name}",
                lambda k, s, etags=etags: client.put(bucket, k, s, etags[k]),
                keys,
                w.size,
                w.concurrency,
                w.seconds,
            )
            say(_line(put))
            written = put.done
            reads = [random.Random(i).choice(written) for i in range(w.count)] if written else []
            get = await run_phase(
                f"get-{w.name}", lambda k, s: client.get(bucket, k, s), reads, w.size,
                w.concurrency, w.seconds,
            )  # fmt: skip
            say(_line(get))
            results[put.name] = put.summary()
            results[get.name] = get.summary()
    finally:
        await client.close()
    return results


def _line(r: PhaseResult) -> str:
    s = r.summary()
    return (
        f"  {r.name:<11} {s['ops']:>6} ops {s['seconds']:>6.1f} s  {s['ops_per_s']:>8.1f} ops/s "
        f"{s['mb_per_s']:>8.1f} MB/s  p50 {s['p50_ms']:>7.2f} ms  p99 {s['p99_ms']:>8.2f} ms"
        f"  errors {s['errors']}"
    )
