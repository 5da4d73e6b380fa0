"""SIGHUP: read the configuration again and apply to the running server what can change live.

The file and the environment are read again; flags given at start stay as they were. A
configuration that does not validate is refused as a whole (logged, the running one kept).
Keys in `config.LIVE_KEYS` are applied at once; a change to any other key is logged as
needing a restart and kept in `LiveSettings.pending` (shown by `admin config show`), while the
running value stays what `admin config show` reports. One log line says what changed:

    reloaded: scrub_rate_mb_s 8 -> 20, log_level info -> debug
    needs a restart (not applied): listen 127.0.0.1:9000 -> 127.0.0.1:9001

Secrets are never logged: a changed secret shows as "(changed)".
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from s3free import config as configuration
from s3free.appkeys import LIMITER
from s3free.config import KEYS, LIVE_KEYS, SECRETS, Config, ConfigError
from s3free.heal import HealService
from s3free.obs import logs
from s3free.obs.live import LIVE, LiveSettings
from s3free.s3 import limits

log = logging.getLogger(__name__)


def install(app: web.Application, config: Config) -> LiveSettings:
    """Put the live settings and the request limit on the app (before it starts)."""
    live = LiveSettings.of(config)
    app[LIVE] = live
    limits.install(app, config.requests_max)
    return live


@dataclass
class Reloaded:
    """What one reload did: applied and restart-needing changes as key -> (old, new)."""

    applied: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    restart: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    error: str | None = None


class Reloader:
    def __init__(
        self,
        app: web.Application,
        heal: HealService | None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.heal = heal
        self.env = env  # None: os.environ

    def reload(self) -> Reloaded:
        """Load, validate, apply, log. Never raises: a bad configuration is logged."""
        live = self.app[LIVE]
        old = live.config
        try:
            new = configuration.reload(old, self.env)
        except ConfigError as exc:
            log.error("reload refused, the running configuration is kept: %s", exc)
            return Reloaded(error=str(exc))
        for warning in new.warnings:
            log.warning("%s", warning)
        done = Reloaded()
        for name in KEYS:
            before, after = getattr(old, name), getattr(new, name)
            if before != after:
                (done.applied if name in LIVE_KEYS else done.restart)[name] = (before, after)
        try:
            self._apply(live, new, done.applied)
        except Exception as exc:  # not expected: the values were validated
            log.exception("reload failed while applying; some settings may be applied")
            done.error = str(exc)
        effective = copy.copy(old)
        effective.sources = dict(old.sources)
        for name in KEYS:
            if name not in done.restart:  # live, or unchanged: take the new value and source
                setattr(effective, name, getattr(new, name))
                effective.sources[name] = new.sources[name]
        effective.warnings = list(new.warnings)
        live.config = effective
        live.pending = {k: configuration.shown(k, new_v) for k, (_, new_v) in done.restart.items()}
        live.reloads += 1
        # At warning level: a configuration change must be findable whatever the log level.
        log.warning("%s", describe(done))
        return done

    def _apply(self, live: LiveSettings, new: Config, changed: dict[str, tuple[Any, Any]]) -> None:
        if "log_level" in changed:
            logs.set_level(new.log_level)
            live.log_level = new.log_level
        if "access_log" in changed:
            logs.set_access_log(new.access_log)
            live.access_log = new.access_log
        if "requests_max" in changed:
            self.app[LIMITER].limit = new.requests_max
        if self.heal is None:
            return
        if {"scrub_rate_mb_s", "scrub_files_per_s"} & changed.keys():
            self.heal.set_rate(new.scrub_rate_mb_s, new.scrub_files_per_s)
        if "scrub_interval_s" in changed:
            self.heal.set_interval(new.scrub_interval_s)
        if "orphan_grace_s" in changed:
            self.heal.config.orphan_grace_s = new.orphan_grace_s  # read by each pass


def describe(done: Reloaded) -> str:
    """The one log line of a reload."""
    line = "reloaded: " + (_changes(done.applied) or "nothing changed")
    if done.restart:
        line += f"; needs a restart (not applied): {_changes(done.restart)}"
    return line


def _changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(
        f"{k} (changed)" if k in SECRETS else f"{k} {_fmt(a)} -> {_fmt(b)}"
        for k, (a, b) in changes.items()
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(value)
    return "(unset)" if value is None else str(value)
