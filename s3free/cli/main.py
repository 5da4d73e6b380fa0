"""`s3free` with its five command groups: server, disk, cluster, admin, bench.

Groups whose features are not built yet say so on stderr and exit with status 2; they never
print made-up output.
"""

from __future__ import annotations

import sys

import click

from s3free import __version__
from s3free.cli.bench import bench

NOT_BUILT_EXIT = 2
_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


def _not_built(what: str, args: tuple[str, ...], when: str) -> None:
    shown = " ".join((what, *args[:1]))
    click.echo(f"s3free {shown}: not built yet ({when}).", err=True)
    sys.exit(NOT_BUILT_EXIT)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="s3free")
def main() -> None:
    """s3free: an S3-compatible, erasure-coded, self-healing object store."""


@main.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--data-dir", help="Where the embedded default keeps disks, index, credentials.")
@click.option("--disk", "disks", multiple=True, help="A disk directory (repeat for each disk).")
@click.option("--ec", help="Erasure code K+M, e.g. 6+3 (default: chosen for the disk count).")
@click.option("--listen", help="HOST:PORT to serve on (default 127.0.0.1:9000).")
@click.option("--meta-dir", help="Index directory (default <data-dir>/meta).")
@click.option("--region", help="Region name (default us-east-1).")
@click.option("--domain", help="Enable virtual-hosted-style addressing as BUCKET.DOMAIN.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Serve HTTPS with this cert.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="...and this private key.")
def server(config_file: str | None, **flags) -> None:
    """Serve the S3 API on the configured disks."""
    from s3free.config import ConfigError, load
    from s3free.errors import DiskSetError
    from s3free.server import serve

    try:
        config = load(config_file, flags)
    except ConfigError as exc:
        click.echo(f"s3free server: {exc}", err=True)
        sys.exit(2)
    try:
        serve(config)
    except DiskSetError as exc:
        click.echo(f"s3free server: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"s3free server: {exc}", err=True)
        sys.exit(1)


@main.command(context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def disk(args: tuple[str, ...]) -> None:
    """Disk status, scrub, repair, verify, replace (not built yet)."""
    _not_built("disk", args, "self-healing and its disk commands are planned")


@main.command(context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def cluster(args: tuple[str, ...]) -> None:
    """Multi-node clustering (not built yet)."""
    _not_built("cluster", args, "clustering is on the roadmap")


@main.command(context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def admin(args: tuple[str, ...]) -> None:
    """Server info, users, bucket usage, config, index rebuild (not built yet)."""
    _not_built("admin", args, "the admin API comes with the S3 server")


main.add_command(bench)


if __name__ == "__main__":
    main()
