"""`s3free bench`: measure what this machine and the engine can do."""

from __future__ import annotations

import json
import re
import sys

import click

from s3free.errors import DiskSetError
from s3free.storage.diskset import parse_ec

OPS_CHOICES = ("put", "get", "mixed", "list", "delete")  # s3free.bench.s3bench.OPS


def _parse_ec(text: str) -> tuple[int, int]:
    """K+M with K >= 1, M >= 1 and K + M <= 256 (what the codec supports), else a usage error."""
    try:
        k, m = parse_ec(text)
    except DiskSetError as exc:
        raise click.BadParameter(str(exc), param_hint="--ec") from None
    if k < 1 or m < 1 or k + m > 256:
        raise click.BadParameter(f"{text!r}: need K >= 1, M >= 1, K + M <= 256", param_hint="--ec")
    return k, m


@click.group()
def bench() -> None:
    """Benchmarks: `engine` (the storage engine alone), `s3` (load against an S3 endpoint),
    `codec` (this machine's hashing, coding and disk ceilings)."""


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

    k, m = _parse_ec(ec)
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


@bench.command()
@click.option("--ec", default="6+3", show_default=True, help="Erasure code K+M to measure.")
@click.option(
    "--path",
    type=click.Path(exists=True, file_okay=False, writable=True),
    help="A directory on the disk to measure (default: the system temp dir).",
)
@click.option(
    "--size",
    type=click.IntRange(1, 1024),
    default=64,
    show_default=True,
    help="MiB hashed, coded and written per figure.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write JSON here.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
def codec(ec: str, path: str | None, size: int, json_path: str | None, quiet: bool) -> None:
    """This machine's ceilings: MD5, RS encode/decode (zfec, and the server's ISA-L path when
    present), BLAKE3, CRC32C, disk write+fsync, cold read and small-file create/fsync/open
    rates on --path; then which one bounds PUT and GET, large and at 4 KiB."""
    from s3free.bench.codec import MiB, format_codec_table, run_codec_bench

    k, m = _parse_ec(ec)
    log = None if quiet else (lambda msg: click.echo(msg, err=True))
    try:
        result = run_codec_bench(k, m, path=path, size=size * MiB, log=log)
    except OSError as exc:
        click.echo(f"s3free bench codec: {exc}", err=True)
        sys.exit(1)
    click.echo(format_codec_table(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)


_UNITS = {
    "": 1,
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
}
MAX_OBJECT_SIZE = 5 << 30  # the largest single PUT S3 accepts
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def parse_size(text: str) -> int:
    """'4KiB', '1MiB', '64MiB', '100kb', '4096' -> bytes (KiB/MiB/GiB and K/M/G are powers of
    two, kB/MB/GB powers of ten)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (say 4KiB, 1MiB, 64MiB or a byte count)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if not 0 < size <= MAX_OBJECT_SIZE:
        raise ValueError(f"{text!r}: must be more than 0 and at most 5 GiB")
    return size


def _size_option(ctx, param, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _tls(endpoint: str, ca_bundle: str | None, insecure: bool):
    import ssl

    if ca_bundle and insecure:
        raise click.UsageError("--ca-bundle and --insecure do not go together")
    if insecure:
        return False
    if ca_bundle:
        try:
            return ssl.create_default_context(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise click.BadParameter(f"cannot use it: {exc}", param_hint="--ca-bundle") from None
    return None


@bench.command()
@click.option("--endpoint", help="S3 endpoint URL; without it a temporary local s3free is benched.")
@click.option("--access-key", help="Access key (default: S3FREE_ACCESS_KEY or AWS_ACCESS_KEY_ID).")
@click.option(
    "--secret-key", help="Secret key (default: S3FREE_SECRET_KEY or AWS_SECRET_ACCESS_KEY)."
)
@click.option("--region", default="us-east-1", show_default=True, help="SigV4 region.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False), help="CA(s) for HTTPS.")
@click.option("--insecure", is_flag=True, help="Do not verify the HTTPS certificate.")
@click.option(
    "--op",
    type=click.Choice(OPS_CHOICES),
    default="mixed",
    show_default=True,
    help="mixed = GET 45%, STAT 30%, PUT 15%, DELETE 10% (warp's default mix).",
)
@click.option(
    "--size",
    default="1MiB",
    show_default=True,
    callback=_size_option,
    help="Object size: 4KiB, 1MiB, 64MiB, ... (up to 5 GiB).",
)
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(0.1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds of measured load (at most 3600).",
)
@click.option(
    "--objects",
    type=click.IntRange(1, 1_000_000),
    help="Keys in play (default: 2500, fewer for big objects; >= --concurrency).",
)
@click.option("--bucket", help="Use this bucket (created and removed if it does not exist).")
@click.option("--keep", is_flag=True, help="Leave the objects (and bucket) behind.")
@click.option("--ec", default="6+3", show_default=True, help="Temporary server only: K+M.")
@click.option("--disks", type=click.IntRange(1, 256), help="Temporary server only: disk dirs.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Temporary server only: parent of its temp directory.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write JSON here.")
@click.option("--no-progress", is_flag=True, help="No live progress line on stderr.")
def s3(
    endpoint: str | None,
    access_key: str | None,
    secret_key: str | None,
    region: str,
    ca_bundle: str | None,
    insecure: bool,
    op: str,
    size: int,
    concurrency: int,
    duration: float,
    objects: int | None,
    bucket: str | None,
    keep: bool,
    ec: str,
    disks: int | None,
    directory: str | None,
    json_path: str | None,
    no_progress: bool,
) -> None:
    """A warp-like load against an S3 endpoint (any S3 server: standard calls only), every GET
    body verified; prints ops/s, MB/s and p50/p90/p99 latency per operation. Without
    --endpoint, a temporary s3free server on 127.0.0.1 and temporary disks is started, benched
    (its peak RSS reported) and removed. Exit status: 0 clean run, 1 errors or wrong bytes,
    2 bad usage."""
    import asyncio
    from urllib.parse import urlsplit

    from s3free.bench.s3bench import S3BenchConfig, format_s3_table, run_s3_bench
    from s3free.bench.tempserver import TempServer

    ctx = click.get_current_context()
    source = click.core.ParameterSource.DEFAULT
    given = [n for n in ("ec", "disks", "directory") if ctx.get_parameter_source(n) != source]
    k = m = 0
    if endpoint:
        parts = urlsplit(endpoint)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            raise click.BadParameter("say http(s)://HOST[:PORT]", param_hint="--endpoint")
        if given:
            raise click.UsageError("--ec, --disks and --dir are for the temporary server only")
        if bool(access_key) != bool(secret_key):
            raise click.UsageError("--access-key and --secret-key go together")
        if not access_key:
            from s3free.admin.client import MissingCredentials, credentials_from_env

            try:
                access_key, secret_key = credentials_from_env()
            except MissingCredentials as exc:
                raise click.UsageError(str(exc)) from None
    else:
        if access_key or secret_key or ca_bundle or insecure:
            raise click.UsageError("credentials and TLS options go with --endpoint")
        k, m = _parse_ec(ec)
        if disks is not None and disks < k + m:
            raise click.BadParameter(f"RS({k},{m}) needs at least {k + m}", param_hint="--disks")
    tls = _tls(endpoint or "", ca_bundle, insecure)
    if bucket is not None and not _BUCKET.match(bucket):
        raise click.BadParameter("not a valid S3 bucket name", param_hint="--bucket")
    if objects is not None and objects < concurrency:
        raise click.BadParameter(
            f"{objects} is fewer than --concurrency {concurrency}", param_hint="--objects"
        )
    config = S3BenchConfig(
        endpoint=endpoint or "", access_key=access_key or "", secret_key=secret_key or "",
        op=op, size=size, concurrency=concurrency, duration=duration, objects=objects,
        bucket=bucket, region=region, tls=tls, keep=keep,
    )  # fmt: skip
    progress = None if no_progress else sys.stderr
    try:
        if endpoint:
            result = asyncio.run(run_s3_bench(config, progress=progress))
        else:
            with TempServer(directory, k=k, m=m, disks=disks) as srv:
                config.endpoint = srv.endpoint
                config.access_key, config.secret_key = srv.access, srv.secret
                if progress:
                    click.echo(f"temporary s3free server at {srv.endpoint} under {srv.root}",
                               err=True)  # fmt: skip
                result = asyncio.run(run_s3_bench(config, progress=progress))
                result["server"] = {
                    "k": k, "m": m, "disks": srv.disks, "parent": str(srv.root),
                    "peak_rss_mib": srv.peak_rss_mib(),
                }  # fmt: skip
    except Exception as exc:  # unreachable endpoint, refused bucket, server that did not start
        click.echo(f"s3free bench s3: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    click.echo(format_s3_table(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    sys.exit(1 if result["errors"] or result["verify_failures"] else 0)
