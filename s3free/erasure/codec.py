"""Reed-Solomon RS(k, m) over GF(2^8), systematic, as zfec computes it (codec id 1).

A block of L bytes is zero-padded to k * s bytes, s = ceil(L / k), and cut into k data shards
of s bytes (shard i = bytes i*s .. (i+1)*s); zfec adds m parity shards of s bytes. Any k of the
k + m shards give the block back. Pure: no I/O; zfec releases the GIL while it computes.
"""

from __future__ import annotations

from collections.abc import Mapping

import zfec


class TooFewShards(ValueError):
    """Fewer than k distinct shards were given to decode."""


class ReedSolomon:
    def __init__(self, k: int, m: int) -> None:
        if not (k >= 1 and m >= 1 and k + m <= 256):
            raise ValueError(f"RS({k},{m}) is not supported: need k >= 1, m >= 1, k + m <= 256")
        self.k = k
        self.m = m
        self.n = k + m
        self._encoder = zfec.Encoder(k, self.n)
        self._decoder = zfec.Decoder(k, self.n)

    def shard_size(self, block_length: int) -> int:
        return -(-block_length // self.k)

    def encode(self, block: bytes | memoryview) -> list[bytes | memoryview]:
        """The k + m shards of one block, in shard index order. Data shards are views into
        the (padded) block, not copies."""
        size = self.shard_size(len(block))
        if size == 0:
            return [b""] * self.n
        padded = bytes(block) if len(block) == size * self.k else _pad(block, size * self.k)
        view = memoryview(padded)
        data = tuple(view[i * size : (i + 1) * size] for i in range(self.k))
        parity = self._encoder.encode(data, tuple(range(self.k, self.n)))
        return [*data, *parity]

    def decode(self, shards: Mapping[int, bytes | memoryview], block_length: int) -> bytes:
        """The block back from any k shards (index -> payload); extra shards are ignored."""
        size = self.shard_size(block_length)
        if size == 0:
            return b""
        chosen = sorted(i for i in shards if 0 <= i < self.n)[: self.k]
        if len(chosen) < self.k:
            raise TooFewShards(f"need {self.k} shards, have {len(chosen)}")
        for i in chosen:
            if len(shards[i]) != size:
                raise ValueError(f"shard {i} is {len(shards[i])} bytes, expected {size}")
        if chosen == list(range(self.k)):
            out = b"".join(shards[i] for i in chosen)
        else:
            data = self._decoder.decode(tuple(shards[i] for i in chosen), tuple(chosen))
            out = b"".join(data)
        return out[:block_length]


def _pad(block: bytes | memoryview, length: int) -> bytes:
    return bytes(block) + bytes(length - len(block))
