"""Fault injectors working on the real files of the disk directories.

Each injector damages real bytes on disk (never a mock) and records what it did in a FaultLog.
A Budget keeps the damage within what erasure coding promises to survive: at most m distinct
shard indices of any one object are touched (so at most m bad shards in any block), unless a
scenario asks for data loss on purpose.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chaos.locate import Layout, is_inline
from s3free.format.manifest import Manifest
from s3free.storage.faulty import flip_bit

REGIONS = ("payload", "header", "footer")


@dataclass
class FaultLog:
    """What was injected: counts by kind, and a line per fault for failure messages."""

    kinds: Counter = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def add(self, kind: str, what: str) -> None:
        self.kinds[kind] += 1
        self.lines.append(f"{kind}: {what}")

    @property
    def shard_damage(self) -> int:
        """Faults that a read of every object must notice (manifest copies and the index are
        not read by GET, so their loss shows only to a scrub or a restart)."""
        quiet = ("delete-manifest", "delete-index", "corrupt-index")
        return sum(n for kind, n in self.kinds.items() if kind not in quiet)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())

    def summary(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.kinds.items())) or "none"


class Budget:
    """Shard indices already damaged per object (by version id), capped at m."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.used: dict[str, set[int]] = {}

    def can(self, manifest: Manifest, shard: int) -> bool:
        used = self.used.get(manifest.version_id, set())
        return shard in used or len(used) < self.m

    def take(self, manifest: Manifest, shard: int) -> bool:
        if not self.can(manifest, shard):
            return False
        self.used.setdefault(manifest.version_id, set()).add(shard)
        return True

    def pick(self, rng: random.Random, manifest: Manifest, fresh: bool = True) -> int | None:
        """A shard index of this object that may still be damaged (None: budget spent); with
        fresh, only one not damaged yet (so a deleted file is not damaged twice)."""
        used = self.used.get(manifest.version_id, set())
        choices = [
            j
            for j in range(manifest.k + manifest.m)
            if self.can(manifest, j) and not (fresh and j in used)
        ]
        if not choices:
            return None
        shard = rng.choice(choices)
        self.take(manifest, shard)
        return shard


class Injector:
    def __init__(self, layout: Layout, rng: random.Random, budget: Budget, log: FaultLog):
        self.layout = layout
        self.rng = rng
        self.budget = budget
        self.log = log

    # -- bit flips ------------------------------------------------------------------------

    def bitflip(self, manifest: Manifest, region: str | None = None) -> bool:
        """Flip one random bit in one record's payload, header or footer of one shard."""
        shard = self.budget.pick(self.rng, manifest, fresh=False)
        if shard is None:
            return False
        part = self.rng.choice(manifest.parts).number
        span = self.rng.choice(self.layout.records(manifest, part, shard))
        region = region or self.rng.choice(REGIONS)
        if region == "payload" and span.payload_length == 0:
            region = "header"
        lo, hi = getattr(span, region)
        offset = self.rng.randrange(lo, hi)
        flip_bit(span.path, offset, self.rng.randrange(8))
        self.log.add(f"bitflip-{region}", f"{span.path} @{offset} (shard {shard})")
        return True

    # -- whole shard files ------------------------------------------------------------------

    def _shard_target(self, manifest: Manifest) -> tuple[int, int, Path, int] | None:
        shard = self.budget.pick(self.rng, manifest)
        if shard is None:
            return None
        part = self.rng.choice(manifest.parts).number
        path, base = self.layout.shard_file(manifest, part, shard)
        return shard, part, path, base

    def truncate(self, manifest: Manifest) -> bool:
        target = self._shard_target(manifest)
        if target is None:
            return False
        shard, _, path, base = target
        size = path.stat().st_size
        new = self.rng.randrange(base, size) if size > base else base
        os.truncate(path, new)
        self.log.add("truncate", f"{path} {size} -> {new} bytes (shard {shard})")
        return True

    def zero_fill(self, manifest: Manifest) -> bool:
        """Zero one whole record (a lost sector range), or the rest of the file."""
        target = self._shard_target(manifest)
        if target is None:
            return False
        shard, part, path, _ = target
        span = self.rng.choice(self.layout.records(manifest, part, shard))
        with open(path, "r+b") as f:
            f.seek(span.offset)
            f.write(bytes(span.end - span.offset))
        self.log.add("zero-fill", f"{path} {span.offset}..{span.end} (shard {shard})")
        return True

    def delete_shard(self, manifest: Manifest) -> bool:
        if is_inline(manifest):  # the shard lives in the manifest file: deleting is the same
            return self.delete_manifest(manifest, count=1, counts_as_shard=True)
        target = self._shard_target(manifest)
        if target is None:
            return False
        shard, _, path, _ = target
        path.unlink()
        self.log.add("delete-shard", f"{path} (shard {shard})")
        return True

    def delete_manifest(
        self, manifest: Manifest, count: int, counts_as_shard: bool = False
    ) -> bool:
        """Delete `count` manifest copies (never all: the disks must still name the object).
        For an inline object a manifest copy is also a shard, so it spends the budget."""
        count = min(count, len(manifest.placement) - 1)
        done = 0
        for shard in self.rng.sample(range(len(manifest.placement)), len(manifest.placement)):
            if done == count:
                break
            if (is_inline(manifest) or counts_as_shard) and not self.budget.take(manifest, shard):
                continue
            path = self.layout.manifest_files(manifest)[shard]
            if path.exists():
                path.unlink()
                done += 1
                self.log.add("delete-manifest", f"{path} (shard {shard})")
        return done > 0

    def swap(self, a: Manifest, b: Manifest) -> bool:
        """Exchange one shard file of object a with one of object b (same shard index, so
        both files sit where a shard of that index is expected; only the ids differ)."""
        shard = next(
            (
                j
                for j in self.rng.sample(range(a.k + a.m), a.k + a.m)
                if self.budget.can(a, j) and self.budget.can(b, j)
            ),
            None,
        )
        if shard is None:
            return False
        self.budget.take(a, shard)
        self.budget.take(b, shard)
        pa, base_a = self.layout.shard_file(a, 1, shard)
        pb, base_b = self.layout.shard_file(b, 1, shard)
        _swap_tails(pa, base_a, pb, base_b)
        self.log.add("swap", f"{pa} <-> {pb} (shard {shard})")
        return True


def _swap_tails(pa: Path, base_a: int, pb: Path, base_b: int) -> None:
    """Exchange the records of two shards: everything after base_a in pa with everything
    after base_b in pb (bases are 0 for part files, the envelope length for inline objects,
    whose manifests stay in place). Streams through temp files; nothing whole in memory."""
    ta, tb = pa.with_name(pa.name + ".chaos-a"), pb.with_name(pb.name + ".chaos-b")
    for dst, keep, keep_base, tail, tail_base in (
        (ta, pa, base_a, pb, base_b),
        (tb, pb, base_b, pa, base_a),
    ):
        with open(dst, "wb") as out, open(keep, "rb") as head, open(tail, "rb") as rest:
            out.write(head.read(keep_base))
            rest.seek(tail_base)
            shutil.copyfileobj(rest, out, 1 << 20)
    os.replace(ta, pa)
    os.replace(tb, pb)


# -- whole disks and the index ----------------------------------------------------------------


def wipe_disk(root: Path, log: FaultLog, keep_format: bool = True) -> int:
    """Remove everything on a disk (but format.json when keep_format: a fresh disk already
    formatted into the slot); returns the number of files removed."""
    removed = 0
    for entry in list(root.iterdir()):
        if keep_format and entry.name == "format.json":
            continue
        if entry.is_dir():
            removed += sum(len(files) for _, _, files in os.walk(entry))
            shutil.rmtree(entry)
        else:
            entry.unlink()
            removed += 1
    log.add("wipe-disk", f"{root} ({removed} files)")
    return removed


def delete_index(meta: Path, log: FaultLog) -> None:
    shutil.rmtree(meta)
    log.add("delete-index", str(meta))


def corrupt_index(meta: Path, rng: random.Random, log: FaultLog, how: str) -> None:
    """Damage the LevelDB directory of a stopped store: "current" (garbage in CURRENT),
    "manifest" (MANIFEST-* truncated), "tables" (bit flips through every .ldb/.log file)."""
    files = sorted(meta.iterdir())
    if how == "current":
        (meta / "CURRENT").write_bytes(b"\x00garbage\n")
        log.add("corrupt-index", "CURRENT overwritten")
    elif how == "manifest":
        for path in files:
            if path.name.startswith("MANIFEST-"):
                os.truncate(path, path.stat().st_size // 3)
                log.add("corrupt-index", f"{path.name} truncated")
    elif how == "tables":
        for path in files:
            if path.suffix in (".ldb", ".log") and path.stat().st_size > 0:
                for _ in range(8):
                    flip_bit(path, rng.randrange(path.stat().st_size), rng.randrange(8))
                log.add("corrupt-index", f"{path.name}: 8 bit flips")
    else:
        raise ValueError(how)


# -- every file of a disk (the durability scenarios) -------------------------------------------

KEEP_FORMAT = ("format.json",)  # a disk's identity: damaging it is a scenario of its own


def disk_files(root: Path, keep: tuple[str, ...] = KEEP_FORMAT) -> list[Path]:
    """Every regular file under a disk (manifests, inline files, shard files, bucket records,
    upload records, trackers, quarantined files), but the top-level files named in keep."""
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.parent == root and name in keep:
                continue
            if path.is_file() and not path.is_symlink():
                out.append(path)
    return sorted(out)


def empty_disk(root: Path, log: FaultLog) -> list[Path]:
    """`rm -rf disk/*`: everything goes, format.json too (the disk looks brand new)."""
    files = disk_files(root, keep=())
    # format.json first, as an operator's wipe that the server must not race: once it is gone
    # no write makes a data directory again, so the directory ends up empty (a write landing
    # between the removal of objects/ and of format.json would leave a "not empty" disk that
    # waits for the operator, a case of its own).
    (root / "format.json").unlink(missing_ok=True)
    for entry in list(root.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    log.add("empty-disk", f"{root} ({len(files)} files, format.json included)")
    return files


def flip_every_file(root: Path, rng: random.Random, log: FaultLog) -> list[Path]:
    """One byte inverted at a random offset of every file but format.json (empty files have
    no byte to flip and are left as they are)."""
    done = []
    for path in disk_files(root):
        try:
            size = path.stat().st_size
            if size == 0:
                continue
            offset = rng.randrange(size)
            with open(path, "r+b") as f:
                f.seek(offset)
                byte = f.read(1)
                f.seek(offset)
                f.write(bytes([byte[0] ^ 0xFF]))
        except FileNotFoundError:
            continue  # a temp file the running server renamed meanwhile (a repair, a record)
        done.append(path)
    log.add("flip-every-file", f"{root} ({len(done)} files, one byte each)")
    return done


def halve_every_file(root: Path, log: FaultLog) -> list[Path]:
    """Every file but format.json truncated to half its size (rounded down)."""
    done = []
    for path in disk_files(root):
        try:
            size = path.stat().st_size
            if size == 0:
                continue
            os.truncate(path, size // 2)
        except FileNotFoundError:
            continue  # a temp file the running server renamed meanwhile (a repair, a record)
        done.append(path)
    log.add("halve-every-file", f"{root} ({len(done)} files)")
    return done
