"""Tracing: a real server exports its spans over OTLP/HTTP to a real receiver in the test (an
aiohttp server decoding ExportTraceServiceRequest protobufs). Request spans are named after the
S3 operation; engine stage spans are their children, in the loop and in worker threads. With
no endpoint configured nothing is exported and opentelemetry is not even imported."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from s3free.obs.tracing import traces_url
from tests.support.server import Server, make_client, start_server

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER


@dataclass
class Receiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1, run on its own loop in a thread."""

    url: str = ""
    posts: int = 0
    spans: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, name: str) -> list:
        with self.lock:
            return [s for s in self.spans if s.name == name]

    def wait_for(self, *names: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(self.named(n) for n in names):
            assert time.monotonic() < deadline, f"spans {names} not all exported: {self.spans}"
            time.sleep(0.05)


@pytest.fixture
def receiver():
    rec = Receiver()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        with rec.lock:
            rec.posts += 1
            for resource in message.resource_spans:
                for scope in resource.scope_spans:
                    rec.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return runner

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner_box.append(loop.run_until_complete(start()))
        ready.set()
        loop.run_forever()

    runner_box: list[web.AppRunner] = []
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield rec
    asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _env(**extra: str) -> dict[str, str]:
    return {"OTEL_BSP_SCHEDULE_DELAY": "100", "NO_PROXY": "127.0.0.1,localhost", **extra}


def _attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def _put_and_get(srv: Server) -> tuple[str, str]:
    s3 = make_client(srv)
    s3.create_bucket(Bucket="traced")
    put = s3.put_object(Bucket="traced", Key="private/name.txt", Body=b"t" * 200_000)
    got = s3.get_object(Bucket="traced", Key="private/name.txt")
    assert got["Body"].read() == b"t" * 200_000
    return put["ResponseMetadata"]["RequestId"], got["ResponseMetadata"]["RequestId"]


def test_request_and_stage_spans_are_exported(tmp_path, receiver) -> None:
    srv = start_server(tmp_path / "srv", env=_env(S3FREE_OTLP_ENDPOINT=receiver.url))
    try:
        put_id, get_id = _put_and_get(srv)
        # A caller's W3C trace context is joined (an anonymous request: refused, still traced).
        trace_hex, parent_hex = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        request = urllib.request.Request(
            srv.endpoint + "/traced/x", headers={"traceparent": f"00-{trace_hex}-{parent_hex}-01"}
        )
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(request)
        receiver.wait_for("s3.PutObject", "s3.GetObject", "engine.put", "index.get")
    finally:
        srv.stop()

    put = next(
        s for s in receiver.named("s3.PutObject") if _attrs(s)["s3free.request_id"] == put_id
    )
    get = next(
        s for s in receiver.named("s3.GetObject") if _attrs(s)["s3free.request_id"] == get_id
    )
    for span, method in ((put, "PUT"), (get, "GET")):
        attrs = _attrs(span)
        assert span.kind == SERVER_KIND
        assert attrs["http.request.method"] == method
        assert attrs["http.response.status_code"] == 200
        assert attrs["aws.s3.bucket"] == "traced"
        assert not any("private/name" in str(v) for v in attrs.values())  # keys are user data
    assert _attrs(put)["http.request.body.size"] >= 200_000
    assert _attrs(get)["http.response.body.size"] == 200_000

    # engine.put runs on the loop inside the PUT; index.get runs in a worker thread inside the
    # GET's engine.get: each hangs under its request span, in its trace.
    def children(parent, name: str) -> list:
        return [
            s
            for s in receiver.named(name)
            if s.trace_id == parent.trace_id and s.parent_span_id == parent.span_id
        ]

    assert len(children(put, "engine.put")) == 1
    (engine_get,) = children(get, "engine.get")
    assert len(children(engine_get, "index.get")) == 1
    (engine_put,) = children(put, "engine.put")
    assert put.start_time_unix_nano <= engine_put.start_time_unix_nano
    assert engine_put.end_time_unix_nano <= put.end_time_unix_nano

    joined = [s for s in receiver.named("s3.GetObject") if s.trace_id.hex() == trace_hex]
    assert len(joined) == 1 and joined[0].parent_span_id.hex() == parent_hex
    assert _attrs(joined[0])["http.response.status_code"] == 403


def test_spans_still_buffered_are_exported_at_shutdown(tmp_path, receiver) -> None:
    # A schedule delay far beyond the test: only the flush on SIGTERM can deliver the spans.
    env = _env(S3FREE_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="600000")
    srv = start_server(tmp_path / "srv", env=env)
    try:
        put_id, _ = _put_and_get(srv)
        time.sleep(0.3)
        assert receiver.posts == 0
    finally:
        assert srv.stop() == 0
    ids = [_attrs(s)["s3free.request_id"] for s in receiver.named("s3.PutObject")]
    assert ids == [put_id]


def test_tracing_off_exports_nothing(tmp_path, receiver) -> None:
    # The standard OTel variable points at the receiver: s3free must still not export, since
    # its own otlp_endpoint is unset.
    env = _env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_TRACES_EXPORTER="otlp")
    srv = start_server(tmp_path / "srv", env=env)
    try:
        _put_and_get(srv)
        time.sleep(0.5)  # five schedule delays
    finally:
        srv.stop()
    assert receiver.posts == 0 and not receiver.spans


def test_tracing_off_imports_no_opentelemetry() -> None:
    code = """
import sys
from s3free.config import Config
from s3free.obs import logs, stage, tracing
import s3free.server, s3free.cli.main
logs.setup(Config())
assert tracing.setup(Config()) is False
assert tracing.tracer is None and not stage._observers
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out


def test_traces_url() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"
