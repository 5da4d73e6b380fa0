"""Reed-Solomon RS(k, m) over GF(2^8), systematic, as zfec computes it (codec id 1).

A block of L bytes is zero-padded to k * s bytes, s = ceil(L / k), and cut into k data shards
of s bytes (shard i = bytes i*s .. (i+1)*s); zfec adds m parity shards of s bytes. Any k of the
k + m shards give the block back. Pure: no I/O; zfec releases the GIL while it computes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Mapping

import zfec


def _load_isal():
    """ISA-L (Debian/Ubuntu: libisal2) computes the same GF(2^8) products as zfec with SIMD,
    ~10x faster; None when the library is not installed (or S3FREE_NO_ISAL is set)."""
    if os.environ.get("S3FREE_NO_ISAL"):
        return None
    try:
        lib = ctypes.CDLL("libisal.so.2")
    except OSError:
        name = ctypes.util.find_library("isal")
        if name is None:
            return None
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            return None
    lib.ec_init_tables.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
    lib.ec_init_tables.restype = None
    lib.ec_encode_data.argtypes = [ctypes.c_int] * 3 + [ctypes.c_char_p] + [ctypes.c_void_p] * 2
    lib.ec_encode_data.restype = None
    return lib


_ISAL = _load_isal()


class _IsalParity:
    """zfec's parity rows, multiplied out by ISA-L. The rows are read off zfec itself (the
    parity of unit vectors), so the output is byte-identical to zfec's by construction."""

    def __init__(self, encoder: zfec.Encoder, k: int, m: int) -> None:
        self.k, self.m = k, m
        coeff = bytearray(k * m)
        for i in range(k):
            unit = tuple(b"\x01" if j == i else b"\x00" for j in range(k))
            for p, shard in enumerate(encoder.encode(unit, tuple(range(k, k + m)))):
                coeff[p * k + i] = shard[0]
        self._tables = ctypes.create_string_buffer(32 * k * m)
        _ISAL.ec_init_tables(k, m, bytes(coeff), self._tables)

    def parity(self, padded: bytes, size: int) -> list[bytes]:
        base = ctypes.cast(ctypes.c_char_p(padded), ctypes.c_void_p).value
        assert base is not None  # a bytes object's buffer is never NULL
        data = (ctypes.c_void_p * self.k)(*(base + i * size for i in range(self.k)))
        out = bytearray(self.m * size)
        obase = ctypes.addressof(ctypes.c_char.from_buffer(out))
        coding = (ctypes.c_void_p * self.m)(*(obase + p * size for p in range(self.m)))
        _ISAL.ec_encode_data(size, self.k, self.m, self._tables, data, coding)
        view = memoryview(out)
        return [bytes(view[p * size : (p + 1) * size]) for p in range(self.m)]


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
        self._isal = _IsalParity(self._encoder, k, m) if _ISAL is not None else None

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
        if self._isal is not None:
            return [*data, *self._isal.parity(padded, size)]
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
