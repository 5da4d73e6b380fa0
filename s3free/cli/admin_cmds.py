"""`s3free admin info`, `admin bucket usage` and `admin rebuild-index` (thin: call, print).

Against a running server through the admin API (--endpoint, root credentials from the
environment, as `admin user`); `rebuild-index` also works on the disks of a stopped store
(--disk ... --meta-dir, --data-dir or --config). `--json` prints the API's JSON (stable keys);
otherwise a table. Exit status: 0 done, 1 the server refused, could not be reached, or the
rebuild failed, 2 bad usage or missing credentials.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import click

from s3free.cli.diskview import heal_lines, size
from s3free.states import JobState

EXIT_FAILED, EXIT_USAGE = 1, 2


def add_commands(admin: click.Group) -> None:
    admin.add_command(info)
    admin.add_command(bucket)
    admin.add_command(rebuild_index)


def call(what: str, endpoint: str, ca_bundle: str | None, fn):
    """One admin API call for every `s3free admin` command: exit 2 for usage and credentials,
    1 when the server refused or could not be reached."""
    import os

    from s3free.admin.client import AdminClient, AdminError, ConfigError, credentials_from_env

    try:
        access_key, secret_key = credentials_from_env()
        client = AdminClient(
            endpoint,
            access_key,
            secret_key,
            region=os.environ.get("S3FREE_REGION") or "us-east-1",
            ca_bundle=ca_bundle,
        )
        return fn(client)
    except ConfigError as exc:
        click.echo(f"s3free admin {what}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except AdminError as exc:
        click.echo(f"s3free admin {what}: {exc}", err=True)
        sys.exit(EXIT_FAILED)


def endpoint_options(f):
    """--endpoint and --ca-bundle, as every `s3free admin` command that talks to a server has."""
    f = click.option(
        "--ca-bundle",
        type=click.Path(exists=True, dir_okay=False),
        help="CA certificate(s) to trust for HTTPS (e.g. the server's self-signed cert).",
    )(f)
    return click.option(
        "--endpoint", default="http://127.0.0.1:9000", show_default=True, help="The server's URL."
    )(f)


def _endpoint(f):
    f = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)
    return endpoint_options(f)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{s:02d}s"


def table(rows: list[tuple]) -> list[str]:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(f"{c!s:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _emit(as_json: bool, doc: dict, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for line in lines:
            click.echo(line)


# -- info -------------------------------------------------------------------------------------


@click.command()
@_endpoint
def info(endpoint: str, ca_bundle, as_json: bool) -> None:
    """Server version, uptime, erasure code, disks, usage and heal status."""
    doc = call("info", endpoint, ca_bundle, lambda c: c.server_info())
    _emit(as_json, doc, info_lines(doc))


def when(ms: int, now_ms: int) -> str:
    """A time as ISO-8601 UTC and how long ago: 2026-12-07T21:46:14Z (5m12s ago)."""
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({duration(max(0, now_ms - ms) / 1000)} ago)"


def scrub_line(scrub: dict | None, now_ms: int) -> str:
    """The last (or running) scrub pass: when, how far, what it found."""
    if not scrub:
        return "last scrub: none yet"
    found = (
        f"{scrub.get('objects_checked', 0)} objects, {size(scrub.get('bytes_checked', 0))} "
        f"verified, {scrub.get('shards_bad', 0)} shards bad, {scrub.get('repaired', 0)} "
        f"repaired, {scrub.get('unrepairable', 0)} unrepairable"
    )
    scope = f" of bucket {scrub['bucket']}" if scrub.get("bucket") else ""
    started = scrub.get("started_ms")
    if scrub.get("state") == JobState.RUNNING:
        since = f" since {when(started, now_ms)}" if started else ""
        return f"scrub{scope}: running{since}, {found} so far"
    finished = scrub.get("finished_ms")
    at = f" {when(finished, now_ms)}" if finished else ""
    error = f"; error: {scrub['error']}" if scrub.get("error") else ""
    return f"last scrub{scope}: {scrub.get('state', '?')}{at}, {found}{error}"


def info_lines(doc: dict, now_ms: int | None = None) -> list[str]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    u = doc["usage"]
    started = f", started {when(doc['started_ms'], now_ms)}" if doc.get("started_ms") else ""
    lines = [
        f"s3free {doc['version']}, up {duration(doc.get('uptime_s'))}{started}, "
        f"listening on {doc.get('listen') or '-'} (region {doc.get('region')})",
        f"set {doc['set_id']}: RS({doc['k']},{doc['m']}), block size {size(doc['block_size'])}, "
        f"write quorum {doc['write_quorum']}, {doc['disks_online']} of {len(doc['disks'])} "
        "disks online",
        "",
    ]
    rows: list[tuple] = [("POS", "STATE", "USED", "FREE", "SHARDS", "PATH", "PROBLEM")]
    for d in doc["disks"]:
        shards = d.get("shards") or {}
        count = shards.get("shard_files")
        shown = "-" if count is None else f"{count}{'' if shards.get('exact') else '~'}"
        rows.append(
            (d["position"], d["state"], size(d["used_bytes"]), size(d["free_bytes"]), shown,
             d["path"], d.get("problem") or "")
        )  # fmt: skip
    lines += table(rows)
    for group in doc.get("shared_devices") or []:
        lines.append(
            f"warning: disks {', '.join(map(str, group))} share one filesystem: "
            "one device failure takes them all"
        )
    lines += [
        "",
        f"usage: {doc['buckets']} buckets, {u['objects']} objects, "
        f"{size(u['logical_bytes'])} logical, {size(u['raw_bytes'])} raw on the disks",
    ]
    if u["uploads"]:
        lines.append(
            f"       {u['uploads']} multipart uploads in progress, {u['upload_parts']} parts, "
            f"{size(u['upload_bytes'])} ({size(u['upload_raw_bytes'])} raw)"
        )
    held = doc.get("quarantine") or {}
    if held.get("files"):
        lines.append(
            f"quarantine: {held['files']} files, {size(held['bytes'])} "
            "(s3free disk quarantine list)"
        )
    heal = doc.get("heal")
    if heal is None:
        lines.append("heal: no heal service running")
    else:
        lines += heal_lines(heal)
        repairs = heal.get("repairs") or {}
        done = ", ".join(f"{n} {what}" for what, n in sorted(repairs.items()))
        lines.append(f"repairs since start: {done or 'none'}")
        lines.append(scrub_line(heal.get("scrub"), now_ms))
    rebuild = (doc.get("index") or {}).get("last_rebuild")
    if rebuild:
        at = rebuild.get("finished_ms") or rebuild.get("started_ms")
        lines.append(
            f"index: last rebuild {rebuild['state']}{' ' + when(at, now_ms) if at else ''} "
            f"(job {rebuild['id']})"
        )
    return lines


# -- bucket usage ------------------------------------------------------------------------------


@click.group()
def bucket() -> None:
    """Bucket figures (usage)."""


@bucket.command()
@click.argument("name", required=False)
@_endpoint
def usage(name: str | None, endpoint: str, ca_bundle, as_json: bool) -> None:
    """Objects, logical and raw bytes, uploads in progress: of bucket NAME, or of every
    bucket with a total. Raw bytes are what the shards and manifest copies take on the
    disks (k+m of each, headers and footers included)."""
    doc = call("bucket usage", endpoint, ca_bundle, lambda c: c.bucket_usage(name))
    rows = [doc] if name is not None else doc["buckets"]
    lines = table(
        [("BUCKET", "OBJECTS", "LOGICAL", "RAW", "UPLOADS", "UPLOAD BYTES")]
        + [
            (r["bucket"], r["objects"], size(r["logical_bytes"]), size(r["raw_bytes"]),
             r["uploads"], size(r["upload_bytes"]))
            for r in rows
        ]
        + (
            [("(total)", doc["total"]["objects"], size(doc["total"]["logical_bytes"]),
              size(doc["total"]["raw_bytes"]), doc["total"]["uploads"],
              size(doc["total"]["upload_bytes"]))]
            if name is None
            else []
        )
    )  # fmt: skip
    _emit(as_json, doc, lines)


# -- rebuild-index -----------------------------------------------------------------------------


@click.command("rebuild-index")
@click.option("--no-wait", is_flag=True, help="Start the rebuild and print its job; do not follow.")
@click.option("--job", "job_id", help="Show (and follow) a rebuild job already started.")
@click.option("--timeout", default=24 * 3600.0, show_default=True, help="Seconds to follow.")
@click.option("--disk", "disks", multiple=True, help="Stopped store: a disk (repeat).")
@click.option("--meta-dir", help="Stopped store: the index directory.")
@click.option("--data-dir", help="Stopped store: the server's data directory.")
@click.option("--config", "config_file", help="Stopped store: the server's YAML config.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--endpoint", help="The server's URL (default http://127.0.0.1:9000).")
def rebuild_index(
    no_wait, job_id, timeout, disks, meta_dir, data_dir, config_file, as_json, ca_bundle, endpoint
) -> None:
    """Rebuild the index from the disks. On a running server the new index is built beside
    the live one while it serves, then swapped in with writes paused for the swap only;
    writes made meanwhile are kept. With --disk/--meta-dir, --data-dir or --config it works
    on the disks of a stopped store instead."""
    direct = disks or data_dir or config_file
    if direct:
        if endpoint or job_id or no_wait:
            _usage("--endpoint, --job and --no-wait do not go with a stopped store's disks")
        if disks and not (meta_dir or data_dir or config_file):
            _usage("with --disk, say where the index is: --meta-dir DIR (or --data-dir)")
        job = _offline(disks, meta_dir, data_dir, config_file)
    else:
        endpoint = endpoint or "http://127.0.0.1:9000"
        if job_id:
            job = call("rebuild-index", endpoint, ca_bundle, lambda c: c.rebuild_job(job_id))
        else:
            job = call("rebuild-index", endpoint, ca_bundle, lambda c: c.start_rebuild())
        if no_wait:
            _emit(as_json, {"job": job}, [f"rebuild-index started: job {job['id']}"])
            return
        job = _follow(endpoint, ca_bundle, job, timeout, as_json)
    _emit(as_json, {"job": job}, rebuild_lines(job))
    sys.exit(0 if job["state"] == JobState.DONE else EXIT_FAILED)


def _usage(message: str) -> None:
    click.echo(f"s3free admin rebuild-index: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _follow(endpoint: str, ca_bundle, job: dict, timeout: float, as_json: bool) -> dict:
    deadline = time.monotonic() + timeout
    shown = 0.0
    while job["state"] == JobState.RUNNING:
        if time.monotonic() > deadline:
            click.echo(
                f"s3free admin rebuild-index: job {job['id']} still running after "
                f"{timeout:g} s (it goes on; follow it with --job {job['id']})",
                err=True,
            )
            sys.exit(EXIT_FAILED)
        time.sleep(0.2)
        job = call("rebuild-index", endpoint, ca_bundle, lambda c, i=job["id"]: c.rebuild_job(i))
        if not as_json and job["state"] == JobState.RUNNING and time.monotonic() - shown >= 2:
            click.echo(progress_line(job), err=True)
            shown = time.monotonic()
    return job


def progress_line(job: dict) -> str:
    return (
        f"rebuild-index {job['id']}: {job['phase']}, {job['prefixes_done']}/"
        f"{job['prefixes_total']} directories, {job['versions_seen']} versions seen"
    )


def rebuild_lines(job: dict) -> list[str]:
    if job["state"] != JobState.DONE:
        return [f"rebuild-index {job['id']}: {job['state']}: {job['error'] or job['phase']}"]
    changed = job.get("changed_during") or {}
    lines = [
        f"index rebuilt: {job['objects']} objects in {job['buckets']} buckets"
        + (f" ({job['buckets_recreated']} bucket records recreated)"
           if job["buckets_recreated"] else "")
        + f", {job['uploads']} uploads in progress",
        f"versions seen: {job['versions_seen']}; skipped: {job['skipped_older']} older versions "
        f"(left for the scrubber), {job['skipped_no_manifest']} with shards but no manifest "
        f"(see `s3free disk recover`), {job['unreadable']} unreadable",
    ]  # fmt: skip
    if changed:
        lines.append(
            f"written during the rebuild (taken from the live index): {changed['objects']} "
            f"objects, {changed['buckets']} buckets, {changed['uploads']} uploads"
        )
    lines += [f"  unreadable: {p}" for p in job.get("problems") or []]
    if job.get("previous_index"):
        lines.append(f"the previous index is kept at {job['previous_index']} until the next one")
    return lines


def _offline(disks, meta_dir, data_dir, config_file) -> dict:
    """Rebuild on the disks of a stopped store (the store lock keeps a server out)."""
    from pathlib import Path

    from s3free.admin.local import NotAStore, check_paths
    from s3free.admin.rebuild import IndexRebuilder, RebuildRefused
    from s3free.config import ConfigError, load
    from s3free.engine import ObjectStore
    from s3free.errors import DiskSetError, StoreInUse

    async def go() -> dict:
        flags = {"disks": disks, "data_dir": data_dir, "meta_dir": meta_dir}
        config = load(config_file, flags)
        paths = [Path(p) for p in config.disk_paths]
        check_paths(paths)
        store = await ObjectStore.open(paths, meta_dir=config.meta_path)
        try:
            rebuilder = IndexRebuilder(store)
            job = rebuilder.start()
            await rebuilder.wait()
            return job.to_json()
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except ConfigError as exc:
        _usage(str(exc))
    except StoreInUse as exc:
        click.echo(
            f"s3free admin rebuild-index: {exc}; use --endpoint to rebuild through the server",
            err=True,
        )
    except (NotAStore, DiskSetError, RebuildRefused) as exc:
        click.echo(f"s3free admin rebuild-index: {exc}", err=True)
    sys.exit(EXIT_FAILED)
