"""Text for `s3free disk`: the same JSON (admin API or direct mode) rendered for people."""

from __future__ import annotations


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def status_lines(doc: dict) -> list[str]:
    lines = [
        f"set {doc['set_id']}  RS({doc['k']},{doc['m']})  write quorum {doc['write_quorum']}",
    ]
    rows = [("POS", "STATE", "DISK ID", "USED / TOTAL", "SHARDS", "ERRORS", "PATH")]
    for d in doc["disks"]:
        shards = d.get("shards")
        if shards is None:
            shown = "-"
        else:
            shown = f"{'' if shards['exact'] else '~'}{shards['shard_files']}"
        rows.append(
            (
                str(d["position"]),
                d["state"],
                d["disk_id"][:8],
                f"{size(d['used_bytes'])} / {size(d['total_bytes'])}",
                shown,
                str(d["errors"]),
                d["path"],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    for d in doc["disks"]:
        if d["problem"]:
            lines.append(f"disk {d['position']}: {d['state']}: {d['problem']}")
        if d.get("full"):
            lines.append(f"disk {d['position']}: full, no new data: {d['full']}")
        if d["last_error"]:
            lines.append(f"disk {d['position']}: last error: {d['last_error']}")
        heal = d.get("heal")
        if heal:
            waiting = f" ({heal['waiting']})" if heal.get("waiting") else ""
            lines.append(
                f"disk {d['position']}: healing: {heal['objects_checked']} objects checked, "
                f"{heal['objects_repaired']} repaired, {size(heal['bytes_checked'])} verified, "
                f"pass {heal['passes']}{', job ' + heal['job_id'] if heal['job_id'] else ''}"
                f"{waiting}"
            )
    held = [d for d in doc["disks"] if d.get("quarantine")]
    if held:
        files = sum(d["quarantine"]["files"] for d in held)
        total = sum(d["quarantine"]["bytes"] for d in held)
        each = ", ".join(
            f"disk {d['position']} {d['quarantine']['files']} ({size(d['quarantine']['bytes'])})"
            for d in held
        )
        lines.append(
            f"quarantine: {files} files, {size(total)} ({each}); see s3free disk quarantine list"
        )
    estimated = [d for d in doc["disks"] if d.get("shards") and not d["shards"]["exact"]]
    if estimated:
        lines.append("~: shard count estimated from a sample of object directories")
    heal = doc.get("heal")
    if heal is None:
        lines.append("heal service: not running")
    else:
        lines += heal_lines(heal)
    return lines


def heal_lines(heal: dict) -> list[str]:
    """Redundancy as the heal service knows it, and every unrepairable version by name."""
    lost = heal.get("unrepairable") or []
    deg = heal.get("degraded") or {}
    lines = [
        f"heal: repair queue {heal.get('queue_depth', '-')}, "
        f"waiting for offline disks {deg.get('waiting', 0)}, unrepairable {len(lost)}"
    ]
    if deg:
        at_km = not (deg.get("objects") or deg.get("disks_healing") or deg.get("disks_offline"))
        lines.append(
            "redundancy: every known object version is at k+m"
            if at_km
            else f"redundancy: {deg.get('objects', 0)} object versions below k+m "
            f"({size(deg.get('bytes', 0))}), {deg.get('disks_healing', 0)} disks healing, "
            f"{deg.get('disks_offline', 0)} offline"
        )
    for disk_id, count in (deg.get("waiting_by_disk") or {}).items():
        lines.append(f"  {count} versions wait for disk {disk_id}")
    for item in lost:
        lines.append(
            f"unrepairable: {item['bucket']}/{item['key']} (version {item['version_id']}): "
            f"{item.get('detail') or item.get('reason', '')}"
        )
    return lines


def started_line(job: dict) -> str:
    return f"started {job.get('kind', 'job')} {job['id']} (follow it: s3free disk job {job['id']})"


def progress_line(job: dict) -> str:
    done, total = job.get("objects_checked", 0), job.get("objects_total")
    if total:
        filled = int(20 * min(done, total) / total)
        bar = f"[{'#' * filled}{'-' * (20 - filled)}] {100 * done // total:3d}% {done}/{total}"
    else:
        bar = f"{done} objects"
    return (
        f"{job.get('kind', 'job')} {job['id']} {job.get('state')}: {bar}, "
        f"{size(job.get('bytes_checked', 0))} verified, {job.get('shards_bad', 0)} shards bad, "
        f"{job.get('repaired', 0)} repaired, {job.get('unrepairable', 0)} unrepairable"
    )


def summary_lines(job: dict) -> list[str]:
    took = ""
    if job.get("finished_ms") and job.get("started_ms"):
        took = f" in {(job['finished_ms'] - job['started_ms']) / 1000:.1f} s"
    lines = [
        f"{job.get('kind', 'job')} {job['id']} {job.get('state')}{took}",
        f"  objects checked   {job.get('objects_checked', 0)}",
        f"  shards bad        {job.get('shards_bad', 0)}",
        f"  repaired          {job.get('repaired', 0)}",
        f"  unrepairable      {job.get('unrepairable', 0)}",
        f"  orphans removed   {job.get('orphans_removed', 0)}",
        f"  records restored  {job.get('records_restored', 0)}",
        f"  verified          {size(job.get('bytes_checked', 0))}",
    ]
    if job.get("error"):
        lines.append(f"  error             {job['error']}")
    if job.get("left_total"):
        lines.append(f"  left below k+m    {job['left_total']}")
        for item in job.get("left") or []:
            what = f"{item['bucket']}/{item['key']}: " if item.get("key") is not None else ""
            lines.append(f"    {what}{item['why']}")
        if job["left_total"] > len(job.get("left") or []):
            lines.append(f"    ... and {job['left_total'] - len(job['left'])} more")
    return lines


def verdict(health: dict) -> str:
    """ "ok", "degraded" (repairable) or "unrepairable", from the shard states."""
    parts: dict[int, int] = {}
    bad = False
    for s in health.get("shards", []):
        parts.setdefault(s["part"], 0)
        if s["state"] == "ok":
            parts[s["part"]] += 1
        else:
            bad = True
    bad = bad or any(v != "ok" for v in health.get("manifests", {}).values())
    healthy = min(parts.values()) if parts else health.get("k", 0)
    if healthy < health.get("k", 0):
        return "unrepairable"
    return "degraded" if bad else "ok"


def health_lines(health: dict) -> list[str]:
    lines = [
        f"{health['bucket']}/{health['key']} version {health['version_id']}  "
        f"RS({health['k']},{health['m']})  {size(health.get('bytes_checked', 0))} verified",
        "PART   SHARD  DISK ID   STATE      DETAIL",
    ]
    for s in health.get("shards", []):
        lines.append(
            f"{s['part']:<6} {s['shard']:<6} {s['disk_id'][:8]:<9} {s['state']:<10} "
            f"{s.get('detail', '')}".rstrip()
        )
    for disk_id, state in sorted(health.get("manifests", {}).items()):
        lines.append(f"manifest on {disk_id[:8]}: {state}")
    lines.append(f"verdict: {verdict(health)}")
    return lines


def verify_summary_lines(health: dict) -> list[str]:
    """`disk verify` without --shards: the verdict and the counts, the bad shards grouped by
    disk and state (a 300 MiB object has hundreds of shards; one line each is for --shards)."""
    k, m = health["k"], health["m"]
    shards = health.get("shards", [])
    good = sum(1 for s in shards if s["state"] == "ok")
    parts = sorted({s["part"] for s in shards})
    found = verdict(health)
    hint = {
        "degraded": " (repairable: s3free disk repair --bucket "
        f"{health['bucket']} --object {health['key']})",
        "unrepairable": f" (a part has fewer than k={k} healthy shards)",
    }.get(found, "")
    lines = [
        f"{health['bucket']}/{health['key']} version {health['version_id']}  RS({k},{m})  "
        f"{size(health.get('bytes_checked', 0))} verified",
        f"verdict: {found}{hint}",
        f"shards: {good} of {len(shards)} healthy ({len(parts)} part(s) x {k + m})",
    ]
    bad: dict[tuple[str, str], list[int]] = {}
    for s in shards:
        if s["state"] != "ok":
            bad.setdefault((s["disk_id"], s["state"]), []).append(s["part"])
    for (disk_id, state), in_parts in sorted(bad.items()):
        lines.append(f"  disk {disk_id[:8]}: {len(in_parts)} {state} (part {_ranges(in_parts)})")
    manifests = health.get("manifests", {})
    states: dict[str, list[str]] = {}
    for disk_id, state in sorted(manifests.items()):
        states.setdefault(state, []).append(disk_id[:8])
    shown = [f"{len(ids)} ok" if st == "ok" else f"{len(ids)} {st} (on {', '.join(ids)})"
             for st, ids in sorted(states.items(), key=lambda item: item[0] != "ok")]  # fmt: skip
    lines.append(f"manifests: {', '.join(shown) or 'none'}")
    errors = health.get("errors") or []
    lines += [f"error: {e}" for e in errors[:5]]
    if len(errors) > 5:
        lines.append(f"... and {len(errors) - 5} more errors")
    if bad:
        lines.append("(per-shard details: --shards)")
    return lines


def _ranges(numbers: list[int], most: int = 6) -> str:
    """1,2,3,7 -> "1-3, 7"; past `most` ranges, "..."."""
    spans: list[list[int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = [f"{a}-{b}" if a != b else str(a) for a, b in spans[:most]]
    return ", ".join(text) + (", ..." if len(spans) > most else "")


def replace_lines(answer: dict) -> list[str]:
    d = answer["disk"]
    lines = [f"disk {d['position']} ({d['path']}): {answer['action']}", f"state: {d['state']}"]
    if d["problem"]:
        lines.append(f"problem: {d['problem']}")
    if answer.get("rate_mb_s") is not None:
        rate = answer["rate_mb_s"]
        lines.append(f"heal pass paced at {f'{rate:g} MB/s' if rate else 'no limit'}")
    return lines
