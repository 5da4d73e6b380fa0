"""A real `s3free server` process on 127.0.0.1 for the scenarios that kill it, and a boto3
client for it (no retries: every error is seen)."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from s3free.bench.spawn import spawn_server

ACCESS_KEY = "CHAOSROOTACCESSKEY01"
SECRET_KEY = "chaos-root-secret-key-0123456789abcdef"


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    endpoint: str
    output: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, exactly what a power cut does to the process."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
            ),
        )


def disk_args(root: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        out += ["--disk", str(root / f"disk{i}")]
    return out


def start(
    root: Path,
    disks: int,
    ec: str,
    block_size: int,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    fd_limit: int | None = None,
) -> ServerProcess:
    """`env`: more settings; `fd_limit`: the server's RLIMIT_NOFILE, soft and hard."""
    args = [
        "--data-dir", str(root), *disk_args(root, disks), "--ec", ec,
        "--listen", "127.0.0.1:0", "--log-level", "warning",
    ]  # fmt: skip
    settings = {
        "S3FREE_ACCESS_KEY": ACCESS_KEY,
        "S3FREE_SECRET_KEY": SECRET_KEY,
        "S3FREE_BLOCK_SIZE": str(block_size),
        **(env or {}),
    }
    preexec = None
    if fd_limit is not None:

        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    proc, endpoint, output = spawn_server(args, settings, timeout, preexec_fn=preexec)
    return ServerProcess(proc, endpoint, output)
