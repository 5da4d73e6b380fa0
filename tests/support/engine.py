"""Shared helpers for engine tests: real disks in temp dirs, streams, and a store opener."""

from __future__ import annotations

import asyncio
import functools
import glob
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from s3free.engine import ObjectStore
from s3free.format.manifest import Manifest
from s3free.storage.layout import inline_path

SMALL_BLOCK = 64 * 1024  # multi-block objects stay small and quick in tests

P = ParamSpec("P")
T = TypeVar("T")


async def stream_of(data: bytes, chunk: int = 50_000) -> AsyncIterator[bytes]:
    """The bytes as an async stream in uneven chunks, as a socket would deliver them."""
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


def disk_paths(root: Path, n: int) -> list[Path]:
    return [root / f"disk{i}" for i in range(n)]


async def open_store(
    root: Path,
    n: int = 9,
    *,
    disks: Sequence[object] | None = None,
    k: int | None = None,
    m: int | None = None,
    block_size: int | None = SMALL_BLOCK,
    min_part_size: int = 1,
) -> ObjectStore:
    return await ObjectStore.open(
        list(disks) if disks is not None else disk_paths(root, n),
        meta_dir=root / "meta",
        k=k,
        m=m,
        block_size=block_size,
        min_part_size=min_part_size,
    )


def shard_files(root: Path, pattern: str = "part.*") -> list[str]:
    """Every committed shard file under root's disks (objects, not multipart staging)."""
    return sorted(glob.glob(os.path.join(root, "disk*", "objects", "*", "*", "*", "*", pattern)))


def run(coro):
    """A coroutine on a fresh event loop, from sync code: a hypothesis example (each on its own
    loop, so nothing leaks between examples) or a helper a sync test calls."""
    return asyncio.run(coro)


def inline_file(store: ObjectStore, manifest: Manifest, shard: int) -> Path:
    """Where shard `shard` of an inline version is: its disk's one file for the version."""
    slot = store.diskset.slot_for(manifest.placement[shard])
    vhex = manifest.version_hex
    return Path(slot.disk.root) / inline_path(manifest.object_id, vhex)


async def with_store(
    root: Path, body: Callable[[ObjectStore], Awaitable[None]], *, bucket: str, **options: Any
) -> None:
    """Open a store over root's disks, make `bucket`, run body(store), close the store: for a
    scenario that must close it part way (the `store` fixture closes only after the test)."""
    store = await open_store(root, **options)
    try:
        await store.create_bucket(bucket)
        await body(store)
    finally:
        await store.close()


def bounded(seconds: float) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """An async test that fails instead of hanging when it takes longer than `seconds` (a
    deadlock guard with a generous bound, not a timing assertion)."""

    def wrap(test: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(test)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await asyncio.wait_for(test(*args, **kwargs), seconds)

        return guarded

    return wrap
