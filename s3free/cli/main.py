"""`s3free` with its five command groups: server, disk, cluster, admin, bench.

Groups whose features are not built yet say so on stderr and exit with status 2; they never
print made-up output.
"""

from __future__ import annotations

import sys

import click

from s3free import __version__
from s3free.cli.admin_cmds import add_commands as add_admin_commands
from s3free.cli.admin_cmds import call as admin_call
from s3free.cli.admin_cmds import endpoint_options
from s3free.cli.bench import bench
from s3free.cli.disk import disk
from s3free.cli.quarantine import quarantine

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
@click.option(
    "--data-dir",
    help="Where the embedded default keeps disks and index (default ./s3free-data).",
)
@click.option("--disk", "disks", multiple=True, help="A disk directory (repeat for each disk).")
@click.option("--ec", help="Erasure code K+M, e.g. 6+3 (default: chosen for the disk count).")
@click.option("--listen", help="HOST:PORT to serve on (default 127.0.0.1:9000).")
@click.option(
    "--meta-dir",
    help="Index directory (default <data-dir>/meta); generated root keys are kept beside it.",
)
@click.option("--region", help="Region name (default us-east-1).")
@click.option("--domain", help="Enable virtual-hosted-style addressing as BUCKET.DOMAIN.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="Serve HTTPS with this cert.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="...and this private key.")
@click.option("--log-level", help="debug, info (default), warning or error.")
@click.option("--log-format", help="text (default) or json (one object per line).")
@click.option(
    "--access-log/--no-access-log", default=None, help="A line per S3 request (default off)."
)
@click.option("--otlp-endpoint", help="Send traces to this OTLP/HTTP URL (default: no tracing).")
@click.option("--trace-sample-ratio", help="Fraction of requests traced, 0..1 (default 1).")
@click.option(
    "--requests-max", help="S3 requests at once; more get 503 SlowDown (default 0: no limit)."
)
@click.option("--connections-max", help="Client connections at once (0: from the fd limit).")
@click.option("--header-timeout-s", help="A request header must arrive within (default 30 s).")
@click.option("--idle-timeout-s", help="Close a connection idle this long (default 60 s).")
@click.option("--stall-timeout-s", help="Cut a client reading/sending nothing (default 120 s).")
@click.option("--io-threads", help="Engine threads for hashing, coding, file I/O (default 32).")
@click.option("--block-size", help="Bytes per block when formatting new disks (default 1 MiB).")
@click.option("--disk-probe-s", help="Probe every disk's health this often (default 5 s).")
@click.option("--scrub-rate-mb-s", help="Scrub and repair pace cap in MB/s (default 8; 0: none).")
@click.option("--scrub-files-per-s", help="...and files/s cap (default 200; 0: none).")
@click.option("--scrub-interval-s", help="A full scrub pass this often (default a week; 0: never).")
@click.option("--orphan-grace-s", help="Never collect unreferenced files younger (default 3600).")
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
def cluster(args: tuple[str, ...]) -> None:
    """Multi-node clustering (not built yet)."""
    _not_built("cluster", args, "clustering is on the roadmap")


class _AdminGroup(click.Group):
    """`s3free admin`: subcommands not built yet say so (exit 2) instead of a usage error."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            _not_built("admin", tuple(args), "see s3free admin --help for what exists")
        return super().resolve_command(ctx, args)


@main.group(cls=_AdminGroup)
def admin() -> None:
    """Manage a running server through its admin API (users; more is planned).

    Root credentials come from S3FREE_ACCESS_KEY / S3FREE_SECRET_KEY (or AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY), the region from S3FREE_REGION (default us-east-1). Exit status:
    0 done, 1 the server refused or could not be reached, 2 bad usage (options, endpoint, CA
    bundle) or missing credentials.
    """


@admin.group()
def user() -> None:
    """Add, list and remove users (root only)."""


@user.command("add")
@click.argument("name")
@click.option("--access-key", required=True, help="The new user's access key id.")
@click.option("--secret-key", required=True, help="The new user's secret key (8-128 chars).")
@endpoint_options
def user_add(name: str, access_key: str, secret_key: str, endpoint: str, ca_bundle) -> None:
    """Create user NAME with the given keys."""
    made = admin_call(
        "user add", endpoint, ca_bundle, lambda c: c.add_user(name, access_key, secret_key)
    )
    click.echo(f"added user {made['name']} (access key {made['access_key']})")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@endpoint_options
def user_list(as_json: bool, endpoint: str, ca_bundle) -> None:
    """List the users (root first)."""
    import json
    from datetime import UTC, datetime

    users = admin_call("user list", endpoint, ca_bundle, lambda c: c.list_users())
    if as_json:
        click.echo(json.dumps({"users": users}, indent=2, sort_keys=True))
        return
    rows = [("NAME", "ACCESS KEY", "CREATED (UTC)")]
    for u in users:
        created = (
            datetime.fromtimestamp(u["created_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if u.get("created_ms")
            else "-"
        )
        rows.append((u["name"], u["access_key"], created))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    for r in rows:
        click.echo(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}")


@user.command("remove")
@click.argument("name")
@endpoint_options
def user_remove(name: str, endpoint: str, ca_bundle) -> None:
    """Remove user NAME."""
    admin_call("user remove", endpoint, ca_bundle, lambda c: c.remove_user(name))
    click.echo(f"removed user {name}")


@admin.group("config")
def config_group() -> None:
    """The running server's configuration."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Ask no server: show what `s3free server --config FILE` would use here.",
)
@endpoint_options
def config_show(as_json: bool, config_file: str | None, endpoint: str, ca_bundle) -> None:
    """Every setting, its effective value and where it came from (flag, env, file, default);
    secrets are masked."""
    from s3free.cli.configshow import offline, render

    if config_file:
        doc = offline(config_file)
    else:
        doc = admin_call("config show", endpoint, ca_bundle, lambda c: c.config())
    click.echo(render(doc, as_json))


main.add_command(bench)
# Registered here, not in disk.py: quarantine.py uses disk.py's helpers (no import cycle).
disk.add_command(quarantine)
main.add_command(disk)
add_admin_commands(admin)  # info, bucket usage, rebuild-index (s3free/cli/admin_cmds.py)


if __name__ == "__main__":
    main()
