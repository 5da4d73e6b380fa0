"""What the S3 layer notes on an aiohttp request for the layers that observe it (the access
log, metrics, tracing), as typed request keys (aiohttp warns about plain string keys)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

REQUEST_ID = web.RequestKey("s3free.request_id", str)  # also on every log line of the request
OPERATION = web.RequestKey("s3free.op", str)  # the S3 operation, once the request is parsed
S3_REQUEST = web.RequestKey("s3free.s3", Any)  # the parsed S3Request (bucket, key, op)
USER = web.RequestKey("s3free.user", str)  # who signed it: a user name, or "anonymous"
