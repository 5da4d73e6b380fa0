"""Disk-set start-up rules (s3free.storage.diskset): format.json on fresh disks, the default
RS(k, m) per disk count, explicit k/m, disks matched to positions by id, foreign / wiped /
corrupt / duplicated disks, and placement of an object's shards."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from s3free.errors import DiskSetError
from s3free.format.diskformat import DiskFormat
from s3free.format.ids import object_id
from s3free.storage.disk import LocalDisk
from s3free.storage.diskset import DiskSet, default_ec, parse_ec
from s3free.storage.layout import FORMAT_FILE
from tests.support.engine import SMALL_BLOCK, disk_paths, open_store, stream_of

BUCKET = "setbucket"


def formats(paths: list[Path]) -> list[DiskFormat]:
    return [DiskFormat.decode((p / FORMAT_FILE).read_bytes()) for p in paths]


def tree_state(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every entry under root with its bytes (files) and mtime, to prove nothing changed."""
    out: dict[str, tuple[bytes | None, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.stat()
            out[str(path.relative_to(root))] = (
                path.read_bytes() if path.is_file() else None,
                st.st_mtime_ns,
            )
    out["."] = (None, root.stat().st_mtime_ns)
    return out


async def _store_with(root: Path, data: dict[str, bytes], **kw):
    store = await open_store(root, **kw)
    await store.create_bucket(BUCKET)
    for key, body in data.items():
        await store.put_object(BUCKET, key, stream_of(body))
    return store


DATA = {"a": os.urandom(1), "b": os.urandom(3 * SMALL_BLOCK + 17), "c": b""}


async def _check_reads(store, data=DATA) -> None:
    for key, body in data.items():
        assert await store.get_object_bytes(BUCKET, key) == body, key


# -- a fresh set -------------------------------------------------------------------------------


def test_fresh_nine_disks_get_format_json_with_rs_6_3(tmp_path):
    paths = disk_paths(tmp_path, 9)
    ds = DiskSet.open(paths)
    fmts = formats(paths)
    assert (ds.k, ds.m, ds.n) == (6, 3, 9)
    assert {f.set_id for f in fmts} == {ds.set_id}
    assert [f.position for f in fmts] == list(range(9))
    ids = fmts[0].disks
    assert len(set(ids)) == 9
    for f in fmts:
        assert f.disks == ids and f.disk_id == ids[f.position]
        assert (f.k, f.m, f.block_size) == (6, 3, 1024 * 1024)
    assert [s.disk_id for s in ds.slots] == list(ids)
    assert all(s.online and s.problem == "" for s in ds.slots)
    assert ds.write_quorum == 7
    # reopening reads the same set back
    again = DiskSet.open(paths)
    assert again.set_id == ds.set_id and [s.disk_id for s in again.slots] == list(ids)


def test_directories_that_do_not_exist_yet_are_created(tmp_path):
    paths = [tmp_path / "deep" / f"d{i}" for i in range(4)]
    ds = DiskSet.open(paths)
    assert all((p / FORMAT_FILE).is_file() for p in paths)
    assert (ds.k, ds.m) == (2, 2)


@pytest.mark.parametrize("n", range(3, 13))
def test_default_ec_for_3_to_12_disks(tmp_path, n):
    k, m = default_ec(n)
    # every default fits the disks, survives at least one lost disk, keeps k >= 2 (else it is
    # replication), never spends more than half the capacity on parity, and is 6+3 from 9 up
    assert k + m <= n
    assert m >= 1 and k >= 2
    assert m <= k
    if n >= 9:
        assert (k, m) == (6, 3)
    ds = DiskSet.open(disk_paths(tmp_path, n))
    assert (ds.k, ds.m) == (k, m)
    assert all(f.k == k and f.m == m for f in formats(disk_paths(tmp_path, n)))


def test_default_ec_never_shrinks_parity_as_disks_are_added():
    previous = 0
    for n in range(3, 13):
        _, m = default_ec(n)
        assert m >= previous, n
        previous = m


@pytest.mark.parametrize("n", [1, 2])
async def test_one_or_two_disks_are_refused_with_a_clear_message(tmp_path, n):
    paths = disk_paths(tmp_path, n)
    with pytest.raises(DiskSetError, match="at least 3"):
        DiskSet.open(paths)
    assert not any((p / FORMAT_FILE).exists() for p in paths)
    with pytest.raises(DiskSetError, match=str(n)):
        default_ec(n)
    # through the store as well, and an explicit k/m does not sneak past the disk count
    with pytest.raises(DiskSetError):
        await open_store(tmp_path, n)
    with pytest.raises(DiskSetError):
        DiskSet.open(paths, k=1, m=2)
    assert not any((p / FORMAT_FILE).exists() for p in paths)


@pytest.mark.parametrize(
    ("n", "k", "m"), [(9, 4, 2), (9, 8, 1), (9, 5, 4), (9, 1, 1), (12, 8, 4), (4, 3, 1)]
)
def test_explicit_k_m_accepted(tmp_path, n, k, m):
    paths = disk_paths(tmp_path, n)
    ds = DiskSet.open(paths, k=k, m=m)
    assert (ds.k, ds.m) == (k, m)
    assert all((f.k, f.m) == (k, m) for f in formats(paths))
    # a store opened without --ec uses the set's own k/m
    assert (DiskSet.open(paths).k, DiskSet.open(paths).m) == (k, m)


@pytest.mark.parametrize(("n", "k", "m"), [(9, 7, 3), (9, 9, 1), (3, 2, 2), (9, 0, 3), (9, 6, 0)])
def test_explicit_k_m_refused(tmp_path, n, k, m):
    paths = disk_paths(tmp_path, n)
    with pytest.raises(DiskSetError) as info:
        DiskSet.open(paths, k=k, m=m)
    assert f"RS({k},{m})" in str(info.value)
    assert not any((p / FORMAT_FILE).exists() for p in paths)


def test_parse_ec():
    assert parse_ec("6+3") == (6, 3)
    assert parse_ec("12+4") == (12, 4)
    for bad in ("6", "6+", "a+b", "6+3+1", "", "6-3"):
        with pytest.raises(DiskSetError, match="K\\+M"):
            parse_ec(bad)


# -- reopening ---------------------------------------------------------------------------------


async def test_reopening_with_reordered_paths_keeps_positions(tmp_path):
    paths = disk_paths(tmp_path, 9)
    store = await _store_with(tmp_path, DATA)
    by_path = {Path(s.disk.root): (s.position, s.disk_id) for s in store.diskset.slots}
    await store.close()
    shuffled = [paths[i] for i in (4, 8, 0, 2, 7, 1, 6, 3, 5)]
    store = await open_store(tmp_path, disks=shuffled)
    try:
        for slot in store.diskset.slots:
            assert by_path[Path(slot.disk.root)] == (slot.position, slot.disk_id)
        assert [s.position for s in store.diskset.slots] == list(range(9))
        assert all(s.online for s in store.diskset.slots)
        await _check_reads(store)
    finally:
        await store.close()


def test_reopening_with_a_different_ec_or_block_size_is_refused(tmp_path):
    paths = disk_paths(tmp_path, 9)
    DiskSet.open(paths, block_size=SMALL_BLOCK)
    before = {p: tree_state(p) for p in paths}
    for k, m in ((4, 2), (6, 2), (5, 3)):
        with pytest.raises(DiskSetError, match="RS\\(6,3\\)"):
            DiskSet.open(paths, k=k, m=m, block_size=SMALL_BLOCK)
    with pytest.raises(DiskSetError, match="block size"):
        DiskSet.open(paths, block_size=2 * SMALL_BLOCK)
    # the same values, or none, are fine
    assert DiskSet.open(paths, k=6, m=3, block_size=SMALL_BLOCK).k == 6
    assert DiskSet.open(paths).block_size == SMALL_BLOCK
    assert {p: tree_state(p) for p in paths} == before


def test_wrong_number_of_disks_is_refused(tmp_path):
    paths = disk_paths(tmp_path, 9)
    DiskSet.open(paths)
    with pytest.raises(DiskSetError, match="9 disks"):
        DiskSet.open(paths[:8])
    extra = tmp_path / "extra"
    extra.mkdir()
    with pytest.raises(DiskSetError, match="9 disks"):
        DiskSet.open([*paths, extra])
    assert list(extra.iterdir()) == []


# -- foreign, wiped, corrupt, duplicated disks --------------------------------------------------


async def test_a_disk_from_another_set_is_refused_and_left_untouched(tmp_path):
    ours = disk_paths(tmp_path / "ours", 9)
    store = await _store_with(tmp_path / "ours", DATA)
    await store.close()
    theirs = await _store_with(tmp_path / "theirs", {"x": b"their data"})
    await theirs.close()
    foreign = disk_paths(tmp_path / "theirs", 9)[5]
    before_foreign = tree_state(foreign)
    before_ours = {p: tree_state(p) for p in ours}
    mixed = [*ours[:5], foreign, *ours[6:]]
    with pytest.raises(DiskSetError) as info:
        await open_store(tmp_path / "ours", disks=mixed)
    assert str(foreign) in str(info.value)
    assert "another set" in str(info.value)
    assert tree_state(foreign) == before_foreign
    assert {p: tree_state(p) for p in ours} == before_ours
    # and the right disks still open
    store = await open_store(tmp_path / "ours")
    try:
        await _check_reads(store)
    finally:
        await store.close()


def test_a_foreign_disk_listed_first_is_still_the_one_named(tmp_path):
    """Eight disks of one set outvote one foreign disk wherever it is listed: the error must
    name the foreign disk, not tell the operator that a good disk is the stranger."""
    ours = disk_paths(tmp_path / "ours", 9)
    DiskSet.open(ours)
    foreign = disk_paths(tmp_path / "theirs", 3)[0]
    DiskSet.open(disk_paths(tmp_path / "theirs", 3))
    before = tree_state(foreign)
    with pytest.raises(DiskSetError) as info:
        DiskSet.open([foreign, *ours[1:]])
    assert str(foreign) in str(info.value), str(info.value)
    assert tree_state(foreign) == before


@pytest.mark.parametrize("wipe", ["format-only", "everything"])
async def test_a_wiped_disk_is_offline_and_the_store_still_serves(tmp_path, wipe):
    paths = disk_paths(tmp_path, 9)
    store = await _store_with(tmp_path, DATA)
    await store.close()
    victim = paths[6]
    if wipe == "format-only":
        (victim / FORMAT_FILE).unlink()
    else:
        shutil.rmtree(victim)
        victim.mkdir()
    before = tree_state(victim)
    store = await open_store(tmp_path)
    try:
        slot = store.diskset.slots[6]
        assert Path(slot.disk.root) == victim
        assert not slot.online
        assert slot.problem.startswith("unformatted"), slot.problem
        assert sum(s.online for s in store.diskset.slots) == 8
        await _check_reads(store)
        # writes go on without it (8 of 9 shards >= the write quorum of 7) ...
        await store.put_object(BUCKET, "new", stream_of(b"n" * 100_000))
        assert await store.get_object_bytes(BUCKET, "new") == b"n" * 100_000
        faults = [f for f in store.recent_faults if f.key == "new"]
        assert [f.disk_id for f in faults if "not written" in f.reason] == [slot.disk_id]
    finally:
        await store.close()
    # ... and nothing at all is written to the unformatted disk
    assert tree_state(victim) == before


async def test_a_missing_disk_directory_is_offline(tmp_path):
    paths = disk_paths(tmp_path, 9)
    store = await _store_with(tmp_path, DATA)
    await store.close()
    shutil.rmtree(paths[2])
    store = await open_store(tmp_path)
    try:
        slot = store.diskset.slots[2]
        assert not slot.online and slot.problem
        await _check_reads(store)
    finally:
        await store.close()


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"format": "s3free-disk"}', b"\xff\xfe", None],
    ids=["empty", "not-json", "fields-missing", "not-utf8", "other-set-position"],
)
async def test_a_corrupt_format_json_is_offline_with_a_problem(tmp_path, content):
    paths = disk_paths(tmp_path, 9)
    store = await _store_with(tmp_path, DATA)
    await store.close()
    fmt_file = paths[1] / FORMAT_FILE
    if content is None:
        # valid JSON, but its position names another disk's id
        obj = json.loads(fmt_file.read_bytes())
        obj["position"] = 2
        fmt_file.write_text(json.dumps(obj))
    else:
        fmt_file.write_bytes(content)
    before = tree_state(paths[1])
    store = await open_store(tmp_path)
    try:
        slot = store.diskset.slots[1]
        assert Path(slot.disk.root) == paths[1]
        assert not slot.online
        assert "format.json" in slot.problem
        await _check_reads(store)
    finally:
        await store.close()
    assert tree_state(paths[1]) == before


def test_a_non_empty_unformatted_directory_in_a_fresh_set_is_refused(tmp_path):
    paths = disk_paths(tmp_path, 9)
    for p in paths:
        p.mkdir(parents=True)
    (paths[4] / "holiday-photos").mkdir()
    (paths[4] / "holiday-photos" / "1.jpg").write_bytes(b"\xff\xd8 precious")
    before = tree_state(paths[4])
    with pytest.raises(DiskSetError) as info:
        DiskSet.open(paths)
    assert str(paths[4]) in str(info.value)
    assert tree_state(paths[4]) == before
    assert not any((p / FORMAT_FILE).exists() for p in paths)


def test_a_stale_temp_dir_does_not_make_a_fresh_disk_non_empty(tmp_path):
    paths = disk_paths(tmp_path, 3)
    (paths[0] / ".s3free.tmp").mkdir(parents=True)
    ds = DiskSet.open(paths)
    assert all(s.online for s in ds.slots)


def test_the_same_path_twice_is_refused(tmp_path):
    paths = disk_paths(tmp_path, 9)
    for variant in (paths[3], Path(f"{paths[3]}/"), paths[3] / ".." / paths[3].name):
        dup = [*paths[:8], variant]
        with pytest.raises(DiskSetError, match="same directory"):
            DiskSet.open(dup)
    assert not any((p / FORMAT_FILE).exists() for p in paths)
    # a symlink to a disk is the same directory
    for p in paths:
        p.mkdir()
    link = tmp_path / "link"
    link.symlink_to(paths[0], target_is_directory=True)
    with pytest.raises(DiskSetError, match="same directory"):
        DiskSet.open([*paths[:8], link])
    # also on an existing set
    DiskSet.open(paths)
    with pytest.raises(DiskSetError, match="same directory"):
        DiskSet.open([*paths[:8], paths[0]])


def test_a_cloned_disk_is_refused(tmp_path):
    """Two disks claiming one position (a disk copied onto another) cannot both be it."""
    paths = disk_paths(tmp_path, 9)
    DiskSet.open(paths)
    shutil.copy(paths[0] / FORMAT_FILE, paths[1] / FORMAT_FILE)
    with pytest.raises(DiskSetError, match="position 0"):
        DiskSet.open(paths)


# -- placement -----------------------------------------------------------------------------------


def test_placement_is_k_plus_m_distinct_disks_and_deterministic(tmp_path):
    paths = disk_paths(tmp_path, 12)
    ds = DiskSet.open(paths)
    assert (ds.k, ds.m) == (6, 3)
    reopened = DiskSet.open(list(reversed(paths)))
    for i in range(300):
        oid = object_id("bucket", f"key-{i}")
        chosen = [s.disk_id for s in ds.placement(oid)]
        assert len(chosen) == 9 and len(set(chosen)) == 9
        assert chosen == [s.disk_id for s in ds.placement(oid)]
        assert chosen == [s.disk_id for s in reopened.placement(oid)]


def test_placement_spreads_evenly_over_twelve_disks(tmp_path):
    ds = DiskSet.open(disk_paths(tmp_path, 12))
    ids = 3000
    holds: Counter[str] = Counter()
    first: Counter[str] = Counter()
    for i in range(ids):
        chosen = ds.placement(object_id("spread", f"object/{i}"))
        holds.update(s.disk_id for s in chosen)
        first[chosen[0].disk_id] += 1
    # each disk holds a shard of 9/12 of the objects, and is shard 0 for 1/12
    mean_holds = ids * 9 / 12
    mean_first = ids / 12
    assert len(holds) == 12 and len(first) == 12
    assert all(abs(c - mean_holds) < 0.06 * mean_holds for c in holds.values()), holds
    assert all(abs(c - mean_first) < 0.25 * mean_first for c in first.values()), first


def test_placement_avoids_offline_disks_when_there_are_spares(tmp_path):
    paths = disk_paths(tmp_path, 12)
    ds = DiskSet.open(paths)
    ds.slots[3].mark_offline("test: pulled")
    ds.slots[7].mark_offline("test: pulled")
    down = {ds.slots[3].disk_id, ds.slots[7].disk_id}
    for i in range(200):
        chosen = ds.placement(object_id("b", f"k{i}"))
        assert len({s.disk_id for s in chosen}) == 9
        assert not down & {s.disk_id for s in chosen}
    # with no spares, the offline disk keeps its place (the write reports it, not written)
    small = DiskSet.open(disk_paths(tmp_path / "nine", 9))
    small.slots[0].mark_offline("test: pulled")
    chosen = small.placement(object_id("b", "k"))
    assert len(chosen) == 9 and chosen[-1] is small.slots[0]


def test_placement_moves_little_when_a_disk_goes_offline(tmp_path):
    """Rendezvous hashing: taking one disk out changes only the objects that used it."""
    ds = DiskSet.open(disk_paths(tmp_path, 12))
    oids = [object_id("b", f"k{i}") for i in range(500)]
    before = {oid: {s.disk_id for s in ds.placement(oid)} for oid in oids}
    ds.slots[5].mark_offline("test")
    gone = ds.slots[5].disk_id
    for oid in oids:
        after = {s.disk_id for s in ds.placement(oid)}
        if gone in before[oid]:
            assert len(after - before[oid]) == 1 and gone not in after
        else:
            assert after == before[oid]


def test_disk_objects_given_directly_are_used(tmp_path):
    disks = [LocalDisk(p) for p in disk_paths(tmp_path, 5)]
    ds = DiskSet.open(disks)
    assert [s.disk for s in ds.slots] == disks
    assert (ds.k, ds.m) == (3, 2)
