#!/usr/bin/env python3
"""What tracing costs the request path: a microbenchmark of s3free.s3.app.dispatch and the S3
middlewares around it (s3free/s3/middlewares.py), not a load.

One request (an anonymous GET of an object listing, refused by the access check after parsing
and authentication: no thread hop, no disk I/O, so the dispatch path itself is what is timed)
is dispatched in process, over and over, with:

- off:        no otlp_endpoint (the default): the request path checks `tracing.tracer`, once;
- on, 0%:     tracing on, trace_sample_ratio 0 (a non-recording span per request);
- on, 100%:   tracing on, every request sampled (spans batched; the exporter points at a
              closed local port, so export fails quietly in its own thread).

It also times the check alone and a stage mark with no observer. Prints one line per case
(median of --repeat runs, microseconds per dispatch).

    python tools/bench_trace_overhead.py
    python tools/bench_trace_overhead.py --requests 5000 --repeat 7
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import statistics
import tempfile
import time
import timeit
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

from s3free.config import Config
from s3free.engine import ObjectStore
from s3free.meta.users import ROOT_USER, User, UserStore
from s3free.obs import stage, tracing
from s3free.s3.app import Settings, dispatch, make_app


def _chained(app):
    """dispatch inside the app's middlewares, as aiohttp calls it (the app has started)."""
    handler = dispatch
    for middleware in reversed(app.middlewares):
        handler = functools.partial(middleware, handler=handler)
    return handler


async def _time_dispatch(app, requests: int, repeat: int) -> float:
    """Median microseconds per dispatch over `repeat` runs of `requests` dispatches."""
    handle = _chained(app)
    runs = []
    for _ in range(repeat):
        # One request dispatched again and again: a mocked request is far slower to build than
        # to dispatch (dispatch only adds its own items to the request's dict).
        request = make_mocked_request("GET", "/bench?list-type=2", app=app)
        start = time.perf_counter()
        for _ in range(requests):
            response = await handle(request)
            assert response.status == 403, response.status
        runs.append((time.perf_counter() - start) / requests * 1e6)
    return statistics.median(runs)


async def _main(args: argparse.Namespace) -> None:
    logging.getLogger("s3free").setLevel(logging.CRITICAL)
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)  # the closed port
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = await ObjectStore.open([root / f"d{i}" for i in range(4)], meta_dir=root / "meta")
        try:
            users = UserStore(User(ROOT_USER, "BENCHKEY", "bench-secret"), store.diskset,
                              store.executor)  # fmt: skip
            await users.load()
            await store.create_bucket("bench", owner=ROOT_USER)
            app = make_app(store, users, Settings())
            app.on_startup.freeze()
            await app.startup()  # adds the S3 middlewares
            await _time_dispatch(app, args.requests // 10, 1)  # warm up
            results = {"off": await _time_dispatch(app, args.requests, args.repeat)}
            for label, ratio in (("on, 0%", 0.0), ("on, 100%", 1.0)):
                tracing.setup(
                    Config(otlp_endpoint="http://127.0.0.1:9", trace_sample_ratio=ratio),
                    export_timeout_s=0.2,
                )
                try:
                    results[label] = await _time_dispatch(app, args.requests, args.repeat)
                finally:
                    tracing.shutdown(timeout_s=0.2)
            results["off again"] = await _time_dispatch(app, args.requests, args.repeat)
        finally:
            await store.close()
    check = min(timeit.repeat("tracing.tracer is not None", globals={"tracing": tracing},
                              number=1_000_000, repeat=5))  # fmt: skip
    mark = min(timeit.repeat("with stage(n): pass", globals={"stage": stage.stage, "n": "x"},
                             number=1_000_000, repeat=5))  # fmt: skip
    for label, us in results.items():
        print(f"dispatch, tracing {label:9s}: {us:8.2f} us/request")
    print(f"the off check alone        : {check * 1000:8.1f} ns")
    print(f"a stage mark, no observer  : {mark * 1000:8.1f} ns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
