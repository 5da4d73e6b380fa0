"""`s3free bench`: measure what this machine and the engine can do."""

from __future__ import annotations

import json
import sys

import click

from s3free.errors import DiskSetError
from s3free.storage.diskset import parse_ec


@click.group()
def bench() -> None:
    """Benchmarks: `engine` now; `s3` and `codec` later."""


@bench.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Scratch parent dir.")
@click.option("--size", type=float, default=256.0, show_default=True, help="Object size, MiB.")
@click.option("--repeats", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--ec", default="6+3", show_default=True, help="Erasure code K+M (9 dirs for 6+3).")
@click.option("--no-drop-caches", is_flag=True, help="Skip the cold-cache read figures.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write JSON here.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def engine(
    directory: str | None,
    size: float,
    repeats: int,
    ec: str,
    no_drop_caches: bool,
    json_path: str | None,
    quiet: bool,
) -> None:
    """Engine PUT/GET MB/s for one large object on k+m temp dirs, next to this machine's
    ceilings (MD5, RS encode, BLAKE3+CRC32C, disk write+fsync, shard read) measured in the
    same run."""
    from s3free.bench.engine import BenchConfig, MiB, format_table, run_engine_bench

    try:
        k, m = parse_ec(ec)
    except DiskSetError as exc:
        raise click.BadParameter(str(exc), param_hint="--ec") from None
    if size <= 0:
        raise click.BadParameter("must be positive", param_hint="--size")
    config = BenchConfig(
        dir=directory,
        size=int(size * MiB),
        repeats=repeats,
        k=k,
        m=m,
        drop_caches=not no_drop_caches,
    )
    log = None if quiet else (lambda msg: click.echo(msg, err=True))
    result = run_engine_bench(config, log=log)
    click.echo(format_table(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)


@bench.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def s3(args: tuple[str, ...]) -> None:
    """Load test an S3 endpoint (not built yet)."""
    click.echo("s3free bench s3: not built yet (needs the S3 API).", err=True)
    sys.exit(2)
