"""Small-file I/O in batches (s3free/storage/batch.py and its C helper _batchio.c): the same
results as the Disk methods they stand for, in C and in the Python fallback alike, faults and
monitors still seeing every call, and reads "from memory only" that really never wait for a
disk. Real files in temporary directories; the page cache is emptied with fadvise."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s3free.storage import batch
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk, flip_bit
from s3free.storage.health import make_data_dirs, unformatted_entries
from s3free.storage.layout import FORMAT_FILE, HEALING_FILE
from s3free.storage.monitored import MonitoredDisk
from tests.support.engine import inline_file, open_store, stream_of

LIMIT = 4096


@pytest.fixture(params=["native", "python"])
def impl(request, monkeypatch):
    """Each test runs on the C helper and on the Python fallback."""
    if request.param == "native":
        if not batch.native():
            pytest.skip("the C helper s3free.storage._batchio is not built here")
    else:
        monkeypatch.setattr(batch, "_batchio", None)
    return request.param


def _disk(root: Path) -> LocalDisk:
    """A disk as formatting leaves it: its top-level data directories made."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "format.json").write_text("{}")  # formatting writes it before the directories
    disk = LocalDisk(root)
    make_data_dirs(disk)
    return disk


def _evict(path: Path) -> None:
    """Drop a file's pages from the page cache, as after a reboot or memory pressure."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_read_heads_gives_what_read_head_gives_for_every_size_and_error(tmp_path, impl):
    disk = _disk(tmp_path / "d")
    sizes = {"empty": 0, "small": 700, "limit": LIMIT, "big": LIMIT * 3 + 5}
    for name, size in sizes.items():
        (tmp_path / "d" / name).write_bytes(os.urandom(size))
    (tmp_path / "d" / "dir").mkdir()
    names = [*sizes, "missing", "dir"]
    results = batch.read_heads([(disk, name) for name in names], LIMIT)
    for name, result in zip(names, results, strict=True):
        try:
            expected: bytes | OSError = disk.read_head(name, LIMIT)
        except OSError as exc:
            expected = exc
        if isinstance(expected, OSError):
            assert type(result) is type(expected), name
            assert result.errno == expected.errno
            assert str(tmp_path / "d" / name) == result.filename
        else:
            assert result == expected, name
    assert [len(r) for r in results[:4]] == [0, 700, LIMIT, LIMIT]
    assert isinstance(results[4], FileNotFoundError)
    assert isinstance(results[5], IsADirectoryError)


def test_create_files_makes_directories_writes_chunks_and_never_overwrites(tmp_path, impl):
    a, b = _disk(tmp_path / "a"), _disk(tmp_path / "b")
    (tmp_path / "b" / "objects" / "taken").write_bytes(b"keep me")
    chunks = [b"head-", memoryview(b"xxbodyxx")[2:6], bytearray(b"-tail")]
    results = batch.create_files(
        [
            (a, "objects/ab/cd/new.inline", chunks),
            (b, "objects/taken", [b"other"]),
            (b, "objects/flat", []),
        ]
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], FileExistsError)
    assert (tmp_path / "a/objects/ab/cd/new.inline").read_bytes() == b"head-body-tail"
    assert (tmp_path / "b" / "objects" / "taken").read_bytes() == b"keep me"
    assert (tmp_path / "b" / "objects" / "flat").read_bytes() == b""


def test_create_files_never_recreates_a_vanished_disk_root(tmp_path, impl):
    disk = _disk(tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")
    [result] = batch.create_files([(disk, "objects/ab/cd/x.inline", [b"data"])])
    assert isinstance(result, FileNotFoundError)
    assert not (tmp_path / "gone").exists()


def test_create_files_never_remakes_the_data_directory_of_a_wiped_disk(tmp_path, impl):
    """A disk emptied while the server runs (format.json gone) must be found empty by the
    probe and formatted as a replacement; a write that made objects/ again would leave it
    "not empty" for good."""
    disk = _disk(tmp_path / "wiped")
    (tmp_path / "wiped" / FORMAT_FILE).unlink()
    shutil.rmtree(tmp_path / "wiped" / "objects")
    [result] = batch.create_files([(disk, "objects/ab/cd/x.inline", [b"data"])])
    assert isinstance(result, FileNotFoundError)
    assert not (tmp_path / "wiped" / "objects").exists()
    with pytest.raises(FileNotFoundError):
        disk.makedirs("objects/ab/cd/oid/version")
    assert not (tmp_path / "wiped" / "objects").exists()
    # A disk that kept its format.json (its identity) but lost its data is still this disk:
    # writes make its data directories again.
    (tmp_path / "wiped" / FORMAT_FILE).write_bytes(b"{}")
    assert batch.create_files([(disk, "objects/ab/cd/x.inline", [b"data"])]) == [None]
    assert (tmp_path / "wiped" / "objects/ab/cd/x.inline").read_bytes() == b"data"
    shutil.rmtree(tmp_path / "wiped" / "multipart")
    disk.makedirs("multipart/upload")
    assert (tmp_path / "wiped" / "multipart" / "upload").is_dir()


def test_create_files_reports_a_file_standing_where_a_directory_must_be(tmp_path, impl):
    disk = _disk(tmp_path / "d")
    (tmp_path / "d" / "objects" / "ab").write_bytes(b"not a directory")
    [result] = batch.create_files([(disk, "objects/ab/cd/x.inline", [b"data"])])
    assert isinstance(result, NotADirectoryError)
    assert (tmp_path / "d" / "objects" / "ab").read_bytes() == b"not a directory"


def test_faulty_disks_take_their_own_path_and_monitors_see_every_call(tmp_path, impl):
    errors: list[tuple[str, OSError]] = []
    observed: list[tuple[str, str | None]] = []
    plain = MonitoredDisk(_disk(tmp_path / "plain"), lambda op, exc: errors.append((op, exc)))
    plain.observe_io = lambda cls, seconds, kind: observed.append((cls, kind))
    faulty = FaultyDisk(_disk(tmp_path / "faulty"))
    faulty.fail("create_file", errno.ENOSPC)
    faulty.fail("read_at", errno.EIO)
    monitored_faulty = MonitoredDisk(faulty, lambda op, exc: errors.append((op, exc)))
    written = batch.create_files(
        [(plain, "objects/x/file", [b"fine"]), (monitored_faulty, "objects/x/file", [b"never"])]
    )
    assert written[0] is None
    assert isinstance(written[1], OSError) and written[1].errno == errno.ENOSPC
    read = batch.read_heads(
        [(plain, "objects/x/file"), (plain, "objects/x/missing"), (faulty, "objects/x/file")], LIMIT
    )
    assert read[0] == b"fine"
    assert isinstance(read[1], FileNotFoundError)
    assert isinstance(read[2], OSError) and read[2].errno == errno.EIO
    assert [(op, type(exc)) for op, exc in errors] == [
        ("create_file", OSError),
        ("read_head", FileNotFoundError),
    ]
    assert observed == [("write", None), ("read", None), ("read", "suspect")]  # plain's calls
    assert not (tmp_path / "faulty" / "objects" / "x" / "file").exists()


def test_cached_reads_never_wait_for_a_disk(tmp_path):
    if not batch.native():
        pytest.skip("the C helper s3free.storage._batchio is not built here")
    disk = _disk(tmp_path / "d")
    path = tmp_path / "d" / "f"
    data = os.urandom(3000)
    path.write_bytes(data)
    assert batch.read_heads_cached([(disk, "f")], LIMIT) == [data]
    _evict(path)
    [result] = batch.read_heads_cached([(disk, "f")], LIMIT)
    if not isinstance(result, BlockingIOError):
        pytest.skip("this kernel kept the pages after POSIX_FADV_DONTNEED")
    assert batch.read_heads([(disk, "f")], LIMIT) == [data]  # a thread's read fills the cache
    assert batch.read_heads_cached([(disk, "f")], LIMIT) == [data]
    assert not (tmp_path / "d" / "nothing").exists()  # the lookup caches the name's absence
    [missing] = batch.read_heads_cached([(disk, "nothing")], LIMIT)
    assert isinstance(missing, FileNotFoundError)


def test_cached_reads_leave_other_disks_and_no_helper_to_threads(tmp_path, monkeypatch):
    plain, faulty = _disk(tmp_path / "a"), FaultyDisk(_disk(tmp_path / "b"))
    (tmp_path / "a" / "f").write_bytes(b"x")
    results = batch.read_heads_cached([(plain, "f"), (faulty, "f")], LIMIT)
    assert all(isinstance(r, BlockingIOError) for r in results)  # one slow disk: all to threads
    monkeypatch.setattr(batch, "_batchio", None)
    assert isinstance(batch.read_heads_cached([(plain, "f")], LIMIT)[0], BlockingIOError)


# -- through the store: a small GET reads from memory on the loop, else in a thread --------


async def _small_object(root: Path):
    store = await open_store(root, k=6, m=3)
    await store.create_bucket("bkt")
    data = os.urandom(4000)
    await store.put_object("bkt", "k", stream_of(data), expected_size=len(data))
    manifest = await store.get_manifest("bkt", "k")
    return store, data, manifest


async def _get(store) -> bytes:
    reader = await store.open_object("bkt", "k", prefetch=True)
    return await reader.read_all()


async def test_a_small_get_whose_files_left_the_page_cache_is_read_in_a_thread(tmp_path):
    store, data, manifest = await _small_object(tmp_path)
    for shard in range(manifest.k):
        _evict(inline_file(store, manifest, shard))
    assert await _get(store) == data
    assert await _get(store) == data  # now cached: served on the loop
    await store.close()


async def test_a_bad_shard_found_on_the_loop_is_reported_once_and_read_around(tmp_path):
    store, data, manifest = await _small_object(tmp_path)
    faults = []
    store.fault_listeners.append(faults.append)
    path = inline_file(store, manifest, 2)
    flip_bit(path, os.path.getsize(path) - 100, 3)  # in shard 2's payload
    assert await _get(store) == data
    await store.wait_idle()
    assert [(f.shard_index, "CRC32C" in f.reason) for f in faults] == [(2, True)]
    await store.close()


# Run in a child process: RLIMIT_FSIZE holds for every file the process writes (pytest's own
# output too, when it goes to a file), so it must never be set in the test process itself.
_HALF_WAY_CHILD = """
import json, os, resource, signal, sys
from pathlib import Path
from s3free.storage import batch
from s3free.storage.disk import LocalDisk
from s3free.storage.health import make_data_dirs, unformatted_entries
root, impl = Path(sys.argv[1]), sys.argv[2]
if impl == "python":
    batch._batchio = None
disks = []
for name in ("a", "b"):
    (root / name).mkdir()
    (root / name / "format.json").write_text("{}")
    disks.append(LocalDisk(root / name))
    make_data_dirs(disks[-1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
results = batch.create_files([
    (disks[0], "objects/ab/cd/big.inline", [b"x" * 600, b"y" * 600]),  # fails at byte 1,000
    (disks[1], "objects/ab/cd/small.inline", [b"z" * 900]),
])
print(json.dumps([None if r is None else r.errno for r in results]))
"""


def test_a_write_that_fails_half_way_leaves_no_file_and_spares_the_others(tmp_path, impl):
    """A real write error half-way through a file (the file size limit, EFBIG)."""
    out = subprocess.run(
        [sys.executable, "-c", _HALF_WAY_CHILD, str(tmp_path), impl],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [errno.EFBIG, None]
    assert not (tmp_path / "a" / "objects/ab/cd/big.inline").exists()
    assert (tmp_path / "b" / "objects/ab/cd/small.inline").read_bytes() == b"z" * 900


def test_empty_data_directories_do_not_make_a_wiped_disk_look_in_use(tmp_path):
    """A write racing an `rm -rf` of a disk may leave empty data directories behind: the
    disk still counts as empty (formatted as a replacement); a file anywhere does not."""
    disk = _disk(tmp_path / "d")  # buckets/, objects/, multipart/
    (tmp_path / "d" / FORMAT_FILE).unlink()  # then wiped but for empty directories
    (tmp_path / "d" / ".s3free.quarantine").mkdir()  # a repair's, with nothing in it
    (tmp_path / "d" / "objects" / "ab" / "cd").mkdir(parents=True)
    (tmp_path / "d" / HEALING_FILE).write_bytes(b"{}")
    assert unformatted_entries(disk) == []
    (tmp_path / "d" / "objects" / "ab" / "cd" / "x.inline").write_bytes(b"shard")
    (tmp_path / "d" / "notes.txt").write_bytes(b"someone else's")
    assert sorted(unformatted_entries(disk)) == ["notes.txt", "objects"]
