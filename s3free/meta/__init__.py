"""The metadata index: a fast, rebuildable view of what the disks say."""
