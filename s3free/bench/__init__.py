"""Benchmarks: the engine against the ceilings of the machine it runs on (engine.py), this
machine's hashing, coding and disk ceilings (codec.py), and S3 load against any endpoint or a
temporary s3free server (s3load.py, s3bench.py, tempserver.py).

Nothing in the server imports this package; `s3free bench` (s3free/cli/bench.py), tools/ and
the tests call it.
"""

from s3free.bench.engine import BenchConfig, format_table, run_engine_bench

__all__ = ["BenchConfig", "format_table", "run_engine_bench"]
