"""`s3free disk quarantine list|purge`: the bad shard files repairs moved aside (spec 13.2).

Like every `disk` command: through a running server's admin API (--endpoint) or directly on
the disks of a stopped store. Thin: parse, call, print; the guard on young files is
s3free/heal/quarantine.py's (the server checks it too).
"""

from __future__ import annotations

import re

import click

from s3free.cli.disk import _emit, _run, _target
from s3free.cli.diskview import size
from s3free.heal.quarantine import MIN_PURGE_AGE_S, check_age

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h', '7d' or plain seconds -> seconds (click.BadParameter if not)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not a duration: give a number with s, m, h or d (e.g. 30s, 1h, 7d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _age(seconds: float) -> str:
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            return f"{seconds / span:.1f}{unit}"
    return f"{seconds:.0f}s"


def _where(entry: dict) -> str:
    if not entry.get("object_id"):
        return "-"
    return f"object {entry['object_id']} version {entry['version_id']} part {entry['part_number']}"


def list_lines(doc: dict) -> list[str]:
    total = doc["total"]
    lines = [f"quarantine: {total['files']} files, {size(total['bytes'])}"]
    for d in doc["disks"]:
        if d["files"] is None:
            lines.append(f"disk {d['position']}: offline, not looked at ({d['path']})")
            continue
        lines.append(f"disk {d['position']}: {d['files']} files, {size(d['bytes'])} ({d['path']})")
        for e in d["entries"]:
            lines.append(f"  {e['name']}  {size(e['size'])}  age {_age(e['age_s'])}  {_where(e)}")
    return lines


def purge_lines(doc: dict) -> list[str]:
    lines = [
        f"removed {doc['removed_files']} files, {size(doc['removed_bytes'])} "
        f"(older than {_age(doc['older_than_s'])}); {doc['kept_files']} files kept"
    ]
    for r in doc["removed"]:
        lines.append(f"  disk {r['position']}: {r['name']}  {size(r['size'])}  {_where(r)}")
    return lines


@click.group()
def quarantine() -> None:
    """Bad shard files repairs moved aside: list them, purge old ones."""


@quarantine.command("list")
@_target
def list_(**opts) -> None:
    """Every quarantined file: disk, name, size, age, the object version it came from."""

    async def body(backend, direct) -> int:
        doc = await backend.quarantine()
        _emit(opts, doc, list_lines(doc))
        return 0

    _run("quarantine list", opts, body)


@quarantine.command()
@click.option(
    "--older-than",
    "older_than",
    required=True,
    help=f"Remove files quarantined longer ago than this (30s, 15m, 1h, 7d). Below "
    f"{MIN_PURGE_AGE_S / 3600:.0f}h it needs --yes.",
)
@click.option("--yes", is_flag=True, help="Confirm purging files younger than the minimum age.")
@_target
def purge(older_than: str, yes: bool, **opts) -> None:
    """Remove quarantined files older than --older-than; prints what it removed."""
    seconds = parse_duration(older_than)

    async def body(backend, direct) -> int:
        check_age(seconds, yes)  # before touching anything (the server checks it again)
        doc = await backend.purge_quarantine(seconds, yes)
        _emit(opts, doc, purge_lines(doc))
        return 0

    _run("quarantine purge", opts, body)
