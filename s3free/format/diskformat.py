"""format.json: the small record that tells a disk which set it belongs to and where.

    {"block_size": 1048576, "disk_id": "<32 hex>", "disks": ["<32 hex>", ...],
     "format": "s3free-disk", "k": 6, "m": 3, "position": 0, "set_id": "<32 hex>",
     "version": 1}

`disks` lists every disk id of the set by position, so any formatted disk can say which sibling
is missing, wiped or foreign. Decoding is strict, like the manifest's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from s3free.format.errors import FormatError
from s3free.format.header import MAX_BLOCK_LENGTH

DISK_FORMAT_NAME = "s3free-disk"
DISK_FORMAT_VERSION = 1
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_FIELDS = {"block_size", "disk_id", "disks", "format", "k", "m", "position", "set_id", "version"}


@dataclass(frozen=True, slots=True)
class DiskFormat:
    set_id: str
    disk_id: str
    position: int
    disks: tuple[str, ...]
    k: int
    m: int
    block_size: int

    def validate(self) -> None:
        if not _HEX32.fullmatch(self.set_id) or not _HEX32.fullmatch(self.disk_id):
            raise FormatError("set_id and disk_id must be 32 lowercase hex digits")
        if not all(isinstance(d, str) and _HEX32.fullmatch(d) for d in self.disks):
            raise FormatError("disks must be a list of 32-hex disk ids")
        if len(set(self.disks)) != len(self.disks):
            raise FormatError("disk ids in a set must be unique")
        if not 0 <= self.position < len(self.disks) or self.disks[self.position] != self.disk_id:
            raise FormatError("position does not point at this disk's id")
        if not (self.k >= 1 and self.m >= 1 and self.k + self.m <= min(256, len(self.disks))):
            raise FormatError("k+m must fit the set's disks")
        if not 1 <= self.block_size <= MAX_BLOCK_LENGTH:
            raise FormatError("block size out of range")

    def encode(self) -> bytes:
        self.validate()
        obj = {
            "block_size": self.block_size,
            "disk_id": self.disk_id,
            "disks": list(self.disks),
            "format": DISK_FORMAT_NAME,
            "k": self.k,
            "m": self.m,
            "position": self.position,
            "set_id": self.set_id,
            "version": DISK_FORMAT_VERSION,
        }
        return (json.dumps(obj, sort_keys=True, indent=2) + "\n").encode()

    @classmethod
    def decode(cls, data: bytes) -> DiskFormat:
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FormatError(f"format.json is not JSON: {exc}") from None
        if not isinstance(obj, dict) or set(obj) != _FIELDS:
            raise FormatError(f"format.json must have exactly the fields {sorted(_FIELDS)}")
        if obj["format"] != DISK_FORMAT_NAME:
            raise FormatError(f"not an s3free disk format: {obj['format']!r}")
        if (
            isinstance(obj["version"], bool)
            or not isinstance(obj["version"], int)
            or obj["version"] != DISK_FORMAT_VERSION
        ):
            raise FormatError(f"unsupported disk format version {obj['version']!r}")
        for name in ("position", "k", "m", "block_size"):
            if isinstance(obj[name], bool) or not isinstance(obj[name], int):
                raise FormatError(f"format.json {name} must be an integer")
        if not isinstance(obj["disks"], list):
            raise FormatError("format.json disks must be a list")
        fmt = cls(
            set_id=obj["set_id"] if isinstance(obj["set_id"], str) else "",
            disk_id=obj["disk_id"] if isinstance(obj["disk_id"], str) else "",
            position=obj["position"],
            disks=tuple(obj["disks"]),
            k=obj["k"],
            m=obj["m"],
            block_size=obj["block_size"],
        )
        fmt.validate()
        return fmt
