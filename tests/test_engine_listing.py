"""Functional tests of ObjectStore.list_objects: prefix, delimiter, start_after, max_keys paging in
UTF-8 byte order, and a hypothesis property test against a small reference implementation
written here from the S3 rules (not from meta/index.py)."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3free.errors import InvalidArgument
from tests.support.engine import open_store, run, stream_of

BUCKET = "lists"


def utf8_sorted(keys) -> list[str]:
    return sorted(keys, key=lambda k: k.encode())


def reference_list(
    keys, *, prefix: str = "", delimiter: str = "", start_after: str = "", max_keys: int = 1000
) -> tuple[list[str], list[str], bool, str]:
    """S3 ListObjects from the rules: keys that begin with the prefix; with a delimiter, a key
    whose remainder after the prefix contains it is replaced by its "common prefix" (everything
    up to and including the first delimiter after the prefix), each common prefix counted once;
    the resulting entries in UTF-8 byte order, only those after start_after, at most max_keys
    of them; a truncated page's next marker is its last entry."""
    entries: dict[str, bool] = {}  # entry -> is a common prefix
    for key in keys:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if delimiter and delimiter in rest:
            entries[prefix + rest[: rest.index(delimiter) + len(delimiter)]] = True
        else:
            entries[key] = False
    after = [e for e in utf8_sorted(entries) if e.encode() > start_after.encode()]
    page = after[:max_keys]
    truncated = len(after) > len(page)
    objects = [e for e in page if not entries[e]]
    prefixes = [e for e in page if entries[e]]
    return objects, prefixes, truncated, page[-1] if truncated else ""


async def fill(store, keys) -> None:
    """Each key's body is its own UTF-8 name, so sizes and ETags are known independently."""
    await asyncio.gather(*(store.put_object(BUCKET, k, stream_of(k.encode())) for k in keys))


async def listed(store, **kwargs) -> tuple[list[str], list[str], bool, str]:
    result = await store.list_objects(BUCKET, **kwargs)
    for o in result.objects:
        assert o.size == len(o.key.encode())
        assert o.etag == hashlib.md5(o.key.encode()).hexdigest()
    return (
        [o.key for o in result.objects],
        result.common_prefixes,
        result.is_truncated,
        result.next_marker,
    )


async def pages(store, *, max_keys: int, limit: int = 500, **kwargs) -> list[tuple]:
    """Follow next_marker until the listing is not truncated (bounded)."""
    out, marker = [], kwargs.pop("start_after", "")
    for _ in range(limit):
        page = await listed(store, start_after=marker, max_keys=max_keys, **kwargs)
        out.append(page)
        if not page[2]:
            return out
        assert page[3], "a truncated page must say where to continue"
        marker = page[3]
    raise AssertionError("listing did not end")


pytestmark = pytest.mark.store(n=3, bucket=BUCKET)

KEYS = [
    "a",
    "a/1",
    "a/2",
    "a/b/c",
    "a b",
    "a-b",
    "b",
    "b/",
    "c d/e f",
    "photos/2024/jan.jpg",
    "photos/2024/feb.jpg",
    "photos/2025/x",
    "photos/readme",
    "z😀",
    "zé",
    "z\uff5e",  # before z😀 in UTF-8 (and code point) order, after it in UTF-16 order
    "z~",
    "!bang",
    "~tilde",
    "é/x",
    "%20literal",
    "q?x=1&y=2",
    "line\nbreak",
    "tab\tkey",
]


async def test_full_listing_is_in_utf8_byte_order(store):
    await fill(store, KEYS)
    objects, prefixes, truncated, marker = await listed(store)
    assert objects == utf8_sorted(KEYS)
    assert objects.index("z\uff5e") < objects.index("z😀")
    assert (prefixes, truncated, marker) == ([], False, "")


async def test_prefix_and_delimiter(store):
    await fill(store, KEYS)
    assert await listed(store, prefix="photos/") == (
        ["photos/2024/feb.jpg", "photos/2024/jan.jpg", "photos/2025/x", "photos/readme"],
        [],
        False,
        "",
    )
    assert await listed(store, prefix="photos/", delimiter="/") == (
        ["photos/readme"],
        ["photos/2024/", "photos/2025/"],
        False,
        "",
    )
    objects, prefixes, _, _ = await listed(store, delimiter="/")
    assert prefixes == ["a/", "b/", "c d/", "photos/", "é/"]
    assert objects == utf8_sorted(k for k in KEYS if "/" not in k)
    # a prefix that is itself a key lists that key too
    assert (await listed(store, prefix="a"))[0] == ["a", "a b", "a-b", "a/1", "a/2", "a/b/c"]
    assert await listed(store, prefix="a", delimiter="/") == (
        ["a", "a b", "a-b"],
        ["a/"],
        False,
        "",
    )
    assert await listed(store, prefix="a/", delimiter="/") == (
        ["a/1", "a/2"],
        ["a/b/"],
        False,
        "",
    )
    # the key "b/" rolls into the common prefix "b/" ...
    assert await listed(store, prefix="b", delimiter="/") == (["b"], ["b/"], False, "")
    # ... and is an object when it is the prefix itself
    assert await listed(store, prefix="b/", delimiter="/") == (["b/"], [], False, "")
    assert await listed(store, prefix="nothing") == ([], [], False, "")
    assert await listed(store, prefix="photos/2024/jan.jpg/") == ([], [], False, "")


async def test_other_delimiters(store):
    keys = ["2024-01-a", "2024-01-b", "2024-02-a", "2024", "2025-12", "x--y--z", "x--w", "x-y"]

    await fill(store, keys)
    assert await listed(store, delimiter="-") == (
        ["2024"],
        ["2024-", "2025-", "x-"],
        False,
        "",
    )
    assert await listed(store, prefix="2024-", delimiter="-") == (
        [],
        ["2024-01-", "2024-02-"],
        False,
        "",
    )
    assert await listed(store, delimiter="--") == (
        ["2024", "2024-01-a", "2024-01-b", "2024-02-a", "2025-12", "x-y"],
        ["x--"],
        False,
        "",
    )
    # the delimiter is looked for after the prefix only
    assert await listed(store, prefix="x-", delimiter="-") == (["x-y"], ["x--"], False, "")
    assert await listed(store, prefix="x--", delimiter="--") == (
        ["x--w"],
        ["x--y--"],
        False,
        "",
    )


async def test_start_after(store):
    keys = ["a", "a/1", "a/2", "b", "c/1", "c/2", "d"]

    await fill(store, keys)
    assert (await listed(store, start_after="a/1"))[0] == ["a/2", "b", "c/1", "c/2", "d"]
    assert (await listed(store, start_after="a/15"))[0] == ["a/2", "b", "c/1", "c/2", "d"]
    assert (await listed(store, start_after="0"))[0] == keys
    assert (await listed(store, start_after="d"))[0] == []
    assert (await listed(store, start_after="zzz"))[0] == []
    # before the prefix: the whole prefix; inside it: the rest of it
    assert (await listed(store, prefix="c/", start_after="b"))[0] == ["c/1", "c/2"]
    assert (await listed(store, prefix="c/", start_after="c/1"))[0] == ["c/2"]
    assert (await listed(store, prefix="c/", start_after="c/2"))[0] == []
    # with a delimiter, a common prefix at or before the marker is not repeated
    assert await listed(store, delimiter="/", start_after="a/") == (
        ["b", "d"],
        ["c/"],
        False,
        "",
    )
    assert await listed(store, delimiter="/", start_after="a") == (
        ["b", "d"],
        ["a/", "c/"],
        False,
        "",
    )


async def test_paging_visits_every_key_once(store):
    await fill(store, KEYS)
    expected = utf8_sorted(KEYS)
    for max_keys in (1, 2, 3, 7, len(KEYS) - 1, len(KEYS), len(KEYS) + 1):
        got = await pages(store, max_keys=max_keys)
        flat = [k for objects, _, _, _ in got for k in objects]
        assert flat == expected, max_keys
        assert len(got) == max(1, -(-len(KEYS) // max_keys))
        for objects, _, truncated, marker in got[:-1]:
            assert len(objects) == max_keys and truncated and marker == objects[-1]
        assert got[-1][2] is False and got[-1][3] == ""


async def test_common_prefix_with_many_keys_behind_it(store):
    keys = ["a", "c", "d/1"] + [f"big/{i:03d}" for i in range(80)] + ["big0"]

    await fill(store, keys)
    assert await listed(store, delimiter="/") == (["a", "big0", "c"], ["big/", "d/"], False, "")
    got = await pages(store, max_keys=1, delimiter="/")
    assert [(o, p) for o, p, _, _ in got] == [
        (["a"], []),
        ([], ["big/"]),
        (["big0"], []),
        (["c"], []),
        ([], ["d/"]),
    ]
    assert [m for _, _, _, m in got] == ["a", "big/", "big0", "c", ""]
    got = await pages(store, max_keys=2, delimiter="/")
    assert [(o, p) for o, p, _, _ in got] == [
        (["a"], ["big/"]),
        (["big0", "c"], []),
        ([], ["d/"]),
    ]
    # inside the big prefix, paging is exact too
    got = await pages(store, max_keys=30, prefix="big/")
    assert [len(o) for o, _, _, _ in got] == [30, 30, 20]
    assert [k for o, _, _, _ in got for k in o] == [f"big/{i:03d}" for i in range(80)]


async def test_max_keys_zero_and_negative(store):
    await fill(store, ["a", "b/c"])
    objects, prefixes, _, _ = await listed(store, max_keys=0)
    assert (objects, prefixes) == ([], [])
    objects, prefixes, _, _ = await listed(store, max_keys=0, delimiter="/")
    assert (objects, prefixes) == ([], [])
    with pytest.raises(InvalidArgument):
        await store.list_objects(BUCKET, max_keys=-1)


async def test_empty_bucket(store):
    await fill(store, [])
    assert await listed(store) == ([], [], False, "")
    assert await listed(store, delimiter="/", prefix="x", start_after="y") == (
        [],
        [],
        False,
        "",
    )


# -- property: paging equals the reference ----------------------------------------------------

ALPHABET = ["a", "b", "/", "-", " ", "é", "😀", "\uff5e"]
key_text = st.text(alphabet=st.sampled_from(ALPHABET), min_size=1, max_size=6)
query = st.tuples(
    st.text(alphabet=st.sampled_from(ALPHABET), max_size=2),  # prefix
    st.sampled_from(["", "/", "-", "a", "é", "/a", "😀", "ab"]),  # delimiter
    st.one_of(st.just(""), st.text(alphabet=st.sampled_from(ALPHABET), max_size=3)),  # start
    st.integers(min_value=1, max_value=6),  # page size
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keys=st.sets(key_text, max_size=18), queries=st.lists(query, min_size=1, max_size=4))
def test_paging_matches_reference(keys, queries):
    async def main(root: Path):
        store = await open_store(root, n=3)
        try:
            await store.create_bucket(BUCKET)
            await fill(store, keys)
            for prefix, delimiter, start_after, page_size in queries:
                kwargs = {"prefix": prefix, "delimiter": delimiter}
                # the whole listing in one page
                assert await listed(store, start_after=start_after, **kwargs) == reference_list(
                    keys, start_after=start_after, **kwargs
                )
                # page by page, each page as the reference pages it
                marker, seen = start_after, []
                for _ in range(len(keys) + 2):
                    got = await listed(store, start_after=marker, max_keys=page_size, **kwargs)
                    want = reference_list(keys, start_after=marker, max_keys=page_size, **kwargs)
                    assert got == want, (prefix, delimiter, marker, page_size)
                    seen += got[0] + got[1]
                    if not got[2]:
                        break
                    marker = got[3]
                else:
                    raise AssertionError("paging did not end")
                objects, prefixes, _, _ = reference_list(keys, start_after=start_after, **kwargs)
                assert sorted(seen) == sorted(objects + prefixes)
                assert len(seen) == len(set(seen))
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as tmp:
        run(main(Path(tmp)))
