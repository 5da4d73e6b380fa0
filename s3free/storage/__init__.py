"""Disks: shard files, the disk set, health tracking, quarantine (below the engine)."""
