"""The durability contract (issue 11): when s3free says healed, every object is back at k+m.

Each scenario runs a real server on real disk directories (chaos/served.py), damages the disks
for real while it runs, and holds s3free to what its operator-facing commands say:

- rotation: three rounds, each damaging three *other* disks of RS(6,3) (one emptied, one byte
  flipped in every file of the next, every file of the third cut to half); `disk scrub --wait`
  returning 0 must mean healed, so the next round's damage (three more disks) loses nothing.
  The repair queue is made to lag behind the scrub on purpose (a low repair rate in the config,
  the scrub itself run with --rate 0), and the emptied disk is healed by the disk monitor's
  own repair pass, which scrub --wait must wait for too. At the end the index is deleted and
  rebuilt from the disks: everything listed, everything exact.
- disk-away: a disk renamed away while ~200 objects are written, renamed back; with no
  command run, every object must be back at k+m within a bounded time.
- concurrent-healers: a scrub, a disk heal and heal-on-read over the same objects under client
  load: no version repaired twice for one damage, nothing good quarantined, nothing lost.
- unrepairable-clears: an unrepairable object that is deleted, or overwritten, leaves
  `disk status` and the s3free_unrepairable_objects metric, and stays gone after a restart.

format.json: the emptied disk loses it (that is what `rm -rf disk/*` does: the disk looks brand
new and the monitor formats it back into its slot); the flipped and halved disks keep theirs
(a damaged format.json makes a disk "not this set", never written to: a scenario of its own).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from chaos.data import KIB, MIB, Version
from chaos.faults import FaultLog, empty_disk, flip_every_file, halve_every_file
from chaos.report import Row, finish
from chaos.served import MIN_PART, Obj, Served, outstanding, repaired_lines

ROUNDS = ((0, 1, 2), (3, 4, 5), (6, 7, 8))  # (emptied, flipped, halved) disks per round
SETTLE_S = 120.0  # bound on waiting for the store to settle with no command run
QUARANTINE = ".s3free.quarantine"
GET_STALL_S = 15.0  # a GET of an unrepairable object that says nothing for this long stalled


def _objects(seed: int, buckets: tuple[str, ...], spec, multipart: tuple[int, ...]) -> list[Obj]:
    out, i = [], 0
    for name, size, copies in spec:
        for c in range(copies):
            out.append(Obj(buckets[i % len(buckets)], Version(f"{name}/{c}", 1, size, seed=seed)))
            i += 1
    if multipart:
        v = Version("multipart/0", 1, sum(multipart), parts=multipart, seed=seed)
        out.append(Obj(buckets[i % len(buckets)], v))
    return out


def rotation_objects(seed: int) -> list[Obj]:
    """25 objects over two buckets: 0, 1, 4095, 4096, 64 KiB (three each), 1 MiB - 1, 1 MiB
    (two each), 1 MiB + 1 (three), 5 MiB (two) and a 17 MiB multipart upload."""
    spec = [
        ("empty", 0, 3), ("one-byte", 1, 3), ("page-minus-1", 4095, 3), ("page", 4096, 3),
        ("64k", 64 * KIB, 3), ("mib-minus-1", MIB - 1, 2), ("mib", MIB, 2),
        ("mib-plus-1", MIB + 1, 3), ("5mib", 5 * MIB, 2),
    ]  # fmt: skip
    parts = (MIN_PART, MIN_PART, MIN_PART, 17 * MIB - 3 * MIN_PART)
    return _objects(seed, ("durable-one", "durable-two"), spec, parts)


def _write(served: Served, objs: list[Obj]) -> None:
    client = served.s3()
    for bucket in sorted({o.bucket for o in objs}):
        client.create_bucket(Bucket=bucket)
    for obj in objs:
        served.put(client, obj)


def _wait_settled(served: Served, objs: list[Obj], deadline: float) -> tuple[list[str], dict]:
    """Poll `disk status --json` (and then verify every object) until nothing is outstanding
    or the deadline passes; returns what was still outstanding and the objects not at k+m."""
    left: list[str] = ["never polled"]
    bad: dict[str, str] = {o.name: "never verified" for o in objs}
    todo = list(objs)
    while time.monotonic() < deadline:
        left = outstanding(served.status())
        if not left:
            bad = served.unhealthy(todo)
            if not bad:
                return [], {}
            todo = [o for o in todo if o.name in bad]
        time.sleep(1.0)
    return left, bad


def _describe(left: list[str], bad: dict[str, str]) -> str:
    shown = "; ".join(f"{k}: {v}" for k, v in list(bad.items())[:8])
    return f"status shows {left or 'nothing'}; {len(bad)} object(s) not at k+m: {shown}"


# -- 1. rotation ------------------------------------------------------------------------------


def rotation(seed: int = 1, repair_rate_mb_s: float = 4.0, workdir: Path | None = None) -> Row:
    row = Row("durability-rotation")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-rotation-", dir=workdir))
    log, rng = FaultLog(), random.Random(f"{seed}/rotation")
    # Repairs (the queue worker and the disk heal pass) are paced at repair_rate_mb_s; the
    # scrub is run with --rate 0, so it gets ahead of the queue it has to wait for.
    served = Served(
        root,
        settings={
            "disk_probe_s": 0.2,
            "scrub_rate_mb_s": repair_rate_mb_s,
            "scrub_files_per_s": 0,
        },
    )
    objs = rotation_objects(seed)
    lagged = 0
    try:
        served.start()
        _write(served, objs)
        client = served.s3()
        for r, (emptied, flipped, halved) in enumerate(ROUNDS, 1):
            empty_disk(served.disk(emptied), log)
            flip_every_file(served.disk(flipped), rng, log)
            halve_every_file(served.disk(halved), log)
            problems, nbytes = served.read_back(client, objs, f"round {r} after damage")
            row.problems += problems
            row.bytes_verified += nbytes
            row.problems += served.listing(client, objs, f"round {r} after damage")
            before = outstanding(served.admin().disk_status())
            lagged += bool(before)
            row.notes.append(f"round {r}: when the scrub started: {before or 'nothing pending'}")
            out = served.cli("scrub", "--wait", "--rate", "0", "--json", "--timeout", "600")
            # The moment it returns: what the server says is still pending (no time given).
            after = outstanding(served.admin().disk_status())
            if out.returncode != 0:
                row.problems.append(
                    f"round {r}: disk scrub --wait exited {out.returncode}: "
                    f"{out.stderr.strip()[-500:]} {out.stdout.strip()[-1500:]}"
                )
            else:
                job = json.loads(out.stdout)["job"]
                row.detected = (row.detected or 0) + job.get("shards_bad", 0)
                row.repaired = (row.repaired or 0) + job.get("repaired", 0)
            if after:
                row.problems.append(
                    f"round {r}: disk scrub --wait returned {out.returncode} while disk status "
                    f"still showed: {after}"
                )
        if not lagged:
            row.problems.append(
                "the rig did not make the repair queue lag: nothing was pending when any scrub "
                "started (lower repair_rate_mb_s)"
            )
        left = outstanding(served.status())
        if left:
            row.problems.append(f"after the last scrub, disk status shows: {left}")
        bad = served.unhealthy(objs)
        if bad:
            row.problems.append(f"after the last scrub: {_describe([], bad)}")
        row.problems += _records_whole(served, sorted({o.bucket for o in objs}))
        problems, nbytes = served.read_back(client, objs, "after the last scrub")
        row.problems += problems
        row.bytes_verified += nbytes
        served.stop()
        shutil.rmtree(served.meta)
        log.add("delete-index", str(served.meta))
        served.start()
        client = served.s3()
        row.problems += served.listing(client, objs, "after the index was rebuilt")
        problems, nbytes = served.read_back(client, objs, "after the index was rebuilt")
        row.problems += problems
        row.bytes_verified += nbytes
    except Exception as exc:
        row.problems.append(f"scenario stopped: {exc!r}")
    finally:
        _end(served, row, root, started, log)
    return row


def _records_whole(served: Served, buckets: list[str]) -> list[str]:
    """Every disk holds each bucket's record again (every disk's copy was emptied, flipped or
    halved in some round), valid JSON and the same on all disks."""
    problems = []
    for bucket in buckets:
        copies: dict[bytes, list[int]] = defaultdict(list)
        for i in range(served.disks):
            path = served.disk(i) / "buckets" / f"{bucket}.json"
            try:
                data = path.read_bytes()
                json.loads(data)
            except (OSError, ValueError) as exc:
                problems.append(f"bucket record {bucket} on disk {i}: {exc}")
                continue
            copies[data].append(i)
        if len(copies) > 1:
            problems.append(
                f"bucket record {bucket} differs between disks {sorted(copies.values())}"
            )
    return problems


def _end(served: Served, row: Row, root: Path, started: float, log: FaultLog) -> None:
    served.stop()
    if not row.ok:
        (root / "server.log").write_text(served.log)
        row.notes.append(f"server output in {root / 'server.log'}")
    finish(row, root, started, log)


# -- 2. a disk away while objects are written ---------------------------------------------------


def disk_away(seed: int = 1, small: int = 200, workdir: Path | None = None) -> Row:
    row = Row("durability-disk-away")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-disk-away-", dir=workdir))
    log = FaultLog()
    served = Served(root, settings={"disk_probe_s": 0.2})
    rng = random.Random(f"{seed}/disk-away")
    bucket = "away"
    objs = [
        Obj(
            bucket,
            Version(f"small/{i:03d}", 1, rng.choice((0, 1, 4095, 20_000, 70_000)), seed=seed),
        )
        for i in range(small)
    ]
    objs += [
        Obj(bucket, Version("large/mib-plus-1", 1, MIB + 1, seed=seed)),
        Obj(bucket, Version("large/5mib", 1, 5 * MIB, seed=seed)),
        Obj(bucket, Version("large/multipart", 1, MIN_PART + 7, parts=(MIN_PART, 7), seed=seed)),
    ]  # fmt: skip
    try:
        served.start()
        served.s3().create_bucket(Bucket=bucket)
        away = served.disk(8)
        away.rename(away.with_name("disk8.away"))
        log.add("rename-away", f"{away} -> disk8.away")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if served.status()["disks"][8]["state"] == "offline":
                break
            time.sleep(0.2)
        else:
            row.problems.append("disk 8 renamed away but disk status never showed it offline")
        errors = _write_parallel(served, objs, threads=4)
        row.problems += errors
        away.with_name("disk8.away").rename(away)
        log.add("rename-back", str(away))
        left, bad = _wait_settled(served, objs, time.monotonic() + SETTLE_S)
        if left or bad:
            row.problems.append(
                f"{SETTLE_S:g} s after the disk came back (no command run): {_describe(left, bad)}"
            )
        # The operator's own check, on the large objects and a few small ones.
        failed = []
        for obj in objs[-3:] + objs[:: max(1, small // 5)]:
            out = served.cli("verify", obj.bucket, obj.key, timeout=120)
            if out.returncode != 0:
                bad = [ln.split() for ln in out.stdout.splitlines() if "missing" in ln]
                failed.append(f"{obj.name} exit {out.returncode} ({len(bad)} lines 'missing')")
        if failed:
            row.problems.append(f"s3free disk verify not 0 for: {'; '.join(failed)}")
        problems, nbytes = served.read_back(served.s3(), objs, "after the disk came back")
        row.problems += problems
        row.bytes_verified += nbytes
    except Exception as exc:
        row.problems.append(f"scenario stopped: {exc!r}")
    finally:
        back = served.disk(8).with_name("disk8.away")
        if back.exists() and not served.disk(8).exists():
            back.rename(served.disk(8))
        _end(served, row, root, started, log)
    return row


def _write_parallel(served: Served, objs: list[Obj], threads: int) -> list[str]:
    errors: list[str] = []
    chunks = [objs[i::threads] for i in range(threads)]

    def work(mine: list[Obj]) -> None:
        client = served.s3()
        for obj in mine:
            try:
                served.put(client, obj)
            except Exception as exc:
                errors.append(f"PUT {obj.name} with a disk away failed: {exc!r}")

    workers = [threading.Thread(target=work, args=(c,), daemon=True) for c in chunks]
    for w in workers:
        w.start()
    for w in workers:
        w.join(600)
    return errors


# -- 3. concurrent healers ----------------------------------------------------------------------

_SHARD = re.compile(
    r"objects/../../([0-9a-f]{32})(?:/([0-9a-f]{32})/part\.(\d{5})|\.([0-9a-f]{32})\.inline)$"
)
_QUARANTINED = re.compile(r"^\d+-([0-9a-f]{32})-([0-9a-f]{32})-part\.(\d{5})$")


def _shard_ids(root: Path, paths: list[Path]) -> set[tuple[str, str, int]]:
    """(object id, version hex, part) of the shard files among paths (inline files: part 1)."""
    out = set()
    for path in paths:
        m = _SHARD.search(path.relative_to(root).as_posix())
        if m and m[2]:
            out.add((m[1], m[2], int(m[3])))
        elif m:
            out.add((m[1], m[4], 1))
    return out


def quarantined(root: Path) -> list[tuple[str, str, int]]:
    """(object id, version hex, part) of every file in a disk's quarantine (one per file)."""
    qdir = root / QUARANTINE
    out = []
    for path in sorted(qdir.iterdir()) if qdir.is_dir() else []:
        m = _QUARANTINED.match(path.name)
        out.append((m[1], m[2], int(m[3])) if m else ("?", path.name, 0))
    return out


def concurrent_healers(seed: int = 1, load_ops: int = 200, workdir: Path | None = None) -> Row:
    row = Row("durability-concurrent-healers")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-healers-", dir=workdir))
    log, rng = FaultLog(), random.Random(f"{seed}/healers")
    served = Served(
        root, settings={"disk_probe_s": 0.2, "scrub_rate_mb_s": 16, "scrub_files_per_s": 0}
    )
    spec = [
        ("empty", 0, 2), ("small", 3000, 6), ("64k", 64 * KIB, 6), ("mib-plus-1", MIB + 1, 6),
        ("3mib", 3 * MIB + 5, 4),
    ]  # fmt: skip
    objs = _objects(seed, ("healers",), spec, (MIN_PART, 1000))
    try:
        served.start()
        _write(served, objs)
        client = served.s3()
        client.create_bucket(Bucket="load")
        # One damage event for every object: three of its nine shards, each a different way.
        empty_disk(served.disk(0), log)
        damaged = {
            1: _shard_ids(served.disk(1), flip_every_file(served.disk(1), rng, log)),
            2: _shard_ids(served.disk(2), halve_every_file(served.disk(2), log)),
        }
        load = _Load(served, load_ops, seed)
        load.start()
        reads: list[str] = []
        reader = threading.Thread(
            target=lambda: reads.extend(served.read_back(served.s3(), objs, "heal-on-read")[0]),
            daemon=True,
        )
        reader.start()
        out = served.cli("scrub", "--json")
        if out.returncode != 0:
            raise RuntimeError(f"disk scrub exited {out.returncode}: {out.stderr}")
        job_id = json.loads(out.stdout)["job"]["id"]
        reader.join(600)
        out = served.cli("job", job_id, "--wait", "--json", "--timeout", "600")
        if out.returncode != 0:
            row.problems.append(
                f"disk job {job_id} --wait exited {out.returncode}: {out.stdout[-800:]}"
            )
        load.stop.set()
        load.join(300)
        row.problems += reads + load.errors
        row.notes.append(f"load: {load.done} PUT/GETs during the healing")
        left, bad = _wait_settled(served, objs, time.monotonic() + SETTLE_S)
        if left or bad:
            row.problems.append(f"after the scrub and {SETTLE_S:g} s: {_describe(left, bad)}")
        row.problems += _exercised(served, objs)
        row.problems += _check_generations(served, objs)
        row.problems += _check_quarantine(served, damaged)
        problems, nbytes = served.read_back(client, objs, "after the healing")
        row.problems += problems
        row.bytes_verified += nbytes
        problems, nbytes = served.read_back(client, load.acked(), "load keys")
        row.problems += problems
        row.bytes_verified += nbytes
    except Exception as exc:
        row.problems.append(f"scenario stopped: {exc!r}")
    finally:
        _end(served, row, root, started, log)
    return row


class _Load(threading.Thread):
    """A bounded loop of PUTs and GETs of other keys (their own bucket) until told to stop."""

    def __init__(self, served: Served, ops: int, seed: int) -> None:
        super().__init__(daemon=True)
        self.served, self.ops, self.seed = served, ops, seed
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.done = 0
        self._acked: dict[str, Obj] = {}

    def acked(self) -> list[Obj]:
        return list(self._acked.values())

    def run(self) -> None:
        client, rng = self.served.s3(), random.Random(f"{self.seed}/load")
        deadline = time.monotonic() + 300
        for i in range(self.ops):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            key = f"load/{rng.randrange(20)}"
            try:
                if key in self._acked and rng.random() < 0.5:
                    obj = self._acked[key]
                    problems, _ = self.served.read_back(client, [obj], "load GET")
                    self.errors += problems
                else:
                    size = rng.choice((0, 100, 5000, 200_000, MIB + 3))
                    obj = Obj("load", Version(key, i + 1, size, seed=self.seed))
                    self.served.put(client, obj)
                    self._acked[key] = obj
                self.done += 1
            except Exception as exc:
                self.errors.append(f"load op {i} on {key}: {exc!r}")


def _exercised(served: Served, objs: list[Obj]) -> list[str]:
    """The healing this scenario is about happened: the emptied disk was formatted back and
    healed, and most damaged objects were repaired (else its checks would hold vacuously)."""
    problems = []
    if not re.search(r"disk \S*disk0 healed", served.log):
        problems.append("the emptied disk 0 was never healed (no 'disk ... disk0 healed' line)")
    repaired = {key for b, key, *_ in repaired_lines(served.log) if b == "healers"}
    if len(repaired) < len(objs) // 2:
        problems.append(f"only {len(repaired)} of {len(objs)} damaged objects were repaired")
    return problems


def _check_generations(served: Served, objs: list[Obj]) -> list[str]:
    """One damage event per version: a new object (generation 1) must end at generation 2 at
    most, and its repairs together rebuild at most the shards damaged (three per part: the
    emptied, flipped and halved disks'). More means two healers repaired it for one damage
    (the second rebuilding shards the first had just made good)."""
    parts = {o.key: max(1, len(o.version.parts)) for o in objs}
    per: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for bucket, key, vid, rebuilt, generation in repaired_lines(served.log):
        if bucket == "healers":
            per[(key, vid)].append((rebuilt, generation))
    problems = []
    for (key, vid), lines in sorted(per.items()):
        top = max(g for _, g in lines)
        rebuilt = sum(r for r, _ in lines)
        if top > 2 or rebuilt > 3 * parts.get(key, 1):
            problems.append(
                f"healers/{key} ({vid}) repaired {len(lines)} times for one damage: "
                f"{rebuilt} shards rebuilt (at most {3 * parts.get(key, 1)} were damaged), "
                f"generations {[g for _, g in lines]}"
            )
    return problems


def _check_quarantine(served: Served, damaged: dict[int, set]) -> list[str]:
    """Every quarantined file was a shard file damaged on that disk, and none twice."""
    problems = []
    for i in range(served.disks):
        seen: dict[tuple, int] = defaultdict(int)
        for ident in quarantined(served.disk(i)):
            seen[ident] += 1
        for ident, count in sorted(seen.items()):
            if ident not in damaged.get(i, set()):
                problems.append(
                    f"disk {i}: good shard quarantined: object {ident[0]} "
                    f"version {ident[1]} part {ident[2]}"
                )
            elif count > 1:
                problems.append(
                    f"disk {i}: shard quarantined {count} times (a rebuilt good "
                    f"copy among them): object {ident[0]} version {ident[1]}"
                )
    return problems


# -- 4. unrepairable records clear --------------------------------------------------------------


def _version_dirs(served: Served) -> set[Path]:
    return {p.parent for p in served.root.glob("disk*/objects/*/*/*/*/part.*")}


def unrepairable_clears(seed: int = 1, workdir: Path | None = None) -> Row:
    row = Row("durability-unrepairable-clears")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-unrepairable-", dir=workdir))
    log = FaultLog()
    served = Served(root, settings={"disk_probe_s": 0.2})
    bucket = "doomed"
    fine = Obj(bucket, Version("fine", 1, MIB + 1, seed=seed))
    try:
        served.start()
        client = served.s3()
        client.create_bucket(Bucket=bucket)
        served.put(client, fine)
        for key, action in (("deleted", "DELETE"), ("overwritten", "overwrite")):
            doomed = Obj(bucket, Version(key, 1, 3 * MIB, seed=seed))
            before = _version_dirs(served)
            served.put(client, doomed)
            dirs = sorted(_version_dirs(served) - before)
            if len(dirs) != served.disks:
                raise RuntimeError(f"{doomed.name}: {len(dirs)} shard directories, expected 9")
            for d in dirs[:4]:  # 4 of 9 disks: one more than m=3
                for f in d.glob("part.*"):
                    f.unlink()
                    log.add("delete-shard", str(f))
            try:  # a short read timeout: the failure shows as an error or as a stall
                served.s3(read_timeout=GET_STALL_S).get_object(Bucket=bucket, Key=key)[
                    "Body"
                ].read()
                row.problems.append(f"GET {doomed.name} with 4 of 9 shards gone succeeded")
            except Exception as exc:
                row.notes.append(f"GET {doomed.name} failed: {exc!r}")
            name = doomed.name
            listed = _poll(lambda name=name: name in _unrepairable(served), 60)
            if not listed:
                row.problems.append(f"{doomed.name} never listed as unrepairable by disk status")
                continue
            if action == "DELETE":
                client.delete_object(Bucket=bucket, Key=key)
            else:
                doomed = Obj(bucket, Version(key, 2, 3 * MIB, seed=seed))
                served.put(client, doomed)
            row.problems += _cleared(served, doomed.name, f"after {action}")
            if action == "overwrite":
                problems, nbytes = served.read_back(client, [doomed], "the overwrite")
                row.problems += problems
                row.bytes_verified += nbytes
        served.stop()
        served.start()
        row.problems += _cleared(served, "", "after a restart")
        problems, nbytes = served.read_back(served.s3(), [fine], "after a restart")
        row.problems += problems
        row.bytes_verified += nbytes
    except Exception as exc:
        row.problems.append(f"scenario stopped: {exc!r}")
    finally:
        _end(served, row, root, started, log)
    return row


def _unrepairable(served: Served) -> list[str]:
    heal = served.status().get("heal") or {}
    return [f"{u['bucket']}/{u['key']}" for u in heal.get("unrepairable") or []]


def _poll(cond, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.3)
    return False


def _cleared(served: Served, name: str, where: str) -> list[str]:
    """No unrepairable record left (for name, or any when name is ""), and the metric at 0,
    within a bounded wait."""

    def clear() -> bool:
        left = _unrepairable(served)
        return (
            not (name in left if name else left)
            and served.metric("s3free_unrepairable_objects") == 0
        )

    if _poll(clear, 30):
        return []
    return [
        f"{where}: disk status still lists unrepairable {_unrepairable(served)}, "
        f"s3free_unrepairable_objects = {served.metric('s3free_unrepairable_objects')}"
    ]
