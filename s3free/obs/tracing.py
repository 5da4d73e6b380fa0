"""OpenTelemetry tracing: a span per S3 request and a child span per engine stage, exported over
OTLP/HTTP. Off unless `otlp_endpoint` is set.

When off, opentelemetry is never imported, no stage observer is registered (so
`s3free.obs.stage.stage` stays a shared no-op), and the request path pays one check:
`tracing.tracer is not None`.

When on:
- The endpoint is the collector's base URL (http://host:4318, "/v1/traces" is added) or a full
  traces URL (any other path is used as given), as OTEL_EXPORTER_OTLP_ENDPOINT and
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT are read by other OpenTelemetry programs.
- Spans are batched (BatchSpanProcessor: OTEL_BSP_SCHEDULE_DELAY and the other OTEL_BSP_*
  variables apply) and exported from the processor's own thread, never from the event loop.
- A request with a W3C `traceparent` header joins the caller's trace; otherwise a new trace is
  sampled with probability `trace_sample_ratio` (children follow their parent's decision).
- Request span "s3.<Operation>" (kind SERVER), attributes after the semantic conventions:
  http.request.method, http.response.status_code, url.scheme, client.address,
  http.request.body.size / http.response.body.size (the bytes that crossed the wire: an
  object's size for PUT and GET), rpc.system/rpc.service/rpc.method (aws-api, S3, the
  operation), aws.s3.bucket and s3free.request_id (the x-amz-request-id, which finds the
  access log line). Object keys are NOT recorded: they are user data (file names, often
  personal) and traces commonly leave the host for a shared backend; the access log, which
  stays with the operator, has them, and the request id links the two.
- Stage spans ("engine.put", "index.get", ...) are children of the current span, in the loop
  or in a worker thread (the store's ContextExecutor carries the context); a stage outside a
  sampled request (scrub, repair) records nothing.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from s3free.obs import stage
from s3free.obs.requestkeys import REQUEST_ID, S3_REQUEST

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from aiohttp import web

    from s3free.config import Config

TRACES_PATH = "/v1/traces"

# The tracer when tracing is on; None when off. The one thing the request path looks at.
tracer: Any = None
_provider: Any = None
_otel: Any = None  # the opentelemetry names the hot path uses, imported by setup()
_NULL = nullcontext()


def traces_url(endpoint: str) -> str:
    """The URL spans are POSTed to: base URL + /v1/traces, or the full URL as given."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + TRACES_PATH
    return endpoint


def setup(config: Config, *, export_timeout_s: float = 5.0) -> bool:
    """Start tracing if config.otlp_endpoint is set; returns whether it is on."""
    global tracer, _provider, _otel
    if not config.otlp_endpoint:
        return False
    from types import SimpleNamespace

    from opentelemetry import propagate, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from s3free import __version__

    shutdown()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "s3free", "service.version": __version__}),
        sampler=ParentBased(TraceIdRatioBased(config.trace_sample_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=traces_url(config.otlp_endpoint), timeout=export_timeout_s)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _otel = SimpleNamespace(
        extract=propagate.extract,
        current_span=trace.get_current_span,
        SERVER=trace.SpanKind.SERVER,
        ERROR=trace.StatusCode.ERROR,
        Status=trace.Status,
    )
    _provider = provider
    tracer = provider.get_tracer("s3free", __version__)
    stage.add_observer(_observe_stage)
    return True


def shutdown(timeout_s: float = 5.0) -> None:
    """Export what is buffered (waiting at most about timeout_s) and stop tracing."""
    global tracer, _provider
    stage.remove_observer(_observe_stage)
    provider, _provider, tracer = _provider, None, None
    if provider is not None:
        provider.force_flush(int(timeout_s * 1000))
        provider.shutdown()


def _observe_stage(name: str) -> AbstractContextManager:
    """A child span for the stage, when it runs inside a sampled span."""
    if tracer is None or not _otel.current_span().is_recording():
        return _NULL
    return tracer.start_as_current_span(name)


async def traced(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Run the request handler inside its request span."""
    with tracer.start_as_current_span(
        "s3.request",
        context=_otel.extract(request.headers),
        kind=_otel.SERVER,
        attributes={
            "http.request.method": request.method,
            "url.scheme": request.scheme,
            "client.address": request.remote or "",
        },
    ) as span:
        response = None
        try:
            response = await handler(request)
            return response
        finally:
            if span.is_recording():
                _finish(span, request, response)


def _finish(span: Any, request: web.Request, response: web.StreamResponse | None) -> None:
    s3 = request.get(S3_REQUEST)
    if s3 is not None:
        span.update_name(f"s3.{s3.op}")
        span.set_attribute("rpc.system", "aws-api")
        span.set_attribute("rpc.service", "S3")
        span.set_attribute("rpc.method", s3.op)
        if s3.bucket:
            span.set_attribute("aws.s3.bucket", s3.bucket)
    elif request.path.startswith("/_s3free/"):
        span.update_name("s3free.admin")
    span.set_attribute("s3free.request_id", request.get(REQUEST_ID, ""))
    received = getattr(request.content, "total_bytes", 0)
    if received:
        span.set_attribute("http.request.body.size", received)
    if response is None:
        return  # an exception: the span already records it
    span.set_attribute("http.response.status_code", response.status)
    size = response.content_length if response.content_length is not None else None
    if size is None and response.prepared:
        size = response.body_length
    if size is not None:
        span.set_attribute("http.response.body.size", size)
    if response.status >= 500:
        span.set_attribute("error.type", str(response.status))
        span.set_status(_otel.Status(_otel.ERROR))
