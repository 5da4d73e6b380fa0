"""`s3free bench codec`: this machine's ceilings for the stages a PUT and a GET go through, and
which one bounds each.

Figures (MB = 10^6 bytes; CPU figures are one thread, best of `repeats`; disk figures once):
  md5              hashlib.md5 over 1 MiB updates (the ETag)
  encode_zfec      zfec RS(k,m) parity of 1 MiB blocks, the library alone
  encode_codec     s3free.erasure.ReedSolomon.encode: the path the server takes (ISA-L when
                   libisal is installed, else zfec), padding and copies included
  decode           ReedSolomon.decode of 1 MiB blocks with m data shards missing (zfec; the
                   codec has no ISA-L decode path), MB/s of block bytes
  blake3, crc32c   one pass over 1 MiB buffers
  write_fsync      one file written in 1 MiB pieces, then fsync (bytes written)
  read_cold        that file read back after fsync + posix_fadvise(DONTNEED) (the page cache
                   dropped for that file; a filesystem that ignores the advice reads from RAM)
  create_fsync/s   4 KiB files created, written, fsynced, closed, one after another
  create/s         the same without fsync (what a file costs the filesystem itself)
  open_read/s      those 4 KiB files opened, read and closed (page cache)

The model behind the verdict (e = (k+m)/k, the bytes stored per object byte; C = usable cores):
  Large PUT: per object byte the server computes MD5 once, encodes once, BLAKE3 once for the
    block and once more over every shard (e), CRC32C over every shard (e). Each stage costs
    passes / rate core-seconds per MB; their sum is the CPU cost of a MB, and the CPU ceiling
    is C / that sum (the stages run in a thread pool; a single object's MD5 is serial, so one
    stream is also capped at md5). The disk ceiling is write_fsync / e when every shard
    directory is on the measured filesystem (k+m devices each take 1/k of it, so the figure is
    then about k times higher). The bound is the smaller; within the CPU, the stage with the
    largest share of the cost is the one to speed up.
  Large GET: CRC32C over the k data shards (1 pass) and BLAKE3 of each block (1 pass); with m
    shards missing add a decode pass. Disk: read_cold (1 pass: only k shards are read).
  4 KiB PUT: every PUT creates k+m small files and waits for about two sync rounds (shards and
    manifest by one shared syncfs, then the index batch): one request alone gets about
    create_fsync/s / 2 PUTs/s; group commit shares syncs among concurrent PUTs, up to
    create/s / (k+m). CPU for hashing and coding 4 KiB is far below either.
  4 KiB GET: k small files opened and read: open_read/s / k.
  Not measured here: the server's per-request cost (HTTP, SigV4, index, Python), which at
  4 KiB usually lies below these ceilings; `s3free bench s3 --size 4KiB` measures it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import blake3
import crc32c

from s3free.bench.ceilings import (
    sample_blocks,
    time_codec_encode,
    time_disk_write,
    time_md5,
    time_zfec_encode,
)
from s3free.bench.measure import UNIT, PatternData, filesystem_of
from s3free.erasure import ReedSolomon

MiB = 1 << 20
SMALL = 4096
SMALL_FILES = 200  # fsynced small files at most (and at most SMALL_SECONDS)
SMALL_SECONDS = 2.0


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_blake3(blocks: list[bytes], n_blocks: int) -> float:
    return _timed(
        lambda: [blake3.blake3(blocks[i % len(blocks)]).digest() for i in range(n_blocks)]
    )


def time_crc32c(blocks: list[bytes], n_blocks: int) -> float:
    return _timed(lambda: [crc32c.crc32c(blocks[i % len(blocks)]) for i in range(n_blocks)])


def time_decode(blocks: list[bytes], n_blocks: int, k: int, m: int) -> float:
    """ReedSolomon.decode of each block from its last k shards (m data shards missing)."""
    codec = ReedSolomon(k, m)
    kept = []
    for block in blocks:
        shards = codec.encode(block)
        kept.append({i: bytes(shards[i]) for i in range(m, k + m)})
    return _timed(lambda: [codec.decode(kept[i % len(kept)], UNIT) for i in range(n_blocks)])


def time_read_cold(directory: Path, size: int) -> float:
    """Write size bytes, fsync, drop the file's cached pages, read it back in 1 MiB reads."""
    path = directory / "seq-read"
    payload = PatternData().read(0, MiB)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(size // MiB):
            os.write(fd, payload)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        t0 = time.perf_counter()
        got = 0
        while chunk := os.pread(fd, MiB, got):
            got += len(chunk)
        seconds = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    if got != size // MiB * MiB:
        raise OSError(f"read back {got} bytes of {size // MiB * MiB}")
    return seconds


def small_files_per_s(directory: Path, *, fsync: bool, limit: int, seconds: float) -> dict:
    """4 KiB files created + written (+ fsynced) + closed one after another, until `limit`
    files or `seconds`; then the same files opened, read and closed. Removes them."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(SMALL)
    made: list[Path] = []
    t0 = time.perf_counter()
    deadline = t0 + seconds
    try:
        while len(made) < limit and time.perf_counter() < deadline:
            path = directory / f"s{len(made):06d}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            made.append(path)
            try:
                os.write(fd, payload)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        created = len(made) / (time.perf_counter() - t0)
        t1 = time.perf_counter()
        for path in made:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.read(fd, SMALL)
            finally:
                os.close(fd)
        opened = len(made) / (time.perf_counter() - t1)
    finally:
        for path in made:
            path.unlink(missing_ok=True)
    return {"files": len(made), "per_s": created, "open_read_per_s": opened}


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_codec_bench(
    k: int = 6,
    m: int = 3,
    *,
    path: str | None = None,
    size: int = 64 * MiB,
    repeats: int = 3,
    log=None,
) -> dict:
    """Measure every ceiling (see the module docstring) and return them with the verdict as a
    JSON-ready dict. Disk figures use a temp directory under `path`, removed afterwards."""
    say = log or (lambda _msg: None)
    n_blocks = max(1, size // UNIT)
    nbytes = n_blocks * UNIT
    blocks = sample_blocks(PatternData())
    codec_uses_isal = getattr(ReedSolomon(k, m), "_isal", None) is not None
    cpu: dict[str, Callable[[], float]] = {
        "md5": lambda: time_md5(blocks, n_blocks),
        "encode_zfec": lambda: time_zfec_encode(blocks, n_blocks, k, m),
        "encode_codec": lambda: time_codec_encode(blocks, n_blocks, k, m),
        "decode": lambda: time_decode(blocks, n_blocks, k, m),
        "blake3": lambda: time_blake3(blocks, n_blocks),
        "crc32c": lambda: time_crc32c(blocks, n_blocks),
    }
    mbps: dict[str, float] = {}
    for name, fn in cpu.items():
        say(f"codec: {name}")
        mbps[name] = max(nbytes / max(fn(), 1e-9) / 1e6 for _ in range(repeats))
    parent = Path(path) if path else Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="s3free-bench-codec-", dir=parent))
    try:
        say(f"disk: write+fsync {nbytes // MiB} MiB under {work}")
        mbps["write_fsync"] = nbytes / time_disk_write(work, 1, MiB, n_blocks, write=MiB) / 1e6
        say("disk: cold sequential read")
        mbps["read_cold"] = nbytes / max(time_read_cold(work, nbytes), 1e-9) / 1e6
        say("disk: small files")
        synced = small_files_per_s(
            work / "sync", fsync=True, limit=SMALL_FILES, seconds=SMALL_SECONDS
        )
        plain = small_files_per_s(work / "plain", fsync=False, limit=20 * SMALL_FILES, seconds=1.0)
    finally:
        for sub in ("sync", "plain"):
            if (work / sub).is_dir():
                (work / sub).rmdir()
        work.rmdir()
    rates = {
        "create_fsync_per_s": synced["per_s"],
        "create_per_s": plain["per_s"],
        "open_read_per_s": plain["open_read_per_s"],
    }
    return {
        "config": {"k": k, "m": m, "size": nbytes, "repeats": repeats, "path": str(parent)},
        "machine": {"cores": usable_cores(), "filesystem": filesystem_of(parent)},
        "codec_path": "isa-l" if codec_uses_isal else "zfec",
        "mb_per_s": mbps,
        "small_files": {**rates, "files_fsynced": synced["files"], "files": plain["files"]},
        "verdict": verdict(mbps, rates, k, m, usable_cores()),
    }


def _cpu_bound(stages: Mapping[str, tuple[float, float]], cores: int) -> dict:
    """stages: name -> (passes per object byte, single-core MB/s)."""
    cost = {name: passes / rate for name, (passes, rate) in stages.items()}
    total = sum(cost.values())
    return {
        "mb_per_s": cores / total,
        "share": {name: c / total for name, c in cost.items()},
        "top_stage": max(cost, key=lambda n: cost[n]),
    }


def _pick(cpu: dict, disk_name: str, disk: float) -> dict:
    if disk < cpu["mb_per_s"]:
        bound = disk_name
    else:
        bound = f"cpu ({cpu['top_stage']} {cpu['share'][cpu['top_stage']] * 100:.0f}% of it)"
    return {
        "mb_per_s": min(disk, cpu["mb_per_s"]),
        "bound": bound,
        "cpu_mb_per_s": cpu["mb_per_s"],
        "cpu_share": cpu["share"],
        "disk_mb_per_s": disk,
    }


def verdict(mbps: dict[str, float], rates: dict[str, float], k: int, m: int, cores: int) -> dict:
    """Which stage bounds PUT and GET, large and at 4 KiB (the model is the module docstring)."""
    e = (k + m) / k
    put_cpu = _cpu_bound(
        {
            "md5": (1, mbps["md5"]),
            "encode": (1, mbps["encode_codec"]),
            "blake3": (1 + e, mbps["blake3"]),
            "crc32c": (e, mbps["crc32c"]),
        },
        cores,
    )
    get_stages = {"crc32c": (1, mbps["crc32c"]), "blake3": (1, mbps["blake3"])}
    get_cpu = _cpu_bound(get_stages, cores)
    degraded_cpu = _cpu_bound({**get_stages, "decode": (1, mbps["decode"])}, cores)
    put_large = _pick(put_cpu, f"disk write+fsync ({e:.2f} bytes stored per byte)",
                      mbps["write_fsync"] / e)  # fmt: skip
    put_large["one_stream_md5_cap_mb_per_s"] = mbps["md5"]
    put_small = {
        "one_request_ops_per_s": rates["create_fsync_per_s"] / 2,
        "group_commit_cap_ops_per_s": rates["create_per_s"] / (k + m),
        "cpu_ops_per_s": put_cpu["mb_per_s"] * 1e6 / SMALL,
        "bound": "durable syncs (about 2 per PUT, shared by concurrent PUTs)",
    }
    get_small = {
        "ops_per_s": rates["open_read_per_s"] / k,
        "cpu_ops_per_s": get_cpu["mb_per_s"] * 1e6 / SMALL,
        "bound": f"small file opens ({k} per GET)",
    }
    if get_small["cpu_ops_per_s"] < get_small["ops_per_s"]:
        get_small["bound"] = "cpu (hashing)"
    return {
        "put_large": put_large,
        "get_large": _pick(get_cpu, "disk read", mbps["read_cold"]),
        "get_large_degraded": _pick(degraded_cpu, "disk read", mbps["read_cold"]),
        "put_4k": put_small,
        "get_4k": get_small,
        "note": (
            "disk figures assume every shard directory on the measured filesystem; the "
            "server's per-request cost (HTTP, SigV4, index) is not measured here and at 4 KiB "
            "usually bounds first: compare with `s3free bench s3 --size 4KiB`"
        ),
    }


def format_codec_table(result: dict) -> str:
    cfg, v = result["config"], result["verdict"]
    f = result["mb_per_s"]
    s = result["small_files"]
    lines = [
        f"s3free codec ceilings: RS({cfg['k']},{cfg['m']}), {cfg['size'] // MiB} MiB per figure, "
        f"{result['machine']['cores']} cores, disk {cfg['path']} "
        f"[{result['machine']['filesystem']}]; MB = 10^6 bytes, one thread",
        f"  {'md5':<16} {f['md5']:9.0f} MB/s",
        f"  {'encode_zfec':<16} {f['encode_zfec']:9.0f} MB/s",
        f"  {'encode_codec':<16} {f['encode_codec']:9.0f} MB/s  (the server's path: "
        f"{result['codec_path']})",
        f"  {'decode':<16} {f['decode']:9.0f} MB/s  ({cfg['m']} data shards missing, zfec)",
        f"  {'blake3':<16} {f['blake3']:9.0f} MB/s",
        f"  {'crc32c':<16} {f['crc32c']:9.0f} MB/s",
        f"  {'write_fsync':<16} {f['write_fsync']:9.0f} MB/s",
        f"  {'read_cold':<16} {f['read_cold']:9.0f} MB/s",
        f"  {'create_fsync':<16} {s['create_fsync_per_s']:9.0f} files/s (4 KiB)",
        f"  {'create':<16} {s['create_per_s']:9.0f} files/s (4 KiB, no fsync)",
        f"  {'open_read':<16} {s['open_read_per_s']:9.0f} files/s (4 KiB, cached)",
        "verdict",
    ]
    for name in ("put_large", "get_large", "get_large_degraded"):
        r = v[name]
        lines.append(
            f"  {name:<18} {r['mb_per_s']:7.0f} MB/s  bound: {r['bound']}  "
            f"(cpu {r['cpu_mb_per_s']:.0f}, disk {r['disk_mb_per_s']:.0f})"
        )
    p, g = v["put_4k"], v["get_4k"]
    lines.append(
        f"  {'put_4k':<18} {p['one_request_ops_per_s']:7.0f} ops/s per request in flight, up "
        f"to {p['group_commit_cap_ops_per_s']:.0f} with group commit  bound: {p['bound']}"
    )
    lines.append(f"  {'get_4k':<18} {g['ops_per_s']:7.0f} ops/s  bound: {g['bound']}")
    lines.append(f"note: {v['note']}")
    return "\n".join(lines)
