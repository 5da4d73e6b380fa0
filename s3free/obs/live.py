"""Settings that may change while the server runs, shared on the aiohttp app.

`LiveSettings` is stored on the app under `LIVE` by the server (s3free/reload.py `install`)
and updated in place by a SIGHUP reload, so readers always see the current value: the admin
API reads `config` (the effective configuration, for `s3free admin config show`) and
`pending` (changed keys that wait for a restart). The log level and the access log switch
live in s3free/obs/logs.py (`set_level`, `set_access_log`, called by the reload);
`log_level` and `access_log` here record what was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from s3free.config import Config


@dataclass
class LiveSettings:
    config: Config
    access_log: bool = True
    log_level: str = "info"
    # key -> value from the last reload that the running server does not apply (needs a
    # restart); secrets are masked here already.
    pending: dict[str, Any] = field(default_factory=dict)
    reloads: int = 0  # successful reloads since start

    @classmethod
    def of(cls, config: Config) -> LiveSettings:
        return cls(config, access_log=config.access_log, log_level=config.log_level)


LIVE = web.AppKey("live", LiveSettings)
