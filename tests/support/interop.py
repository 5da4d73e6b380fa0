"""What the real-client interop tests (tests/s3/test_interop_*.py: awscli, s3cmd, minio, rclone)
share: where a client's executable is, the "HTTPS in the fast set" parametrisation of the `srv`
fixture (tests/s3/conftest.py), plain urllib to the server, and file trees to sync."""

from __future__ import annotations

import shutil
import ssl
import sys
import urllib.request
from pathlib import Path

import pytest

# Tests whose requests do not depend on the transport run over HTTPS in the fast set (the more
# demanding one: aws-chunked bodies with trailing checksums), over HTTP only in the slow set.
https_fast = pytest.mark.parametrize(
    "srv", [pytest.param("http", marks=pytest.mark.slow), "https"], indirect=True
)


def find_executable(name: str) -> str | None:
    """This venv's copy of a pip-installed client first, then one on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)


def urlopen(srv, request, timeout: float = 60):
    """urllib straight to the server (no proxy from the environment)."""
    ctx = ssl.create_default_context(cafile=srv.ca_file) if srv.ca_file else None
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    return opener.open(request, timeout=timeout)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}
