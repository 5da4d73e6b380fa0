#!/usr/bin/env python3
"""Healing benchmark (issue 4; a benchmark, not a timed test). Starts `s3free server` on
127.0.0.1 with RS(6,3) on 9 directories (the S3 benchmark's layout), writes a dataset of mixed
sizes (default about 1 GiB) through S3, and measures:

  1. scrub rate, MB/s verified: one full pass with no caps, and a window of a pass at the
     default caps (HealConfig: 8 MB/s and 200 files/s, each a maximum on its own), checked
     against what the caps allow;
  2. time to heal a wiped disk: one disk directory replaced by an empty one, `disk replace`
     through the admin API (what `s3free disk replace` sends), the repair pass it starts timed
     until it ends, heal rate unlimited, then a scrub must find every object with k + m
     healthy shards;
  3. 1 MiB GETs at concurrency 8 (s3free/bench/s3load.py, every body compared with what was
     written) idle, while an uncapped scrub runs and while a default-capped one runs, as a
     fraction of the idle figure of the same server process;

next to this machine's ceilings (reading the same shard files, BLAKE3, CRC32C, RS encode).

    python tools/bench_heal.py                    # ~1 GiB under the system temp dir
    python tools/bench_heal.py --scale 0.1 --dir /mnt/scratch --json out.json

Two server processes over the same disks: one with the scrub and repair caps off (scrub
figures, the heal, the uncapped GET figure), then one with the default caps (a pass started
through the admin API uses the server's files/s cap, so it takes a restart to change both).
Every wait is bounded in time; the scratch directory is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_s3 import peak_rss_mib, start_server

from s3free.admin.client import AdminClient
from s3free.bench.healkit import (
    GET_SIZE,
    ScrubDriver,
    describe_mix,
    durable_creates_per_s,
    plan_dataset,
    primitive_rates,
    read_files_rate,
    tree_bytes,
    verify_model,
)
from s3free.bench.s3load import Client, PhaseResult, expected_md5, run_phase
from s3free.heal.model import HealConfig

K, M, DISKS = 6, 3, 9
BLOCK = 1 << 20
BUCKET = "heal-bench"
CONCURRENCY = 8
WIPED = 4  # position of the disk wiped (disk5)
DEFAULTS = HealConfig()
UNCAPPED = {"S3FREE_SCRUB_RATE_MB_S": "0", "S3FREE_SCRUB_FILES_PER_S": "0"}
CAPPED = {
    "S3FREE_SCRUB_RATE_MB_S": f"{DEFAULTS.scrub_rate_mb_s:g}",
    "S3FREE_SCRUB_FILES_PER_S": f"{DEFAULTS.scrub_files_per_s:g}",
}
QUIET = {"S3FREE_SCRUB_INTERVAL_S": "0"}  # no scheduled pass: only the ones started here


class Server:
    """One `s3free server` process and its admin client."""

    def __init__(self, root: Path, access: str, secret: str, settings: dict[str, str]) -> None:
        self.proc, self.endpoint = start_server(root, access, secret, {**settings, **QUIET})
        self.admin = AdminClient(self.endpoint, access, secret, timeout=60)

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> float | None:
        """SIGTERM, a bounded wait; the peak RSS in MiB read just before."""
        rss = peak_rss_mib(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return rss


def machine_busy_s() -> float:
    """CPU-seconds all CPUs of the machine spent busy (not idle or waiting on I/O) so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU-seconds of this process and its waited-for children (the servers)."""
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usages)


def wait_job(admin: AdminClient, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = admin.job(job_id)
        if job["state"] != "running":
            if job["state"] != "done":
                raise SystemExit(f"{job['kind']} job {job_id} {job['state']}: {job['error']}")
            return job
        if time.monotonic() > deadline:
            raise SystemExit(f"{job['kind']} job {job_id} still running after {timeout:.0f} s")
        time.sleep(0.1)


def job_seconds(job: dict) -> float:
    return max(job["finished_ms"] - job["started_ms"], 1) / 1000


# -- client side -----------------------------------------------------------------------------


async def write_dataset(server: Server, access: str, secret: str, plan, timeout: float) -> float:
    """PUT every object (4 at a time, ETags checked); seconds taken. Any failure ends the run."""
    client = Client(server.endpoint, access, secret, "us-east-1", 4)
    etags = {key: expected_md5(key, size) for key, size in plan}
    queue = list(reversed(plan))
    errors: list[str] = []
    deadline = time.monotonic() + timeout

    async def worker() -> None:
        while queue and not errors and time.monotonic() < deadline:
            key, size = queue.pop()
            try:
                await client.put(BUCKET, key, size, etags[key])
            except Exception as exc:
                errors.append(f"{key}: {exc}")

    started = time.perf_counter()
    try:
        await client.create_bucket(BUCKET)
        await asyncio.gather(*(worker() for _ in range(4)))
    finally:
        await client.close()
    if errors or queue:
        raise SystemExit(f"writing the dataset failed: {errors[:1] or 'out of time'}")
    return time.perf_counter() - started


async def get_window(server: Server, access: str, secret: str, keys, seconds: float) -> dict:
    """1 MiB GETs at CONCURRENCY for `seconds` (at most 1e6), every body verified."""
    client = Client(server.endpoint, access, secret, "us-east-1", CONCURRENCY)
    rng = random.Random(len(keys))
    reads = [rng.choice(keys) for _ in range(1_000_000)]
    cpu = server.cpu_s()
    try:
        result: PhaseResult = await run_phase(
            "get-1MiB",
            lambda k, s: client.get(BUCKET, k, s),
            reads,
            GET_SIZE,
            CONCURRENCY,
            seconds,
        )
    finally:
        await client.close()
    out = result.summary()
    out["server_cpu"] = (server.cpu_s() - cpu) / result.seconds
    return out


def gets(server: Server, access: str, secret: str, keys, seconds: float) -> dict:
    return asyncio.run(get_window(server, access, secret, keys, seconds))


# -- the phases --------------------------------------------------------------------------------


def full_scrub(server: Server, timeout: float) -> dict:
    cpu = server.cpu_s()
    job = server.admin.start_scrub(None, 0)
    job = wait_job(server.admin, job["id"], timeout)
    job["seconds"] = job_seconds(job)
    job["server_cpu"] = (server.cpu_s() - cpu) / job["seconds"]
    return job


def heal_wiped_disk(server: Server, root: Path, timeout: float) -> dict:
    """Wipe disk WIPED (an empty directory in its place), `disk replace` it, time the repair
    pass to its end, then the time until the monitor shows the disk online (not healing)."""
    disk = root / f"disk{WIPED + 1}"
    lost_bytes, lost_files = tree_bytes(disk)
    # Moved aside in one rename (the server may be creating a probe file in it meanwhile),
    # then deleted outside the set.
    gone = root / f"wiped-disk{WIPED + 1}"
    disk.rename(gone)
    disk.mkdir()
    shutil.rmtree(gone)
    cpu = server.cpu_s()
    t0 = time.time()
    answer = server.admin.disk_action("replace", str(WIPED))
    job_id = (answer["disk"].get("heal") or {}).get("job_id")
    if not job_id:
        raise SystemExit(f"disk replace started no repair pass: {answer}")
    job = wait_job(server.admin, job_id, timeout)
    seconds = max(job["finished_ms"] / 1000 - t0, 1e-3)
    cpu_used = server.cpu_s() - cpu
    deadline = time.monotonic() + 60
    online_s = None
    while time.monotonic() < deadline:
        state = server.admin.disk_status()["disks"][WIPED]["state"]
        if state == "online":
            online_s = time.time() - t0
            break
        time.sleep(0.25)
    healed_bytes, healed_files = tree_bytes(disk)
    return {
        "job": job,
        "seconds": seconds,
        "server_cpu": cpu_used / seconds,
        "lost_bytes": lost_bytes,
        "lost_files": lost_files,
        "healed_bytes": healed_bytes,
        "healed_files": healed_files,
        "monitor_online_s": online_s,
    }


def run(args: argparse.Namespace) -> dict:
    total = int(args.size_mib * (1 << 20) * args.scale)
    window = args.window if args.window else max(1.0, 15 * args.scale)
    pace_window = args.window * 2 if args.window else max(2.0, 40 * args.scale)
    timeout = max(120.0, 1800 * args.scale)
    plan = plan_dataset(total)
    data_bytes = sum(size for _, size in plan)
    get_keys = [key for key, size in plan if size == GET_SIZE]
    scratch = Path(tempfile.mkdtemp(prefix="s3free-bench-heal-", dir=args.dir))
    access, secret = "BENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24)
    probe = {"S3FREE_DISK_PROBE_S": f"{args.probe_s:g}"}
    fig: dict = {
        "probe_s": args.probe_s,
        "dataset": {"objects": len(plan), "bytes": data_bytes, "mix": describe_mix(plan)},
    }
    fig["loadavg_before"] = os.getloadavg()[0]
    machine0, ours0, wall0 = machine_busy_s(), own_cpu_s(), time.monotonic()
    server = None
    say = print
    try:
        server = Server(scratch, access, secret, {**UNCAPPED, **probe})
        say(f"s3free healing benchmark: RS({K},{M}) on {DISKS} directories under {scratch}, "
            f"{server.endpoint}, {os.cpu_count()} CPUs (client on the same machine)")  # fmt: skip
        fig["dataset"]["write_s"] = asyncio.run(
            write_dataset(server, access, secret, plan, timeout)
        )
        disks = [scratch / f"disk{i}" for i in range(1, DISKS + 1)]
        shard_bytes, shard_files = (sum(x) for x in zip(*map(tree_bytes, disks), strict=True))
        fig["dataset"].update(shard_bytes=shard_bytes, files=shard_files)
        budget = max(0.1, min(0.5, args.scale))
        cold = read_files_rate(disks, cold=True, budget_s=max(2.0, 60 * args.scale))
        warm = read_files_rate(disks, cold=False, budget_s=max(2.0, 60 * args.scale))
        prims = primitive_rates(K, M, BLOCK, budget)
        prims["durable_creates"] = durable_creates_per_s(scratch, max(0.5, 2 * args.scale))
        fig["ceilings"] = {"read_cold": cold, "read_warm": warm, **prims,
                           "verify_model_warm": verify_model(prims, warm, K, M),
                           "verify_model_cold": verify_model(prims, cold, K, M)}  # fmt: skip

        # 1a. one full pass, uncapped
        fig["scrub_uncapped"] = full_scrub(server, timeout)
        # 3a. GETs idle, then with uncapped scrubs running the whole window
        fig["get_idle_a"] = gets(server, access, secret, get_keys, window)
        driver = ScrubDriver(server.admin, 0, max_s=timeout)
        driver.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        fig["get_scrub_uncapped"] = gets(server, access, secret, get_keys, window)
        fig["get_scrub_uncapped"]["scrub"] = driver.window(t0, time.monotonic())
        driver.stop(finish_pass=True, timeout=timeout)  # no pass left for the next server
        if driver.error:
            raise SystemExit(f"scrub during GETs: {driver.error}")
        # 2. a wiped disk healed, then a pass must find nothing to do
        fig["heal"] = heal_wiped_disk(server, scratch, timeout)
        fig["verify_after_heal"] = full_scrub(server, timeout)
        fig["server_a_rss_mib"] = server.stop()
        server = None

        # 1b and 3b: the default caps
        server = Server(scratch, access, secret, {**CAPPED, **probe})
        fig["get_idle_b"] = gets(server, access, secret, get_keys, window)
        driver = ScrubDriver(server.admin, None, max_s=timeout)
        driver.start()
        time.sleep(0.2)
        cpu, t0 = server.cpu_s(), time.monotonic()
        time.sleep(pace_window)
        fig["scrub_capped"] = driver.window(t0, time.monotonic())
        fig["scrub_capped"]["server_cpu"] = (server.cpu_s() - cpu) / (time.monotonic() - t0)
        t0 = time.monotonic()
        fig["get_scrub_capped"] = gets(server, access, secret, get_keys, window)
        fig["get_scrub_capped"]["scrub"] = driver.window(t0, time.monotonic())
        driver.stop(finish_pass=False, timeout=10)
        if driver.error:
            raise SystemExit(f"capped scrub: {driver.error}")
        fig["server_b_rss_mib"] = server.stop()
        server = None
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    wall = time.monotonic() - wall0
    other = machine_busy_s() - machine0 - (own_cpu_s() - ours0)
    fig["other_cpu"] = {"seconds": other, "share": other / (wall * (os.cpu_count() or 1))}
    check(fig, len(plan))
    report(fig, say)
    return fig


def check(fig: dict, objects: int) -> None:
    """What must hold for the figures to mean anything; a failure is a finding, not noise."""
    problems = []
    for name in ("scrub_uncapped", "verify_after_heal"):
        job = fig[name]
        if job["objects_checked"] != objects:
            problems.append(f"{name}: {job['objects_checked']} of {objects} objects checked")
    for name in ("scrub_uncapped", "verify_after_heal"):
        job = fig[name]
        if job["shards_bad"] or job["repaired"] or job["unrepairable"]:
            problems.append(
                f"{name}: {job['shards_bad']} bad shards, {job['repaired']} repaired, "
                f"{job['unrepairable']} unrepairable (expected none)"
            )
    heal = fig["heal"]["job"]
    if heal["unrepairable"] or heal["objects_checked"] != objects:
        problems.append(f"heal: {heal['objects_checked']} checked, {heal['unrepairable']} lost")
    for name in ("get_idle_a", "get_scrub_uncapped", "get_idle_b", "get_scrub_capped"):
        if fig[name]["errors"] or not fig[name]["ops"]:
            problems.append(f"{name}: {fig[name]['ops']} GETs, {fig[name]['errors']} errors "
                            f"{fig[name]['first_error']}")  # fmt: skip
    fig["problems"] = problems


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def rate(nbytes: float, seconds: float) -> float:
    return nbytes / max(seconds, 1e-9) / 1e6


def report(fig: dict, say) -> None:
    ds, c = fig["dataset"], fig["ceilings"]
    ratio = ds["bytes"] / ds["shard_bytes"]  # object data per shard byte a pass reads
    say(f"dataset: {ds['objects']} objects, {mb(ds['bytes'])} ({ds['mix']})")
    say(f"  {mb(ds['shard_bytes'])} in {ds['files']} files on the disks "
        f"({1 / ratio:.2f}x); written through S3 in {ds['write_s']:.1f} s")  # fmt: skip
    say(f"{'ceilings, one thread':<62} MB/s")
    for label, value in (
        ("read the shard files, cold (fadvise DONTNEED)", f"{c['read_cold']:,.0f}"),
        ("read the shard files, warm (page cache)", f"{c['read_warm']:,.0f}"),
        ("BLAKE3 of a 1 MiB block / of a shard payload",
         f"{c['blake3_block']:,.0f} / {c['blake3_shard']:,.0f}"),
        ("CRC32C of a shard payload", f"{c['crc32c']:,.0f}"),
        (f"RS({K},{M}) encode / decode, a data shard lost (block MB/s)",
         f"{c['rs_encode']:,.0f} / {c['rs_decode_1_lost']:,.0f}"),
        ("small files made durable (temp, fsync, rename, fsync dir) /s",
         f"{c['durable_creates']:,.0f}"),
        ("verify model, object data MB/s, warm / cold",
         f"{c['verify_model_warm']:,.0f} / {c['verify_model_cold']:,.0f}"),
    ):  # fmt: skip
        say(f"  {label:<60} {value}")
    say("1. scrub                    seconds objects  data MB/s shard MB/s files/s server CPU")
    cap_mb, cap_files = DEFAULTS.scrub_rate_mb_s, DEFAULTS.scrub_files_per_s
    p = fig["scrub_capped"]
    rows = [
        ("uncapped, one full pass", fig["scrub_uncapped"]["seconds"],
         fig["scrub_uncapped"]["objects_checked"], fig["scrub_uncapped"]["bytes_checked"],
         fig["scrub_uncapped"]["server_cpu"]),
        ("uncapped, after the heal", fig["verify_after_heal"]["seconds"],
         fig["verify_after_heal"]["objects_checked"], fig["verify_after_heal"]["bytes_checked"],
         fig["verify_after_heal"]["server_cpu"]),
        (f"caps {cap_mb:g} MB/s {cap_files:g} f/s", p["seconds"], p["objects"], p["bytes"],
         p["server_cpu"]),
    ]  # fmt: skip
    for label, seconds, objects, shard, cpu in rows:
        files = objects * DISKS  # shard files opened: k + m per (one-part) object
        say(f"  {label:<25}{seconds:>7.1f} {objects:>7} {rate(shard * ratio, seconds):>10.1f} "
            f"{rate(shard, seconds):>10.1f} {files / seconds:>7.0f} {cpu:>10.0%}")  # fmt: skip
    # Each cap is a maximum on its own: the work takes at least the longer of the two times.
    allowed = max(p["bytes"] / (cap_mb * 1e6), p["objects"] * DISKS / cap_files)
    say(f"  capped: a stretch of a pass; the caps alone need max(bytes / {cap_mb:g} MB/s, files"
        f" / {cap_files:g}/s) = {allowed:.1f} s for its work, it took {p['seconds']:.1f} s "
        f"(ratio {p['seconds'] / max(allowed, 1e-9):.2f}; >= 1: no cap exceeded)")  # fmt: skip
    full = max(ds["shard_bytes"] / (cap_mb * 1e6), ds["objects"] * DISKS / cap_files)
    say(f"  a full pass at the default caps takes at least {full:.0f} s "
        f"({rate(ds['bytes'], full):.1f} MB/s of object data on this mix)")  # fmt: skip
    h, v = fig["heal"], fig["verify_after_heal"]
    j = h["job"]
    say(f"2. heal of a wiped disk: disk{WIPED + 1} ({mb(h['lost_bytes'])}, {h['lost_files']} "
        "files) replaced by an empty directory, `disk replace`, repair uncapped")  # fmt: skip
    say(f"  repair pass: {j['objects_checked']} objects checked, {j['repaired']} repaired, "
        f"{j['unrepairable']} unrepairable, {h['seconds']:.1f} s from the replace, "
        f"server CPU {h['server_cpu']:.0%}")  # fmt: skip
    say(f"  = {rate(ds['bytes'], h['seconds']):.1f} MB/s of object data healed; "
        f"{rate(h['healed_bytes'], h['seconds']):.1f} MB/s written to the new disk "
        f"({mb(h['healed_bytes'])}, {h['healed_files']} files)")  # fmt: skip
    online = h["monitor_online_s"]
    shown = f"{online:.1f} s" if online is not None else "not within 60 s"
    say(f"  the monitor (probe every {fig['probe_s']:g} s) showed it online, not healing, after "
        f"{shown}; the scrub after: {v['shards_bad']} bad shards, {v['repaired']} repaired, "
        f"{v['unrepairable']} lost")  # fmt: skip
    say(f"3. 1 MiB GETs, concurrency {CONCURRENCY}, every body verified")
    say("                          GETs seconds    MB/s of idle  p50 ms  p99 ms errors scrub MB/s")
    for label, name, base in (
        ("idle, server 1", "get_idle_a", None),
        ("uncapped scrub running", "get_scrub_uncapped", "get_idle_a"),
        ("idle, server 2", "get_idle_b", None),
        ("default-capped scrub", "get_scrub_capped", "get_idle_b"),
    ):
        g = fig[name]
        fraction = scrub = ""
        if base:
            idle = fig[base]["mb_per_s"]
            g["fraction"] = g["mb_per_s"] / idle if idle else 0.0
            fraction = f"{g['fraction']:.2f}"
            scrub = f"{rate(g['scrub']['bytes'], g['scrub']['seconds']):.1f}"
        say(f"  {label:<22}{g['ops']:>6} {g['seconds']:>7.1f} {g['mb_per_s']:>7.1f} {fraction:>5} "
            f"{g['p50_ms']:>7.1f} {g['p99_ms']:>7.1f} {g['errors']:>6} {scrub:>10}")  # fmt: skip
    say("  (scrub MB/s: shard bytes verified during the GET window)")
    say(f"server peak RSS: {fig['server_a_rss_mib'] or 0:.0f} MiB (server 1, uncapped), "
        f"{fig['server_b_rss_mib'] or 0:.0f} MiB (server 2, default caps)")  # fmt: skip
    o = fig["other_cpu"]
    say(f"other processes used {o['seconds']:.0f} CPU-seconds during the run ({o['share']:.0%} "
        f"of the machine; load average before: {fig['loadavg_before']:.2f})")  # fmt: skip
    for problem in fig["problems"]:
        say(f"PROBLEM: {problem}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dir", help="parent of the scratch directory (default: system temp)")
    p.add_argument("--size-mib", type=float, default=1024, help="dataset size (default 1024)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the size and time windows")
    p.add_argument("--window", type=float, help="seconds per GET window (default 15 x scale)")
    p.add_argument("--probe-s", type=float, default=5.0, help="disk probe interval (default 5)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = p.parse_args(argv)
    fig = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, sort_keys=True))
    return 1 if fig["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
