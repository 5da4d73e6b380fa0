"""Crash consistency: a real child process writing to a real store is SIGKILLed at random.

tests/crash_child.py puts, multipart-uploads and deletes keys whose content is a function of
(key, generation), announcing each operation before it starts (BEGIN) and after it returns
(ACK). The test kills it with SIGKILL at a random moment, reopens the same disks and checks
what docs/architecture.md ("Write path") promises ("a crash at any point leaves either the old
object or the new one, and only temp files, which start-up removes"):

- every key reads byte for byte as its last known state (the last ACK, or what the previous
  check observed) or, for the one operation in flight at the kill, its result (new content,
  or absent for a delete) -- never a mix, never anything else;
- once a state was observed after a crash it stays: a later restart (or an index rebuild from
  the disks) must not bring back an older or unacknowledged version;
- no file is left in any disk's .s3free.tmp after start-up;
- the listing names exactly the keys that read, with their sizes and S3 ETags (computed here
  from the content: MD5, or MD5 of the part MD5s "-N" for multipart);
- reading raises no shard fault (a kill does not damage files the engine fsynced).

Rounds restart the child on the same disks; every third round deletes the index first
(rebuild on open), and a final check rebuilds the index from the disks once more. Kill times
are random, so a failure names its seed (CRASH_SEED=<seed> replays the same operations and
delays, though not the same instant of death).

The exact-point tests put the crash where the random rounds only sometimes land: the child's
disks are FaultyDisks that SIGKILL the process at the N-th matching call (crash_child.py
--die-at), e.g. right after the first manifest of an overwrite is written.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from s3free.errors import NoSuchKey
from tests.crash_child import BUCKET, KEYS, content, disk_paths, open_store, part_splits
from tests.support.engine import run

CHILD = Path(__file__).with_name("crash_child.py")
REPO = Path(__file__).resolve().parent.parent
TMP_DIR = ".s3free.tmp"


@dataclass
class Model:
    """What the parent knows: each key's state (a generation, or None when absent), how each
    generation was written, and every generation ever started (to name a resurrected one)."""

    state: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(KEYS))
    how: dict[int, str] = field(default_factory=dict)  # gen -> "put" | "mpu"
    started: dict[str, set[int]] = field(default_factory=lambda: {k: set() for k in KEYS})
    events: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in KEYS})

    def story(self, key: str) -> str:
        """The last events of one key, for failure messages."""
        return "; ".join(self.events[key][-8:])


@dataclass(frozen=True)
class InFlight:
    op: str
    key: str
    gen: int | None  # None for a delete

    @property
    def result(self) -> int | None:
        return None if self.op == "del" else self.gen


def expected_etag(model: Model, key: str, gen: int) -> str:
    data = content(key, gen)
    if model.how[gen] == "put":
        return hashlib.md5(data).hexdigest()
    md5s = b"".join(hashlib.md5(data[a:b]).digest() for a, b in part_splits(key, gen))
    return f"{hashlib.md5(md5s).hexdigest()}-{len(part_splits(key, gen))}"


def temp_files(root: Path) -> list[Path]:
    found = []
    for disk in disk_paths(root):
        tmp = disk / TMP_DIR
        if tmp.is_dir():
            found.extend(tmp.iterdir())
    return found


# -- one life of the child ----------------------------------------------------------------------


@dataclass
class Life:
    lines: list[str]
    killed: bool  # False when the child finished on its own bounds first
    stderr: str


def live_and_die(
    root: Path,
    seed: int,
    gen_base: int,
    rng: random.Random | None,
    early: bool = False,
    extra: tuple[str, ...] = (),
) -> Life:
    """Start the child, SIGKILL it at a random moment (after READY, or for an early kill at any
    moment from spawn on, start-up included), and collect every line it flushed. Without rng
    the child is left to die on its own (--die-at) or to finish."""
    err_path = root / f"child-{gen_base}.err"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [str(root), str(seed), str(gen_base), "--max-seconds", "20", *extra]
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
    lines: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill was never fully announced
                lines.append(line[:-1])
            if line.startswith("READY"):
                ready.set()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    killed = False
    try:
        if rng is None:
            proc.wait(timeout=60)
        elif early:
            time.sleep(rng.uniform(0.0, 0.8))
        else:
            if not ready.wait(timeout=30):
                raise AssertionError(f"child never got READY: {err_path.read_text()[-2000:]}")
            time.sleep(rng.uniform(0.02, 1.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        thread.join(timeout=30)
    stderr = err_path.read_text()
    died = proc.returncode == -signal.SIGKILL
    if not killed and proc.returncode != 0 and not (rng is None and died):
        raise AssertionError(f"child failed on its own (rc {proc.returncode}): {stderr[-3000:]}")
    return Life(lines, killed or died, stderr)


def replay(model: Model, life: Life, where: str) -> InFlight | None:
    """Apply the acknowledged operations to the model; return the one left in flight."""
    inflight: InFlight | None = None
    for line in life.lines:
        word, *rest = line.split()
        if word in ("BEGIN", "ACK"):
            model.events[rest[1]].append(f"{where.split(' (')[0]}: {line}")
        if word == "BEGIN":
            op, key, gen_text = rest
            assert inflight is None, f"{where}: two operations in flight: {line}"
            gen = None if op == "del" else int(gen_text)
            inflight = InFlight(op, key, gen)
            if gen is not None:
                model.how[gen] = op
                model.started[key].add(gen)
        elif word == "ACK":
            op, key, gen_text = rest
            gen = None if op == "del" else int(gen_text)
            assert inflight == InFlight(op, key, gen), f"{where}: ACK without BEGIN: {line}"
            model.state[key] = inflight.result
            inflight = None
    return inflight


# -- the check after a kill ---------------------------------------------------------------------


def check_store(root: Path, model: Model, inflight: InFlight | None, where: str) -> dict:
    """Reopen the disks, check every promise listed in the module docstring, and return the
    observed state of every key."""

    async def main() -> dict:
        store = await open_store(root)
        try:
            left = temp_files(root)
            assert not left, f"{where}: temp files survived start-up: {left[:5]}"
            listing = await store.list_objects(BUCKET, max_keys=1000)
            assert not listing.is_truncated
            listed = {o.key: o for o in listing.objects}
            assert set(listed) <= set(KEYS), f"{where}: unknown keys listed: {sorted(listed)}"
            observed: dict[str, int | None] = {}
            for key in KEYS:
                allowed = {model.state[key]}
                if inflight is not None and inflight.key == key:
                    allowed.add(inflight.result)
                try:
                    data = await store.get_object_bytes(BUCKET, key)
                except NoSuchKey:
                    data = None
                except Exception as exc:
                    raise AssertionError(
                        f"{where}: reading {key} failed: {exc!r}; history: {model.story(key)}"
                    ) from exc
                if data is None:
                    assert None in allowed, (
                        f"{where}: {key} is missing; expected generation(s) {allowed}; "
                        f"history: {model.story(key)}"
                    )
                    assert key not in listed, f"{where}: {key} listed but does not read"
                    observed[key] = None
                    if inflight is not None and inflight.key == key:
                        model.events[key].append(f"{where.split(' (')[0]}: observed absent")
                    continue
                head = await store.head_object(BUCKET, key)
                # Several generations may share content (e.g. empty): the ETag tells put from
                # multipart, so match on both.
                match = [
                    g
                    for g in allowed
                    if g is not None
                    and content(key, g) == data
                    and expected_etag(model, key, g) == head.etag
                ]
                if not match:
                    other = [g for g in model.started[key] if content(key, g) == data]
                    raise AssertionError(
                        f"{where}: {key} reads {len(data)} bytes (ETag {head.etag}) that are "
                        f"none of {allowed} (the bytes are generation(s) "
                        f"{other or 'none: corrupt'}); in flight at the kill: {inflight}; "
                        f"history: {model.story(key)}"
                    )
                observed[key] = match[0]
                if inflight is not None and inflight.key == key:
                    model.events[key].append(f"{where.split(' (')[0]}: observed {match[0]}")
                assert key in listed, f"{where}: {key} reads but is not listed"
                assert (listed[key].size, listed[key].etag) == (len(data), head.etag), (
                    f"{where}: {key} listing disagrees with the object"
                )
                assert head.size == len(data)
            assert not store.recent_faults, (
                f"{where}: shard faults: {list(store.recent_faults)[:3]}"
            )
            return observed
        finally:
            await store.close()

    return run(main())


# -- the scenario -------------------------------------------------------------------------------


def crash_rounds(root: Path, rounds: int, rebuild_every: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    model = Model()
    stats = {"kills": 0, "inflight": 0, "acks": 0, "rebuilds": 0, "temp_files_left": 0}
    for i in range(rounds):
        where = f"seed {seed} round {i}"
        rebuild = i % rebuild_every == rebuild_every - 1
        if rebuild:
            shutil.rmtree(root / "meta", ignore_errors=True)
            stats["rebuilds"] += 1
            where += " (index deleted before restart)"
        # Round 0 formats the set and creates the bucket: only kill it once it is READY.
        early = i > 0 and rng.random() < 0.2
        life = live_and_die(root, seed * 1000 + i, (i + 1) * 1_000_000, rng, early)
        inflight = replay(model, life, where)
        stats["kills"] += life.killed
        stats["inflight"] += inflight is not None
        stats["acks"] += sum(line.startswith("ACK") for line in life.lines)
        stats["temp_files_left"] += len(temp_files(root))  # by the kill, for start-up to remove
        model.state = check_store(root, model, inflight, where)
    # Finally the disks alone must tell the same story: rebuild the index and check again.
    shutil.rmtree(root / "meta")
    model.state = check_store(root, model, None, f"seed {seed} final rebuild from the disks")
    return stats


# -- crashes at exact points --------------------------------------------------------------------


def delete_key(root: Path, key: str) -> None:
    async def main() -> None:
        store = await open_store(root)
        try:
            await store.delete_object(BUCKET, key)
        finally:
            await store.close()

    run(main())


@pytest.mark.parametrize(
    "die_at",
    [
        # the first manifest of the second put is on disk; the index still names the first
        "write_file:/manifest:7:after",
        # the second put is acknowledged; removing the replaced version had not started
        "remove_tree:objects/:1:before",
    ],
)
def test_crash_leftover_version_stays_dead_after_delete_and_rebuild(tmp_path, die_at):
    """Two puts of k0, a crash at an exact point, then a delete after the restart: the key must
    stay deleted when the index is later rebuilt from the disks (no older or unacknowledged
    version comes back from the dead)."""
    model = Model()
    life = live_and_die(
        tmp_path, 1, 1_000_000, None, extra=("--ops", "put k0,put k0", "--die-at", die_at)
    )
    assert life.killed, f"the child did not reach {die_at}: {life.lines} {life.stderr[-2000:]}"
    inflight = replay(model, life, die_at)
    assert "ACK put k0 1000001" in life.lines, life.lines
    model.state = check_store(tmp_path, model, inflight, f"{die_at}: after the crash")
    assert model.state["k0"] is not None
    delete_key(tmp_path, "k0")
    model.state["k0"] = None
    shutil.rmtree(tmp_path / "meta")
    check_store(tmp_path, model, None, f"{die_at}: deleted after the crash, index rebuilt")


def test_crash_during_multipart_complete_then_retry(tmp_path):
    """A crash while CompleteMultipartUpload writes its manifests (before the index switch):
    after the restart the key is absent (the complete was never acknowledged), and the
    client's retry of the same complete succeeds with the whole object."""
    model = Model()
    die_at = "write_file:/manifest:1:after"
    life = live_and_die(tmp_path, 1, 1_000_000, None, extra=("--ops", "mpu k0", "--die-at", die_at))
    assert life.killed, f"the child did not reach {die_at}: {life.lines} {life.stderr[-2000:]}"
    inflight = replay(model, life, die_at)
    assert inflight == InFlight("mpu", "k0", 1_000_001), life.lines
    _, key, upload, pairs = next(line for line in life.lines if line.startswith("PARTS")).split()
    parts = [(int(n), etag) for n, etag in (p.split(":") for p in pairs.split(","))]
    model.state = check_store(tmp_path, model, inflight, f"{die_at}: after the crash")
    assert model.state[key] is None  # the index switch comes after every manifest

    async def retry() -> None:
        store = await open_store(tmp_path)
        try:
            await store.complete_multipart_upload(BUCKET, key, upload, parts)
        finally:
            await store.close()

    run(retry())
    model.state[key] = 1_000_001
    model.state = check_store(tmp_path, model, None, f"{die_at}: complete retried")
    shutil.rmtree(tmp_path / "meta")
    check_store(tmp_path, model, None, f"{die_at}: complete retried, index rebuilt")


@pytest.mark.parametrize("rebuild", [False, True], ids=["index", "rebuilt"])
def test_crash_after_complete_switched_forgets_the_upload(tmp_path, rebuild):
    """A SIGKILL after CompleteMultipartUpload made the object visible but before it forgot
    the upload: after the restart the object is whole and the upload is no longer listed
    (nor its staging files left on any disk), also when the index is rebuilt from the disks."""
    model = Model()
    die_at = "remove_tree:multipart/:1:before"  # the switch is done; the upload is not dropped
    life = live_and_die(tmp_path, 1, 1_000_000, None, extra=("--ops", "mpu k0", "--die-at", die_at))
    assert life.killed, f"the child did not reach {die_at}: {life.lines} {life.stderr[-2000:]}"
    inflight = replay(model, life, die_at)
    assert inflight == InFlight("mpu", "k0", 1_000_001), life.lines
    _, key, upload, _ = next(line for line in life.lines if line.startswith("PARTS")).split()
    staging = [d / "multipart" / upload for d in disk_paths(tmp_path)]
    assert all(p.exists() for p in staging)  # the kill came before any was removed
    if rebuild:
        shutil.rmtree(tmp_path / "meta")
    model.state = check_store(tmp_path, model, inflight, f"{die_at}: after the crash")
    assert model.state[key] == 1_000_001  # the switch had happened: the object is there

    async def uploads() -> list:
        store = await open_store(tmp_path)
        try:
            return (await store.list_multipart_uploads(BUCKET))[0]
        finally:
            await store.close()

    assert run(uploads()) == [], "the completed upload is still listed"
    assert not [p for p in staging if p.exists()], "staging files of the completed upload left"
    shutil.rmtree(tmp_path / "meta")
    check_store(tmp_path, model, None, f"{die_at}: index rebuilt after the restart")
    assert run(uploads()) == []


def _seed() -> int:
    return int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1, 10**6))


def test_sigkill_rounds_keep_old_or_new(tmp_path):
    started = time.monotonic()
    stats = crash_rounds(tmp_path, rounds=10, rebuild_every=3, seed=_seed())
    assert stats["kills"] == 10, stats  # the child runs 20 s; it is killed long before
    assert stats["acks"] > 0, stats
    assert time.monotonic() - started < 120


@pytest.mark.slow
def test_sigkill_many_rounds(tmp_path):
    stats = crash_rounds(tmp_path, rounds=60, rebuild_every=6, seed=_seed())
    assert stats["kills"] >= 50 and stats["inflight"] >= 40, stats
    assert stats["temp_files_left"] > 0, stats  # the temp-file check was not vacuous
