"""Running the `s3free` command as a user does, for the CLI tests: a clean environment (no
S3FREE_/AWS_ settings or proxies leaking in from the machine) and one runner per group."""

from __future__ import annotations

import os
import subprocess
import sys


def base_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3FREE_", "AWS_")) and "PROXY" not in k.upper()
    }


def root_env(srv) -> dict[str, str]:
    """base_env plus the server's root credentials, as an operator exports them."""
    return {**base_env(), "S3FREE_ACCESS_KEY": srv.access_key, "S3FREE_SECRET_KEY": srv.secret_key}


def s3free_cli(
    group: str, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    """`s3free GROUP ARGS...` as a subprocess, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "s3free.cli.main", group, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def disk(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return s3free_cli("disk", *args, env=env, timeout=timeout)


def admin(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return s3free_cli("admin", *args, env=env, timeout=timeout)
