"""Which disks of a set share one filesystem (one device): a failure of that device takes them
all at once, which erasure coding across them cannot survive. Said once at start-up and in
`admin info`, so a store laid out on one disk for a trial is not mistaken for a redundant one.
"""

from __future__ import annotations

import os
from pathlib import Path


def device_of(path: Path) -> int | None:
    """st_dev of the path, or of its nearest existing parent (a disk directory not made yet
    will live there); None if nothing on the way can be stat'ed."""
    for candidate in (path, *path.parents):
        try:
            return os.stat(candidate).st_dev
        except OSError:
            continue
    return None


def shared_devices(paths: list[Path]) -> list[list[int]]:
    """Groups (indexes into `paths`, ascending) of two or more disks on one device; empty
    when every disk has its own, or there is only one disk."""
    by_device: dict[int, list[int]] = {}
    for i, path in enumerate(paths):
        device = device_of(Path(path))
        if device is not None:
            by_device.setdefault(device, []).append(i)
    return [group for group in by_device.values() if len(group) > 1]


def describe_shared(groups: list[list[int]], paths: list[Path]) -> str:
    """One sentence for the log naming the disks (by index into `paths`) that share a device."""
    parts = []
    for group in groups:
        device = device_of(Path(paths[group[0]]))
        names = ", ".join(f"{i} ({paths[i]})" for i in group)
        dev = f"{os.major(device)}:{os.minor(device)}" if device is not None else "?"
        parts.append(f"disks {names} are on one filesystem (device {dev})")
    return (
        "; ".join(parts) + ": one device failure takes them all at once, which the erasure "
        "code cannot survive; put each disk on its own device for redundancy"
    )
