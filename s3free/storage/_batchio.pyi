"""Types of the optional C helper built from _batchio.c (see its method table)."""

from collections.abc import Sequence

def read_heads(paths: Sequence[bytes], limit: int, /) -> list[bytes | int]: ...
def read_heads_cached(paths: Sequence[bytes], limit: int, /) -> list[bytes | int]: ...
def create_files(
    root_lengths: Sequence[int],
    paths: Sequence[bytes],
    chunks: Sequence[Sequence[bytes | memoryview]],
    marker: bytes,
    /,
) -> list[int]: ...
