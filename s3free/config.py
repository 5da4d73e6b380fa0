"""One typed configuration object for the server, from flags, environment and a YAML file.

Precedence: flag > environment (S3FREE_<KEY>, upper case) > file (--config) > default.
Unknown keys in the file are an error, and every value is checked with a message that names
the key, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

DEFAULT_DATA_DIR = "s3free-data"
DEFAULT_DISKS = 4  # the embedded default: four directories, RS(2,2)


class ConfigError(ValueError):
    """A setting that is missing, unknown or out of range; the message says which and why."""


@dataclass
class Config:
    data_dir: str = DEFAULT_DATA_DIR
    disks: list[str] = field(default_factory=list)
    ec: str | None = None
    listen: str = "127.0.0.1:9000"
    meta_dir: str | None = None
    region: str = "us-east-1"
    domain: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    block_size: int | None = None
    log_level: str = "info"
    disk_probe_s: float = 5.0  # how often every disk's health is probed
    scrub_rate_mb_s: float = 8.0  # scrub and repair pace, MB verified per second (0: no cap)
    scrub_files_per_s: float = 200.0  # ...and shard files opened per second (0: no cap)
    scrub_interval_s: float = 7 * 86400.0  # a full scrub pass this often (0: only on demand)
    orphan_grace_s: float = 3600.0  # unreferenced files younger than this are never collected
    log_format: str = "text"  # text or json (one JSON object per line)
    access_log: bool = True  # one line per S3 request (method, path, status, bytes, time)
    otlp_endpoint: str | None = None  # OTLP/HTTP traces endpoint; tracing is off when unset
    trace_sample_ratio: float = 1.0  # fraction of requests traced when tracing is on
    metrics_token: str | None = None  # when set, /metrics needs "Authorization: Bearer TOKEN"
    requests_max: int = 0  # S3 requests handled at once; more get 503 SlowDown (0: no limit)

    # -- derived -------------------------------------------------------------------------

    @property
    def disk_paths(self) -> list[Path]:
        if self.disks:
            return [Path(d) for d in self.disks]
        return [Path(self.data_dir) / f"disk{i}" for i in range(1, DEFAULT_DISKS + 1)]

    @property
    def meta_path(self) -> Path:
        return Path(self.meta_dir) if self.meta_dir else Path(self.data_dir) / "meta"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    @property
    def k_m(self) -> tuple[int, int] | None:
        if self.ec is None:
            return None
        k, m = self.ec.split("+")
        return int(k), int(m)

    def validate(self) -> None:
        if self.ec is not None and not re.fullmatch(r"\d{1,3}\+\d{1,3}", self.ec):
            raise ConfigError(f"ec: {self.ec!r} is not K+M (for example 6+3)")
        if self.ec is not None:
            k, m = self.k_m  # type: ignore[misc]
            if k < 1 or m < 1:
                raise ConfigError(f"ec: {self.ec!r} must have K >= 1 and M >= 1")
        match = re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[^:\s]+):(\d{1,5})", self.listen)
        if not match or not 0 <= int(match.group(2)) < 65536:
            raise ConfigError(
                f"listen: {self.listen!r} is not HOST:PORT (for example 127.0.0.1:9000)"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key: give both or neither")
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value and not Path(value).is_file():
                raise ConfigError(f"{name}: {value!r} is not a readable file")
        if self.domain is not None and not re.fullmatch(r"[A-Za-z0-9.-]+", self.domain):
            raise ConfigError(f"domain: {self.domain!r} is not a host name")
        if not re.fullmatch(r"[a-z0-9-]{1,32}", self.region):
            raise ConfigError(f"region: {self.region!r} is not a region name like us-east-1")
        if self.block_size is not None and not 4096 <= self.block_size <= 64 * 1024 * 1024:
            raise ConfigError(f"block_size: {self.block_size} must be 4096..67108864 bytes")
        for name, (low, high, unit) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"{name}: {value} must be {low:g}..{high:g} {unit}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format: {self.log_format!r} must be text or json")
        if self.otlp_endpoint is not None and not re.fullmatch(
            r"https?://[^\s/]+(/\S*)?", self.otlp_endpoint
        ):
            raise ConfigError(
                f"otlp_endpoint: {self.otlp_endpoint!r} is not an http(s):// URL "
                "(for example http://127.0.0.1:4318)"
            )
        if not 0 <= self.requests_max <= 1_000_000:
            raise ConfigError(f"requests_max: {self.requests_max} must be 0..1000000 (0: no limit)")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"log_level: {self.log_level!r} must be debug, info, warning or error"
            )


_KEYS = {f.name for f in fields(Config)}
# Numeric settings: allowed range and unit, for validation and messages.
_FLOAT_RANGES = {
    "disk_probe_s": (0.01, 3600, "seconds"),
    "scrub_rate_mb_s": (0, 100_000, "MB/s"),
    "scrub_files_per_s": (0, 1_000_000, "files/s"),
    "scrub_interval_s": (0, 365 * 86400, "seconds"),
    "orphan_grace_s": (60, 365 * 86400, "seconds"),
    "trace_sample_ratio": (0, 1, "(a fraction)"),
}
_INT_KEYS = {"block_size": "bytes", "requests_max": "requests"}
_BOOL_KEYS = {"access_log"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, value: Any) -> Any:
    if name == "disks":
        if isinstance(value, str):
            return [p for p in value.split(",") if p]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"disks: must be a list of paths, got {value!r}")
        return list(value)
    if name in _INT_KEYS:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: {value!r} is not a whole number of {_INT_KEYS[name]}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name}: {value!r} is not a whole number of {_INT_KEYS[name]}"
            ) from None
    if name in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name}: {value!r} must be true or false")
    if name in _FLOAT_RANGES:
        try:
            return float(value)
        except (TypeError, ValueError):
            unit = _FLOAT_RANGES[name][2]
            raise ConfigError(f"{name}: {value!r} is not a number ({unit})") from None
    if value is not None and not isinstance(value, str):
        if name == "ec" and isinstance(value, int | float):
            raise ConfigError(f'ec: write it as a quoted string, e.g. "6+3" (got {value!r})')
        value = str(value)
    return value


def load(file: str | None, flags: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    """Merge default < file < environment < flags (flags that are None are not given)."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    if file:
        try:
            raw = yaml.safe_load(Path(file).read_text())
        except OSError as exc:
            raise ConfigError(f"--config {file}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {file}: not valid YAML: {exc}") from None
        raw = raw or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"--config {file}: the top level must be a mapping of settings")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ConfigError(
                f"--config {file}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KEYS))}"
            )
        merged.update({k: _coerce(k, v) for k, v in raw.items()})
    for name in _KEYS:
        value = env.get(f"S3FREE_{name.upper()}")
        if value is not None and value != "":
            merged[name] = _coerce(name, value)
    for name, value in flags.items():
        if value is not None and value != () and value != []:
            merged[name] = _coerce(name, list(value) if isinstance(value, tuple) else value)
    config = Config(**merged)
    config.validate()
    return config
