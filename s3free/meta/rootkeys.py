"""Generated root credentials, kept with the store rather than the working directory.

The file is `<meta dir>.credentials.json` (mode 0600): beside the index directory, like its
`.lock`, and not inside it, because `admin rebuild-index` swaps that directory whole and a
corrupt index is moved aside. Starting the same store from another directory finds the same
keys. Before this, the file was `<data dir>/credentials.json` (relative to the working
directory when no --data-dir was given); `find` still reads it there.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from pathlib import Path

SUFFIX = ".credentials.json"
LEGACY_NAME = "credentials.json"


def path_for(meta_dir: Path) -> Path:
    """Where a store whose index is `meta_dir` keeps its generated root credentials."""
    return meta_dir.with_name(meta_dir.name + SUFFIX)


def read(path: Path) -> tuple[str, str] | None:
    """(access key, secret key) from `path`, or None when there is no such file."""
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"s3free: cannot read root credentials from {path}: {exc}") from None
    return stored["access_key"], stored["secret_key"]


def find(meta_dir: Path, data_dir: Path) -> tuple[tuple[str, str], Path] | None:
    """The stored pair and the file it came from: the store's own file, else the old
    `<data dir>/credentials.json`; None when neither exists."""
    for path in (path_for(meta_dir), data_dir / LEGACY_NAME):
        pair = read(path)
        if pair is not None:
            return pair, path
    return None


def generate() -> tuple[str, str]:
    alphabet = string.ascii_uppercase + string.digits
    return "S3F" + "".join(secrets.choice(alphabet) for _ in range(17)), secrets.token_urlsafe(30)


def save(path: Path, access_key: str, secret_key: str) -> None:
    """Write a new file (never over one), mode 0600, synced with its directory entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"access_key": access_key, "secret_key": secret_key}, f)
        f.flush()
        os.fsync(f.fileno())
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
