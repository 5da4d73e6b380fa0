"""Start a real `s3free server` process on a loopback port for tests, and stop it."""

from __future__ import annotations

import resource
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from s3free.bench.spawn import spawn_server

ACCESS_KEY = "S3FREETESTROOTKEY01"
SECRET_KEY = "s3free-test-root-secret-key-0123456789"


@dataclass
class Server:
    proc: subprocess.Popen
    endpoint: str
    data_dir: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    output: list[str] = field(default_factory=list)
    ca_file: str | None = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    @property
    def log(self) -> str:
        return "".join(self.output)


def make_cert(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


def start_server(
    data_dir: Path,
    *args: str,
    tls: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    fd_limit: int | None = None,
) -> Server:
    """A server on a free loopback port; `fd_limit`: its RLIMIT_NOFILE, soft and hard (so it
    cannot raise it), set in the child before it starts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["--data-dir", str(data_dir), "--listen", "127.0.0.1:0", *args]
    ca = None
    if tls:
        cert, key = make_cert(data_dir)
        cmd += ["--tls-cert", cert, "--tls-key", key]
        ca = cert
    full_env = {"S3FREE_ACCESS_KEY": ACCESS_KEY, "S3FREE_SECRET_KEY": SECRET_KEY, **(env or {})}
    preexec = None
    if fd_limit is not None:

        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    proc, endpoint, output = spawn_server(cmd, full_env, timeout, preexec_fn=preexec)
    return Server(proc, endpoint, data_dir, output=output, ca_file=ca)


def make_client(srv, **config):
    """A boto3 S3 client for a server (its endpoint, root keys and CA), without retries so a
    failure shows as one."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=srv.access_key,
        aws_secret_access_key=srv.secret_key,
        region_name="us-east-1",
        verify=srv.ca_file if srv.ca_file else None,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )
