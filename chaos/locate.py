"""Where one object version lives on the disks: manifest copies, shard files, records.

Everything is derived from the manifest through the format modules (spec sections 3 and 7):
shard j of part P is on the disk `placement[j]`, record i of a shard starts at
i * (192 + ceil(block_size / k)) from the start of that shard's records. `shard_location` is
the ONE place that knows where a part's records start, so inline versions (spec 8.5: one file
per disk, `objects/aa/bb/<o>.<v>.inline`, the records after the manifest envelope) are handled
there and nowhere else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from s3free.format.footer import FOOTER_SIZE
from s3free.format.header import HEADER_SIZE
from s3free.format.manifest import Manifest
from s3free.format.record import record_size
from s3free.storage.layout import manifest_file as layout_manifest_file
from s3free.storage.layout import shard_file


def is_inline(manifest: Manifest) -> bool:
    """Whether the version's part-1 records live in its manifest files (inline objects)."""
    return manifest.inline


def envelope_length(manifest_file: Path) -> int:
    """16 + body_length + 4: where an inline object's records start in a manifest file."""
    with open(manifest_file, "rb") as f:
        head = f.read(16)
    if len(head) < 16:
        raise ValueError(f"{manifest_file}: too short for a manifest envelope")
    (body_length,) = struct.unpack_from("<I", head, 12)
    return 16 + body_length + 4


def shard_location(root: Path, manifest: Manifest, part: int) -> tuple[Path, int]:
    """(file, offset of record 0) of this disk's shard of `part`: the part file, or, for an
    inline object, the manifest file after its envelope."""
    vhex = manifest.version_hex
    path = root / shard_file(manifest.object_id, vhex, part, manifest.inline)
    return path, envelope_length(path) if manifest.inline else 0


def manifest_file(root: Path, manifest: Manifest) -> Path:
    vhex = manifest.version_hex
    return root / layout_manifest_file(manifest.object_id, vhex, manifest.inline)


@dataclass(frozen=True)
class RecordSpan:
    """One shard record on disk and the byte ranges of its three regions."""

    path: Path
    offset: int  # of the header
    payload_length: int

    @property
    def header(self) -> tuple[int, int]:
        return self.offset, self.offset + HEADER_SIZE

    @property
    def payload(self) -> tuple[int, int]:
        start = self.offset + HEADER_SIZE
        return start, start + self.payload_length

    @property
    def footer(self) -> tuple[int, int]:
        start = self.offset + HEADER_SIZE + self.payload_length
        return start, start + FOOTER_SIZE

    @property
    def end(self) -> int:
        return self.offset + record_size(self.payload_length)


class Layout:
    """Disk roots by disk id, and the locations of a manifest's files on them."""

    def __init__(self, roots: dict[str, Path]) -> None:
        self.roots = roots

    def root_of(self, manifest: Manifest, shard: int) -> Path:
        return self.roots[manifest.placement[shard]]

    def shard_file(self, manifest: Manifest, part: int, shard: int) -> tuple[Path, int]:
        return shard_location(self.root_of(manifest, shard), manifest, part)

    def manifest_files(self, manifest: Manifest) -> list[Path]:
        """Every manifest copy's path (one per placement disk), present or not."""
        return [manifest_file(self.roots[d], manifest) for d in manifest.placement]

    def records(self, manifest: Manifest, part: int, shard: int) -> list[RecordSpan]:
        """Every record of one shard of one part, in block order (spec 7.4)."""
        entry = next(p for p in manifest.parts if p.number == part)
        path, base = self.shard_file(manifest, part, shard)
        bs, k = manifest.block_size, manifest.k
        full = record_size(-(-bs // k))
        spans = []
        for i in range(entry.blocks):
            length = min(bs, entry.size - i * bs)
            spans.append(RecordSpan(path, base + i * full, -(-max(length, 0) // k)))
        return spans
