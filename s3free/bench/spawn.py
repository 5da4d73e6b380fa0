"""Start a real `s3free server` process and wait for its ready line: shared by the benchmarks,
the chaos suite and the tests, so every one of them starts the server the way a user does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

READY = re.compile(r"s3free ready: (https?://\S+) ")


def spawn_server(
    args: Sequence[str],
    env: Mapping[str, str],
    timeout: float = 60,
    cwd: str | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen, str, list[str]]:
    """Run `python -m s3free.cli.main server ARGS` with env added to this process's environment;
    return the process, the endpoint from its ready line, and a list that keeps collecting its
    output (stdout and stderr). Raises RuntimeError, with the output, if it exits or is not
    ready within timeout seconds (then it is killed). `preexec_fn` runs in the child before
    the server starts (e.g. to lower its file descriptor limit)."""
    cmd = [sys.executable, "-m", "s3free.cli.main", "server", *args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
        cwd=cwd,
        preexec_fn=preexec_fn,
    )
    output: list[str] = []
    found: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            match = READY.search(line)
            if match and not found:
                found.append(match.group(1))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found:
        if proc.poll() is not None:
            time.sleep(0.2)  # let the pump collect the last lines
            raise RuntimeError(f"s3free server exited ({proc.returncode}):\n{''.join(output)}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(10)
            raise RuntimeError(f"s3free server not ready in {timeout}s:\n{''.join(output)}")
        time.sleep(0.05)
    return proc, found[0], output
