"""A temporary `s3free server` on 127.0.0.1 and temporary disk directories, for benchmarks
that were given no endpoint (`s3free bench s3`, tools/bench_s3.py): started as a user starts
it, measured (peak RSS), and removed with everything it wrote."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from s3free.bench.spawn import spawn_server


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), MiB; None once it is gone or unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(
    root: Path,
    access: str,
    secret: str,
    settings: dict[str, str] | None = None,
    *,
    k: int = 6,
    m: int = 3,
    disks: int | None = None,
) -> tuple[subprocess.Popen, str]:
    """`s3free server` on 127.0.0.1 (a free port), RS(k,m) on root/disk1..N (N = disks or
    k + m); settings are extra environment variables (S3FREE_<SETTING>). Raises RuntimeError
    with the server's output when it does not start."""
    n = disks if disks is not None else k + m
    disk_args = [f"--disk={root / f'disk{i}'}" for i in range(1, n + 1)]
    args = ["--data-dir", str(root), "--listen", "127.0.0.1:0", "--ec", f"{k}+{m}",
            "--log-level", "warning", *disk_args]  # fmt: skip
    env = {**(settings or {}), "S3FREE_ACCESS_KEY": access, "S3FREE_SECRET_KEY": secret}
    proc, endpoint, _output = spawn_server(args, env)
    return proc, endpoint


def stop_server(proc: subprocess.Popen, timeout: float = 60) -> int:
    """SIGTERM, then SIGKILL if it has not exited within timeout seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


class TempServer:
    """`with TempServer(...) as srv:` a server on fresh temp disks under `parent` (the system
    temp dir by default), with random root keys; on exit it is stopped and its directory
    removed. `peak_rss_mib()` reads the server's peak RSS while it runs."""

    def __init__(
        self, parent: str | None = None, *, k: int = 6, m: int = 3, disks: int | None = None
    ) -> None:
        self.parent, self.k, self.m, self.disks = parent, k, m, disks if disks else k + m
        self.access = "BENCH" + secrets.token_hex(6).upper()
        self.secret = secrets.token_urlsafe(24)
        self.root: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def __enter__(self) -> TempServer:
        self.root = Path(tempfile.mkdtemp(prefix="s3free-bench-s3-", dir=self.parent))
        try:
            self.proc, self.endpoint = start_server(
                self.root, self.access, self.secret, k=self.k, m=self.m, disks=self.disks
            )
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def peak_rss_mib(self) -> float | None:
        return peak_rss_mib(self.proc.pid) if self.proc else None

    def __exit__(self, *exc: object) -> None:
        try:
            if self.proc is not None:
                stop_server(self.proc)
        finally:
            if self.root is not None:
                shutil.rmtree(self.root, ignore_errors=True)
