"""Suite-wide fixtures: hypothesis profiles, and a real store over real disk dirs in tmp_path.

Async tests are plain `async def test_...` (pytest-asyncio, auto mode: a fresh event loop per
test). A test that needs an engine takes `store`; `@pytest.mark.store(...)` (on the test, or as a
module's `pytestmark`) sets its options, the test's own marker winning over the module's.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from s3free.engine import ObjectStore
from tests.support.engine import SMALL_BLOCK, disk_paths, open_store

settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.register_profile("long", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

STORE_DEFAULTS: dict[str, Any] = {
    "n": 9,
    "k": None,
    "m": None,
    "block_size": SMALL_BLOCK,
    "min_part_size": 1,
    "bucket": None,
}


@pytest.fixture
def store_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `store` fixture's options: defaults, then module markers, then the test's own."""
    options = dict(STORE_DEFAULTS)
    for marker in reversed(list(request.node.iter_markers("store"))):
        unknown = set(marker.kwargs) - set(STORE_DEFAULTS)
        if marker.args or unknown:
            raise pytest.UsageError(
                f"pytest.mark.store takes keyword options {sorted(STORE_DEFAULTS)}; "
                f"got args {marker.args} and unknown options {sorted(unknown)}"
            )
        options.update(marker.kwargs)
    return options


@pytest.fixture
def disk_dirs(tmp_path: Path, store_options: dict[str, Any]) -> list[Path]:
    """The disk set: n disk directories under tmp_path (tmp_path/disk0 ...), made by the store."""
    return disk_paths(tmp_path, store_options["n"])


@pytest.fixture
async def store(
    tmp_path: Path, disk_dirs: list[Path], store_options: dict[str, Any]
) -> AsyncIterator[ObjectStore]:
    """A real ObjectStore over `disk_dirs` (index in tmp_path/meta), with the marker's bucket
    made when one is named; closed after the test."""
    opened = await open_store(
        tmp_path,
        disks=disk_dirs,
        k=store_options["k"],
        m=store_options["m"],
        block_size=store_options["block_size"],
        min_part_size=store_options["min_part_size"],
    )
    try:
        if store_options["bucket"] is not None:
            await opened.create_bucket(store_options["bucket"])
        yield opened
    finally:
        await opened.close()
