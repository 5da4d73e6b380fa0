"""Merkle tree hash over block hashes (RFC 6962 shape, BLAKE3-256).

    MTH([])    = BLAKE3("")
    MTH([d])   = BLAKE3(0x00 || d)
    MTH(D[n])  = BLAKE3(0x01 || MTH(D[:j]) || MTH(D[j:]))   j = largest power of two < n

A part's root is MTH of its block content hashes; the object's root is MTH of its part roots.
"""

from __future__ import annotations

from collections.abc import Sequence

import blake3


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return blake3.blake3(b"").digest()
    if n == 1:
        return blake3.blake3(b"\x00" + leaves[0]).digest()
    split = 1 << ((n - 1).bit_length() - 1)
    left = merkle_root(leaves[:split])
    right = merkle_root(leaves[split:])
    return blake3.blake3(b"\x01" + left + right).digest()
