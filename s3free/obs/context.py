"""What a request carries into every piece of work done for it: its id (for log lines) and,
when tracing is on, its span.

Both live in context variables. asyncio tasks copy the context they are created in, but a
ThreadPoolExecutor does not: a function run by `loop.run_in_executor` sees the worker thread's
own, empty context. The store's pool (`IOPool`, s3free/engine/pool.py) and `ContextExecutor`
here run each call given to `submit` (which `run_in_executor`, the writer's lanes and the group
commit all go through) in a copy of the submitter's context, so a line logged or a stage marked
in a worker thread belongs to the request that asked for the work. Copying a context is O(1)
(an immutable mapping).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
from collections.abc import Callable
from typing import Any

# The id of the request being handled (x-amz-request-id); None outside a request.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "s3free_request_id", default=None
)


class ContextExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool whose calls run in the submitter's context (request id, current span)."""

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
