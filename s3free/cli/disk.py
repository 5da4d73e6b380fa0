"""`s3free disk`: status, scrub, repair, job, verify, replace (add/remove: not built).

Each command talks to a running server through the admin API (`--endpoint`, root credentials
from S3FREE_ACCESS_KEY/S3FREE_SECRET_KEY) or, given `--disk PATH...`/`--config FILE`/
`--data-dir`, works directly on the disks when no server holds them (s3free/admin/local.py).
Thin: parse, call, print (s3free/cli/diskview.py renders).

Exit status: 0 done; 1 failed (refused, not found, job failed); 2 usage (bad options, no
such disk), missing credentials, not built; 3 endpoint unreachable; 4 access denied (wrong
credentials); 5 a path is not a disk of this store; 6 the store is in use by a running server
(direct mode refused); 7 no heal service; 8 unrepairable objects found; 9 (verify) the object
needs repair but can be repaired; 10 the pass finished but left object versions below k+m
(waiting for an offline disk, a repair that keeps failing, an empty disk to replace): it
names them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import click

from s3free.cli import diskview
from s3free.states import DiskState, JobState

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_DENIED = 1, 2, 3, 4
EXIT_NOT_THIS_STORE, EXIT_IN_USE, EXIT_NO_HEAL, EXIT_UNREPAIRABLE, EXIT_NEEDS_REPAIR = 5, 6, 7, 8, 9
EXIT_LEFT = 10


class Fail(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _target(f):
    """Where to act: a server (--endpoint) or the disks themselves (--disk/--config)."""
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        click.option("--meta-dir", help="Direct mode: the index directory."),
        click.option("--data-dir", help="Direct mode: the server's data directory."),
        click.option("--config", "config_file", help="Direct mode: the server's YAML config."),
        click.option("--disk", "disks", multiple=True, help="Direct mode: a disk (repeat)."),
        click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False)),
        click.option("--endpoint", help="The server's URL (default http://127.0.0.1:9000)."),
    ]
    for option in options:
        f = option(f)
    return f


class _Remote:
    """The admin client behind the same async calls as LocalDisks."""

    def __init__(self, client) -> None:
        self.c = client

    async def status(self):
        return self.c.disk_status()

    async def scrub(self, bucket, rate):
        return self.c.start_scrub(bucket, rate)

    async def repair(self, bucket, key, rate):
        return self.c.start_repair(bucket, key, rate)

    async def job(self, job_id):
        return self.c.job(job_id)

    async def verify(self, bucket, key):
        return self.c.verify(bucket, key)

    async def replace(self, disk, rate):
        return self.c.disk_action("replace", disk, rate)

    async def quarantine(self):
        return self.c.quarantine()

    async def purge_quarantine(self, older_than_s, force):
        return self.c.purge_quarantine(older_than_s, force)

    async def settle(self):
        return None

    async def close(self):
        return None


async def _backend(opts: dict):
    direct = opts["disks"] or opts["config_file"] or opts["data_dir"]
    if direct and opts["endpoint"]:
        raise Fail("give --endpoint or direct-mode options (--disk/--config), not both", 2)
    if not direct:
        from s3free.admin.client import AdminClient, credentials_from_env

        access, secret = credentials_from_env()
        client = AdminClient(
            opts["endpoint"] or "http://127.0.0.1:9000",
            access,
            secret,
            region=os.environ.get("S3FREE_REGION") or "us-east-1",
            ca_bundle=opts["ca_bundle"],
        )
        return _Remote(client), False
    from s3free.admin.local import LocalDisks
    from s3free.config import load

    flags = {"disks": opts["disks"], "data_dir": opts["data_dir"], "meta_dir": opts["meta_dir"]}
    config = load(opts["config_file"], flags)
    if opts["disks"] and not (opts["meta_dir"] or opts["data_dir"] or opts["config_file"]):
        raise Fail("with --disk, say where the index is: --meta-dir DIR (or --data-dir)", 2)
    return await LocalDisks.open([Path(p) for p in config.disk_paths], config.meta_path), True


def _run(what: str, opts: dict, body) -> None:
    """Open the backend, run body(backend, direct) -> exit code, map failures to codes."""
    from s3free.admin.client import AdminError, ConfigError, Unreachable
    from s3free.admin.local import NotAStore
    from s3free.config import ConfigError as SettingsError
    from s3free.errors import DiskSetError, NoSuchBucket, NoSuchKey, StoreInUse

    async def go() -> int:
        backend, direct = await _backend(opts)
        try:
            return await body(backend, direct)
        finally:
            await backend.close()

    try:
        code = asyncio.run(go())
    except Fail as exc:
        code = _say(what, str(exc), exc.code)
    except (ConfigError, SettingsError) as exc:
        code = _say(what, str(exc), EXIT_USAGE)
    except Unreachable as exc:
        code = _say(what, str(exc), EXIT_UNREACHABLE)
    except AdminError as exc:
        code = _say(what, str(exc), _admin_code(exc))
    except StoreInUse as exc:
        code = _say(what, f"{exc}; use --endpoint to go through the server", EXIT_IN_USE)
    except (NotAStore, DiskSetError) as exc:
        code = _say(what, str(exc), EXIT_NOT_THIS_STORE)
    except (NoSuchKey, NoSuchBucket, ValueError) as exc:
        code = _say(what, str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        code = _say(what, "interrupted", EXIT_FAILED)
    sys.exit(code)


def _admin_code(exc) -> int:
    if exc.status == 403:
        return EXIT_DENIED
    if exc.status == 503 and exc.code == "HealUnavailable":
        return EXIT_NO_HEAL
    if exc.status == 501 or exc.code == "NoSuchDisk":
        return EXIT_USAGE
    return EXIT_FAILED


def _say(what: str, message: str, code: int) -> int:
    click.echo(f"s3free disk {what}: {message}", err=True)
    return code


def _emit(opts: dict, doc: dict, text: list[str]) -> None:
    if opts["as_json"]:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for line in text:
            click.echo(line)


@click.group()
def disk() -> None:
    """Disk status, scrub, repair, verify, replacement and header-only recovery.

    Against a running server (--endpoint, root credentials from S3FREE_ACCESS_KEY and
    S3FREE_SECRET_KEY) or directly on the disks when no server holds them (--disk PATH
    repeated with --meta-dir, or --config FILE, or --data-dir). Exit status: 0 done,
    1 failed (refused, not found, job failed), 2 usage (bad options, no such disk, missing
    credentials, not built), 3 endpoint unreachable, 4 access denied, 5 not a disk of this
    store, 6 store in use by a server, 7 no heal service, 8 unrepairable objects, 9 object
    needs repair (verify), 10 the pass left object versions below k+m (it names them).
    """


@disk.command()
@_target
def status(**opts) -> None:
    """Per disk: state, format, usage, shard files, errors, heal progress."""

    async def body(backend, direct) -> int:
        doc = await backend.status()
        _emit(opts, doc, diskview.status_lines(doc))
        return 0

    _run("status", opts, body)


async def _follow(opts: dict, backend, job: dict, wait: bool, timeout: float) -> int:
    if not wait:
        _emit(opts, {"job": job}, [diskview.started_line(job)])
        return 0
    deadline = time.monotonic() + timeout
    tty = sys.stderr.isatty()
    shown = 0.0
    while job.get("state") == JobState.RUNNING:
        if time.monotonic() > deadline:
            raise Fail(f"job {job['id']} still running after {timeout:g} s (it goes on)")
        await asyncio.sleep(0.2)
        job = await backend.job(job["id"])
        if job is None:
            raise Fail("the job vanished (server restarted?)")
        if not opts["as_json"] and (tty or time.monotonic() - shown >= 5):
            end = "\r" if tty else "\n"
            click.echo(diskview.progress_line(job), err=True, nl=False)
            click.echo(end, err=True, nl=False)
            shown = time.monotonic()
    if tty and not opts["as_json"]:
        click.echo("", err=True)
    await backend.settle()
    _emit(opts, {"job": job}, diskview.summary_lines(job))
    if job.get("state") != JobState.DONE or (job.get("key") and job.get("error")):
        return EXIT_FAILED  # (a key deleted before its repair ran: error, nothing checked)
    if job.get("unrepairable"):
        return EXIT_UNREPAIRABLE
    return EXIT_LEFT if job.get("left_total") else 0


def _wait_options(f):
    f = click.option("--timeout", default=7 * 86400.0, help="Give up waiting after seconds.")(f)
    return click.option("--wait", is_flag=True, help="Follow the job; print a summary.")(f)


@disk.command()
@click.option("--bucket", help="Only this bucket.")
@click.option("--rate", type=float, help="MB/s to verify at (0 = unlimited).")
@_wait_options
@_target
def scrub(bucket, rate, wait, timeout, **opts) -> None:
    """Start a scrub pass now (verify every shard, repair, collect orphans)."""

    async def body(backend, direct) -> int:
        job = await backend.scrub(bucket, rate)
        return await _follow(opts, backend, job, wait or direct, timeout)

    _run("scrub", opts, body)


@disk.command()
@click.option("--bucket", help="Only this bucket.")
@click.option("--object", "key", help="Only this key (needs --bucket).")
@click.option("--rate", type=click.FloatRange(min=0), help="MB/s to verify at (0 = unlimited).")
@_wait_options
@_target
def repair(bucket, key, rate, wait, timeout, **opts) -> None:
    """Repair now: verify objects in scope and rebuild what is missing or bad."""
    if key and not bucket:
        raise click.UsageError("--object needs --bucket")

    async def body(backend, direct) -> int:
        job = await backend.repair(bucket, key, rate)
        return await _follow(opts, backend, job, wait or direct, timeout)

    _run("repair", opts, body)


@disk.command()
@click.argument("job_id")
@_wait_options
@_target
def job(job_id, wait, timeout, **opts) -> None:
    """Show a scrub or repair job by id (with --wait, follow it)."""

    async def body(backend, direct) -> int:
        found = await backend.job(job_id)
        if found is None:
            raise Fail(f"no job {job_id}")
        if not wait and found.get("state") == JobState.RUNNING:
            _emit(opts, {"job": found}, [diskview.progress_line(found)])
            return 0
        return await _follow(opts, backend, found, True, timeout)

    _run("job", opts, body)


@disk.command()
@click.argument("bucket_arg", metavar="[BUCKET]", required=False)
@click.argument("key_arg", metavar="[KEY]", required=False)
@click.option("--bucket", help="The object's bucket.")
@click.option("--object", "key", help="The object's key.")
@click.option("--shards", is_flag=True, help="List every shard (a big object has hundreds).")
@_target
def verify(bucket_arg, key_arg, bucket, key, shards, **opts) -> None:
    """The full health of one object (--bucket B --object KEY, or B KEY): the verdict, healthy
    and bad shards by disk, manifests; --shards for every shard."""
    for given, positional, name in ((bucket, bucket_arg, "--bucket"), (key, key_arg, "--object")):
        if given is not None and positional is not None and given != positional:
            raise click.UsageError(f"{name} {given} and the argument {positional} differ")
    bucket, key = bucket or bucket_arg, key or key_arg
    if not bucket or not key:
        raise click.UsageError("say which object: --bucket BUCKET --object KEY")

    async def body(backend, direct) -> int:
        health = await backend.verify(bucket, key)
        shown = diskview.health_lines if shards else diskview.verify_summary_lines
        _emit(opts, {"health": health}, shown(health))
        verdict = diskview.verdict(health)
        return {"ok": 0, "degraded": EXIT_NEEDS_REPAIR}.get(verdict, EXIT_UNREPAIRABLE)

    _run("verify", opts, body)


@disk.command()
@click.argument("which")
@click.option(
    "--rate", type=click.FloatRange(min=0), help="MB/s to heal the disk at (0 = unlimited)."
)
@_wait_options
@_target
def replace(which, rate, wait, timeout, **opts) -> None:
    """Re-probe disk WHICH (position, path or disk id) now; an empty directory in its place
    is formatted into the set and healed."""

    async def body(backend, direct) -> int:
        try:
            answer = await backend.replace(which, rate)
        except ValueError as exc:  # direct mode: no such disk (the API answers NoSuchDisk)
            raise Fail(str(exc), EXIT_USAGE) from None
        _emit(opts, answer, diskview.replace_lines(answer))
        if rate is not None and answer.get("rate_mb_s") is None:
            click.echo(
                f"s3free disk replace: no heal pass is running for disk {which}: --rate not "
                "applied (the scrub rate, scrub_rate_mb_s, paces heals)",
                err=True,
            )
        heal = answer["disk"].get("heal") or {}
        if wait and heal.get("job_id"):
            job = await backend.job(heal["job_id"])
            return await _follow(opts, backend, job, True, timeout)
        return 0 if answer["disk"]["state"] != DiskState.OFFLINE else EXIT_FAILED

    _run("replace", opts, body)


@disk.command()
@_target
def recover(**opts) -> None:
    """Restore versions whose every manifest copy is lost, from their shard headers, as
    lost+found/<object id>/<version id> (spec 13, rule 5). Only on the disks of a stopped
    store: the shards carry no key, and only an operator knows they are not the leftovers of
    writes that crashed before they were acknowledged."""

    if opts["endpoint"] or not (opts["disks"] or opts["config_file"] or opts["data_dir"]):
        sys.exit(
            _say(
                "recover",
                "runs on the disks of a stopped store: stop the server, then give --data-dir, "
                "--config or --disk ... --meta-dir",
                EXIT_USAGE,
            )
        )

    async def body(backend, direct) -> int:
        report = await backend.store.recover_headerless()
        doc = {"restored": report.from_headers, "problems": list(report.unreadable)}
        lines = [f"restored {report.from_headers} version(s) into lost+found/"]
        lines += [f"  not restored: {why}" for why in report.unreadable]
        _emit(opts, doc, lines)
        return EXIT_FAILED if report.unreadable else 0

    _run("recover", opts, body)


@disk.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def add(args) -> None:
    """Add a disk to the set (not built yet)."""
    _say("add", "not built yet (a set has a fixed number of disks; design in the spec)", 2)
    sys.exit(EXIT_USAGE)


@disk.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def remove(args) -> None:
    """Drain and remove a disk (not built yet)."""
    _say("remove", "not built yet (draining is designed in the spec, not built)", 2)
    sys.exit(EXIT_USAGE)
