"""Benchmarks of the engine against the ceilings of the machine it runs on.

Nothing in s3free imports this package; tools/bench_engine.py (and later the `bench` CLI
command) call it.
"""

from s3free.bench.engine import BenchConfig, format_table, run_engine_bench

__all__ = ["BenchConfig", "format_table", "run_engine_bench"]
