"""One typed configuration object for the server, from flags, environment and a YAML file.

Precedence: flag > environment (S3FREE_<KEY>, upper case) > file (--config) > default. The
object remembers where each value came from (`sources`) so `s3free admin config show` can say.
Unknown keys in the file are an error, and every value is checked with a message that names
the key, the value and what is allowed. Secrets (`SECRETS`) are never printed or logged: not in
messages, not in `repr`, not by `describe`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

DEFAULT_DATA_DIR = "s3free-data"
DEFAULT_DISKS = 4  # the embedded default: four directories, RS(2,2)
_NOT_A_KEY = {"setting": False}  # metadata of Config fields that are not settings


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
    access_log: bool = False  # one line per S3 request (method, path, status, bytes, time)
    otlp_endpoint: str | None = None  # OTLP/HTTP traces endpoint; tracing is off when unset
    trace_sample_ratio: float = 1.0  # fraction of requests traced when tracing is on
    metrics_token: str | None = field(default=None, repr=False)  # /metrics wants this Bearer
    requests_max: int = 0  # S3 requests handled at once; more get 503 SlowDown (0: no limit)
    connections_max: int = 0  # open client connections (0: derived from the fd limit)
    header_timeout_s: float = 30.0  # a request head must be complete this long after its start
    idle_timeout_s: float = 60.0  # a connection with no request in progress is closed after
    stall_timeout_s: float = 120.0  # a client reading/sending nothing of a body is cut after
    io_threads: int = 32  # the engine's thread pool (hashing, coding, file I/O)
    access_key: str | None = None  # root user; generated beside meta_dir when both are unset
    secret_key: str | None = field(default=None, repr=False)
    # -- not settings: where each value came from, and how to load the same way again -------
    sources: dict[str, str] = field(default_factory=dict, repr=False, metadata=_NOT_A_KEY)
    file: str | None = field(default=None, repr=False, metadata=_NOT_A_KEY)
    flags: dict[str, Any] = field(default_factory=dict, repr=False, metadata=_NOT_A_KEY)
    warnings: list[str] = field(default_factory=list, repr=False, metadata=_NOT_A_KEY)

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

    def settings(self) -> dict[str, Any]:
        """Every setting's effective value (secrets included: never print this whole)."""
        return {name: getattr(self, name) for name in KEYS}

    def describe(self) -> list[dict[str, Any]]:
        """Every setting, its value (secrets masked), where it came from, and whether a
        SIGHUP reload applies it: what `admin config show` prints."""
        return [
            {
                "key": name,
                "value": shown(name, getattr(self, name)),
                "source": self.sources.get(name, "default"),
                "reload": "live" if name in LIVE_KEYS else "restart",
                "secret": name in SECRETS,
            }
            for name in KEYS
        ]

    def validate(self) -> None:
        for name in ("data_dir", "meta_dir", "domain", "tls_cert", "tls_key", "otlp_endpoint"):
            if getattr(self, name) == "":
                raise ConfigError(f"{name}: must not be empty (leave it out for the default)")
        if any(not d for d in self.disks):
            raise ConfigError(f"disks: {self.disks!r} has an empty path")
        if self.disks and len(self.disks) < 3:
            raise ConfigError(
                f"disks: {len(self.disks)} given, at least 3 are needed (losing one must lose "
                "nothing); on one physical disk give three or more directories"
            )
        if self.ec is not None and not re.fullmatch(r"\d{1,3}\+\d{1,3}", self.ec):
            raise ConfigError(f"ec: {self.ec!r} is not K+M (for example 6+3)")
        if self.ec is not None:
            k, m = self.k_m  # type: ignore[misc]
            if k < 1 or m < 1:
                raise ConfigError(f"ec: {self.ec!r} must have K >= 1 and M >= 1")
            if k + m > len(self.disk_paths):
                raise ConfigError(
                    f"ec: {self.ec!r} needs {k + m} disks, disks gives {len(self.disk_paths)}"
                )
        self._check_directories()
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
        if not 0 <= self.connections_max <= 1_000_000:
            raise ConfigError(
                f"connections_max: {self.connections_max} must be 0..1000000 "
                "(0: derived from the file descriptor limit)"
            )
        if not 1 <= self.io_threads <= 1024:
            raise ConfigError(f"io_threads: {self.io_threads} must be 1..1024 threads")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(
                f"log_level: {self.log_level!r} must be debug, info, warning or error"
            )
        # Secrets: the messages never show the value.
        if self.metrics_token is not None and not re.fullmatch(
            r"[\x21-\x7e]{1,1024}", self.metrics_token
        ):
            raise ConfigError(
                "metrics_token: (value hidden) must be 1-1024 visible ASCII characters, no spaces"
            )
        if bool(self.access_key) != bool(self.secret_key):
            raise ConfigError("access_key and secret_key: give both or neither")
        if self.access_key and not re.fullmatch(r"[A-Za-z0-9_.~+=-]{3,128}", self.access_key):
            raise ConfigError(
                f"access_key: {self.access_key!r} must be 3-128 characters of A-Z a-z 0-9 _.~+=-"
            )
        if self.secret_key and not 8 <= len(self.secret_key) <= 128:
            raise ConfigError("secret_key: (value hidden) must be 8-128 characters")

    def _check_directories(self) -> None:
        """Refuse, before anything is written, a store path that is (or lies under) a file:
        opening would fail half-way with a bare "File exists" or "Not a directory"."""
        checks: list[tuple[str, Path]] = []
        if (
            not self.disks
            or not self.meta_dir
            or self.sources.get("data_dir", "default") != "default"
        ):
            checks.append(("data_dir", Path(self.data_dir)))
        checks += [("disks", path) for path in self.disk_paths if self.disks]
        if self.meta_dir:
            checks.append(("meta_dir", Path(self.meta_dir)))
        for name, path in checks:
            problem = _not_a_directory(path)
            if problem:
                raise ConfigError(
                    f"{self._named(name)} {path} {problem}: give a directory (it is created "
                    "if missing)"
                )

    def _named(self, name: str) -> str:
        """How the operator gave a setting: --flag, S3FREE_VAR or the file's key."""
        source = self.sources.get(name, "default")
        if source == "flag":
            return "--disk" if name == "disks" else f"--{name.replace('_', '-')}"
        if source == "env":
            return f"S3FREE_{name.upper()}"
        return f"{name}:"


def _not_a_directory(path: Path) -> str | None:
    """Why `path` cannot be (or become) a directory, or None."""
    if path.exists() or path.is_symlink():
        return None if path.is_dir() else "is a file, not a directory"
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else f"is under {parent}, which is a file"
    return None


KEYS = tuple(f.name for f in fields(Config) if f.metadata.get("setting", True))
_KEYS = set(KEYS)
# Never printed, logged or given as a flag (a flag shows in `ps`): environment or file only.
SECRETS = frozenset({"metrics_token", "secret_key"})
# What a SIGHUP reload applies to the running server (s3free/reload.py); the rest needs a restart.
LIVE_KEYS = frozenset(
    {
        "log_level",
        "access_log",
        "requests_max",
        "scrub_rate_mb_s",
        "scrub_files_per_s",
        "scrub_interval_s",
        "orphan_grace_s",
    }
)
# S3FREE_* variables that are read elsewhere and are not settings (not warned about).
OTHER_ENV = frozenset({"S3FREE_NO_ISAL"})
# Numeric settings: allowed range and unit, for validation and messages.
_FLOAT_RANGES = {
    "disk_probe_s": (0.01, 3600, "seconds"),
    "scrub_rate_mb_s": (0, 100_000, "MB/s"),
    "scrub_files_per_s": (0, 1_000_000, "files/s"),
    "scrub_interval_s": (0, 365 * 86400, "seconds"),
    "orphan_grace_s": (60, 365 * 86400, "seconds"),
    "trace_sample_ratio": (0, 1, "(a fraction)"),
    "header_timeout_s": (0.1, 3600, "seconds"),
    "idle_timeout_s": (0.1, 86400, "seconds"),
    "stall_timeout_s": (0.1, 86400, "seconds"),
}
_INT_KEYS = {
    "block_size": "bytes",
    "requests_max": "requests",
    "connections_max": "connections",
    "io_threads": "threads",
}
_BOOL_KEYS = {"access_log"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
MASK = "********"


def shown(name: str, value: Any) -> Any:
    """The value as it may be printed: a secret that is set becomes MASK."""
    if name in SECRETS and value is not None:
        return MASK
    return value


def _coerce(name: str, value: Any) -> Any:
    said = "(value hidden)" if name in SECRETS else repr(value)
    if name == "disks":
        if isinstance(value, str):
            return [p for p in value.split(",") if p]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"disks: must be a list of paths, got {value!r}")
        return list(value)
    if name in _INT_KEYS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{name}: {value!r} is not a whole number of {_INT_KEYS[name]}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(
                f"{name}: {value!r} is not a whole number of {_INT_KEYS[name]}"
            ) from None
    if name in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str | int) else ""
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name}: {value!r} must be true or false")
    if name in _FLOAT_RANGES:
        unit = _FLOAT_RANGES[name][2]
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{name}: {value!r} is not a number ({unit})")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a number ({unit})") from None
    if value is not None and not isinstance(value, str):
        if name == "ec" and isinstance(value, int | float):
            raise ConfigError(f'ec: write it as a quoted string, e.g. "6+3" (got {value!r})')
        if isinstance(value, list | dict | bool):
            raise ConfigError(f"{name}: {said} must be a single text value")
        value = str(value)
    return value


def _read_file(file: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(file).read_text())
    except OSError as exc:
        raise ConfigError(f"--config {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {file}: not valid YAML: {exc}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"--config {file}: the top level must be a mapping of settings")
    unknown = sorted(str(k) for k in set(raw) - _KEYS)
    if unknown:
        hints = [_hint(k) for k in unknown]
        raise ConfigError(
            f"--config {file}: unknown setting(s) {', '.join(unknown)}"
            f"{''.join(h for h in hints if h)}; known: {', '.join(KEYS)}"
        )
    return raw


def _hint(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), KEYS, n=1)
    return f" ({name}: did you mean {close[0]}?)" if close else ""


def load(
    file: str | None, flags: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> Config:
    """Merge default < file < environment < flags (flags that are None are not given).

    Unknown keys in the file are an error: the file is the server's own, so a typo there is
    a mistake to stop on. Unknown S3FREE_* environment variables only warn (`warnings`): the
    environment is shared with the CLI and other tools, and a variable meant for something
    else must not stop a server."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    if file:
        raw = _read_file(file)
        for k, v in raw.items():
            merged[k] = _coerce(k, v)
            sources[k] = "file"
        if SECRETS & {k for k, v in raw.items() if v is not None}:
            try:
                if Path(file).stat().st_mode & 0o077:
                    warnings.append(
                        f"--config {file} holds a secret and other users may read it "
                        f"(chmod 600 {file})"
                    )
            except OSError:
                pass
    for name in KEYS:
        value = env.get(f"S3FREE_{name.upper()}")
        if value is not None and value != "":
            merged[name] = _coerce(name, value)
            sources[name] = "env"
    for var in sorted(env):
        name = var[len("S3FREE_") :].lower()
        if var.startswith("S3FREE_") and var not in OTHER_ENV and name not in _KEYS:
            warnings.append(f"environment: {var} is not a setting, ignored{_hint(name)}")
    given: dict[str, Any] = {}
    for name, value in flags.items():
        if value is not None and value != () and value != []:
            if name not in _KEYS:
                raise ConfigError(f"--{name.replace('_', '-')}: not a setting")
            given[name] = value
            merged[name] = _coerce(name, list(value) if isinstance(value, tuple) else value)
            sources[name] = "flag"
    config = Config(**merged)
    config.sources = {name: sources.get(name, "default") for name in KEYS}  # before validate
    config.file, config.flags, config.warnings = file, given, warnings
    config.validate()
    return config


def reload(config: Config, env: Mapping[str, str] | None = None) -> Config:
    """Load again the way `config` was loaded: the same file and flags, the environment now."""
    return load(config.file, config.flags, env)
