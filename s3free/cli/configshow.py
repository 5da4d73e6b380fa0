"""`s3free admin config show`: the configuration document as a table or JSON.

The document is what GET /_s3free/admin/v1/config answers (s3free/admin/api.py), or, with
--config FILE, the same built here from the file and this environment without a server.
Secrets arrive masked and are printed masked.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def offline(config_file: str) -> dict[str, Any]:
    """What a server started here with --config FILE (and no flags) would use."""
    from s3free.config import ConfigError, load

    try:
        config = load(config_file, {})
    except ConfigError as exc:
        click.echo(f"s3free admin config show: {exc}", err=True)
        sys.exit(2)
    for warning in config.warnings:
        click.echo(f"s3free admin config show: warning: {warning}", err=True)
    return {
        "settings": config.describe(),
        "pending": {},
        "file": config_file,
        "reloads": 0,
        "ec_in_force": _ec_in_force(config),
    }


def _ec_in_force(config) -> dict[str, str]:
    """The code a server would use: the one formatted on the disks, else the setting, else
    the default for the disk count (what `ec: -` alone does not say)."""
    from pathlib import Path

    from s3free.format.diskformat import DiskFormat
    from s3free.format.errors import FormatError
    from s3free.storage.diskset import default_ec
    from s3free.storage.layout import FORMAT_FILE

    for path in config.disk_paths:
        try:
            fmt = DiskFormat.decode((Path(path) / FORMAT_FILE).read_bytes())
        except (OSError, FormatError):
            continue
        return {"value": f"{fmt.k}+{fmt.m}", "note": "formatted on the disks"}
    if config.ec:
        return {"value": config.ec, "note": ""}
    k, m = default_ec(len(config.disk_paths))
    return {"value": f"{k}+{m}", "note": f"default for {len(config.disk_paths)} disks"}


def render(doc: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(doc, indent=2, sort_keys=True)
    rows = [("KEY", "VALUE", "SOURCE", "ON SIGHUP")]
    in_force = doc.get("ec_in_force") or {}
    for s in doc["settings"]:
        value = s["value"]
        if s["key"] == "ec" and in_force.get("value"):
            note = in_force.get("note")
            value = f"{in_force['value']} ({note})" if note else in_force["value"]
        if isinstance(value, list) and len(value) > 1:  # one disk per line, not 170 columns
            rows.append((s["key"], str(value[0]), s["source"], s["reload"]))
            rows += [("", str(item), "", "") for item in value[1:]]
            continue
        rows.append((s["key"], _fmt(value), s["source"], s["reload"]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows
    ]
    if doc.get("file"):
        lines.append(f"file: {doc['file']}")
    for key, value in sorted((doc.get("pending") or {}).items()):
        lines.append(f"pending restart: {key} = {_fmt(value)} (changed in the file, not applied)")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)
