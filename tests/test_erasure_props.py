"""Properties of the Reed-Solomon codec (s3free.erasure.ReedSolomon), checked for random RS(k, m)
and random blocks: any k shards give the block back, fewer are refused, the first k shards are
the padded block itself, and a shard of the wrong length is refused rather than decoded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3free.erasure import ReedSolomon, TooFewShards

MAX_N = 20
MAX_BLOCK = 4096


@st.composite
def codes(draw) -> tuple[int, int]:
    k = draw(st.integers(1, MAX_N - 1))
    m = draw(st.integers(1, MAX_N - k))
    return k, m


@st.composite
def code_and_block(draw, min_len: int = 0) -> tuple[int, int, bytes]:
    k, m = draw(codes())
    block = draw(st.binary(min_size=min_len, max_size=MAX_BLOCK))
    return k, m, block


def _padded(block: bytes, k: int) -> bytes:
    size = -(-len(block) // k)
    return block + bytes(size * k - len(block))


@settings(max_examples=150, deadline=None)
@given(code_and_block(), st.data())
def test_any_k_shards_give_the_block_back(case, data):
    k, m, block = case
    rs = ReedSolomon(k, m)
    shards = rs.encode(block)
    assert len(shards) == k + m
    size = -(-len(block) // k)
    assert all(len(s) == size for s in shards)
    order = data.draw(st.permutations(range(k + m)), label="shard order")
    extra = data.draw(st.integers(0, m), label="extra shards")
    chosen = {i: shards[i] for i in order[: k + extra]}
    assert rs.decode(chosen, len(block)) == block
    # memoryviews are accepted as payloads, as the reader hands them over
    assert rs.decode({i: memoryview(p) for i, p in chosen.items()}, len(block)) == block


@settings(max_examples=60, deadline=None)
@given(codes(), st.data())
def test_every_k_subset_of_a_small_code_decodes(code, data):
    """Exhaustive over all k-subsets (bounded: only codes with few subsets)."""
    import itertools
    import math

    k, m = code
    if math.comb(k + m, k) > 200:
        k, m = min(k, 4), min(m, 4)
    block = data.draw(st.binary(min_size=1, max_size=600), label="block")
    rs = ReedSolomon(k, m)
    shards = rs.encode(block)
    for subset in itertools.combinations(range(k + m), k):
        assert rs.decode({i: shards[i] for i in subset}, len(block)) == block, subset


@settings(max_examples=100, deadline=None)
@given(code_and_block(min_len=1), st.data())
def test_fewer_than_k_shards_are_refused(case, data):
    k, m, block = case
    rs = ReedSolomon(k, m)
    shards = rs.encode(block)
    order = data.draw(st.permutations(range(k + m)), label="shard order")
    have = data.draw(st.integers(0, k - 1), label="how many")
    with pytest.raises(TooFewShards):
        rs.decode({i: shards[i] for i in order[:have]}, len(block))


@settings(max_examples=50, deadline=None)
@given(code_and_block(min_len=1), st.data())
def test_out_of_range_indices_do_not_count_towards_k(case, data):
    k, m, block = case
    rs = ReedSolomon(k, m)
    shards = rs.encode(block)
    have = data.draw(st.integers(0, k - 1), label="how many real")
    given_shards: dict[int, bytes] = {i: shards[i] for i in range(have)}
    # indices outside 0..k+m-1 (with plausible payloads) must not make up the numbers
    for bogus in (-1, k + m, k + m + 5)[: k - have]:
        given_shards[bogus] = shards[0]
    with pytest.raises(TooFewShards):
        rs.decode(given_shards, len(block))


@settings(max_examples=150, deadline=None)
@given(code_and_block())
def test_data_shards_are_slices_of_the_padded_block(case):
    k, m, block = case
    rs = ReedSolomon(k, m)
    shards = rs.encode(block)
    padded = _padded(block, k)
    size = -(-len(block) // k)
    assert len(padded) == size * k
    for i in range(k):
        assert shards[i] == padded[i * size : (i + 1) * size]
    assert b"".join(shards[:k]) == padded


@settings(max_examples=60, deadline=None)
@given(code_and_block(min_len=1))
def test_parity_depends_on_the_data(case):
    """Changing one data byte changes every parity shard (an MDS code: each parity shard
    mixes every data shard with a non-zero coefficient)."""
    k, m, block = case
    rs = ReedSolomon(k, m)
    before = rs.encode(block)
    changed = bytearray(block)
    changed[len(block) // 2] ^= 0x5A
    after = rs.encode(bytes(changed))
    for j in range(k, k + m):
        assert before[j] != after[j], j


@settings(max_examples=100, deadline=None)
@given(code_and_block(min_len=1), st.data())
def test_wrong_length_shard_is_refused(case, data):
    k, m, block = case
    rs = ReedSolomon(k, m)
    shards = rs.encode(block)
    order = data.draw(st.permutations(range(k + m)), label="shard order")
    chosen = {i: shards[i] for i in order[:k]}
    victim = data.draw(st.sampled_from(sorted(chosen)), label="victim")
    size = len(shards[victim])
    new_len = data.draw(st.integers(0, size + 8).filter(lambda n: n != size), label="wrong length")
    chosen[victim] = (bytes(shards[victim]) * 2 + bytes(16))[:new_len]
    with pytest.raises(ValueError) as info:
        rs.decode(chosen, len(block))
    assert not isinstance(info.value, TooFewShards)


@settings(max_examples=60, deadline=None)
@given(codes(), st.integers(0, MAX_BLOCK))
def test_block_length_names_the_shard_size(code, length):
    """block_length fixes the shard size: shards made for another length are refused."""
    k, m = code
    rs = ReedSolomon(k, m)
    assert rs.shard_size(length) == -(-length // k)
    block = bytes(range(256)) * (length // 256 + 1)
    block = block[:length]
    shards = rs.encode(block)
    assert sum(len(s) for s in shards[:k]) >= length
    # length + k needs shards one byte longer: these are refused, not decoded short
    with pytest.raises(ValueError):
        rs.decode(dict(enumerate(shards[:k])), length + k)


def test_empty_block_has_empty_shards():
    rs = ReedSolomon(6, 3)
    assert rs.encode(b"") == [b""] * 9
    assert rs.decode({i: b"" for i in range(6)}, 0) == b""


@pytest.mark.parametrize(("k", "m"), [(0, 1), (1, 0), (-1, 2), (200, 57), (256, 1)])
def test_unsupported_codes_are_refused(k, m):
    with pytest.raises(ValueError):
        ReedSolomon(k, m)


def test_largest_code_round_trips():
    rs = ReedSolomon(200, 56)
    block = bytes((i * 7 + 3) % 256 for i in range(3000))
    shards = rs.encode(block)
    keep = {i: shards[i] for i in range(56, 256)}  # all parity, missing 56 data shards
    assert rs.decode(keep, len(block)) == block


# -- the ISA-L parity path must be byte-identical to zfec's ------------------------------------

from s3free.erasure import codec as _codec  # noqa: E402


@pytest.mark.skipif(_codec._ISAL is None, reason="libisal2 is not installed")
@given(
    k=st.integers(1, 12),
    m=st.integers(1, 6),
    data=st.binary(min_size=1, max_size=5000),
)
def test_isal_parity_equals_zfec(k, m, data):
    rs = ReedSolomon(k, m)
    assert rs._isal is not None
    size = rs.shard_size(len(data))
    padded = data + bytes(size * k - len(data))
    view = memoryview(padded)
    shards = tuple(view[i * size : (i + 1) * size] for i in range(k))
    expected = rs._encoder.encode(shards, tuple(range(k, k + m)))
    assert rs._isal.parity(padded, size) == [bytes(p) for p in expected]
    assert [bytes(s) for s in rs.encode(data)[k:]] == [bytes(p) for p in expected]
