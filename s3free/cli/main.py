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


@main.command(context_settings=_PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def server(args: tuple[str, ...]) -> None:
    """Serve the S3 API on the configured disks (not built yet)."""
    _not_built("server", (), "the S3 API comes next; `s3free bench engine` exercises the engine")


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
