"""Where things live on one disk (relative paths), in one place.

    <disk>/format.json                                  which set and position this disk is
    <disk>/healing.json                                 present while a replaced disk is healed
    <disk>/.s3free.tmp/<random>                          files being written; removed at start-up
    <disk>/buckets/<bucket>.json                         bucket records (on every disk)
    <disk>/objects/<o[0:2]>/<o[2:4]>/<o>/<v>/manifest    one object version's manifest
    <disk>/objects/<o[0:2]>/<o[2:4]>/<o>/<v>/part.NNNNN  that version's shard file for a part
    <disk>/objects/<o[0:2]>/<o[2:4]>/<o>.<v>.inline      a small version: manifest + its records
    <disk>/multipart/<upload>/upload.json                an upload in progress
    <disk>/multipart/<upload>/part.NNNNN                 an uploaded part's shard file

o = object id (32 hex), v = version id (32 hex, no dashes). Two levels of 256 directories keep
any one directory small; each version has its own directory (or, inline, its own file, with no
directory to create) so an overwrite never touches the files a reader of the old version has
open.
"""

from __future__ import annotations

FORMAT_FILE = "format.json"
HEALING_FILE = "healing.json"
BUCKETS_DIR = "buckets"
OBJECTS_DIR = "objects"
MULTIPART_DIR = "multipart"
MANIFEST_NAME = "manifest"
UPLOAD_RECORD = "upload.json"
INLINE_SUFFIX = ".inline"
# Made when a disk is formatted (and when the store opens a disk whose format is right); a
# write makes one only while the disk's format.json is there: on a disk wiped or swapped while
# the server runs it fails instead, so the disk is not filled before it is formatted again.
DATA_DIRS = (BUCKETS_DIR, OBJECTS_DIR, MULTIPART_DIR)


def object_dir(object_id_hex: str) -> str:
    return f"{OBJECTS_DIR}/{object_id_hex[0:2]}/{object_id_hex[2:4]}/{object_id_hex}"


def version_dir(object_id_hex: str, version_hex: str) -> str:
    return f"{object_dir(object_id_hex)}/{version_hex}"


def manifest_path(object_id_hex: str, version_hex: str) -> str:
    return f"{version_dir(object_id_hex, version_hex)}/{MANIFEST_NAME}"


def inline_path(object_id_hex: str, version_hex: str) -> str:
    """An inline version's one file: its manifest, then this disk's shard records. It sits
    beside the object directories, so writing it creates no directory."""
    return (
        f"{OBJECTS_DIR}/{object_id_hex[0:2]}/{object_id_hex[2:4]}/"
        f"{object_id_hex}.{version_hex}{INLINE_SUFFIX}"
    )


def manifest_file(object_id_hex: str, version_hex: str, inline: bool) -> str:
    """The file holding a version's manifest on a disk."""
    if inline:
        return inline_path(object_id_hex, version_hex)
    return manifest_path(object_id_hex, version_hex)


def shard_file(object_id_hex: str, version_hex: str, part_number: int, inline: bool) -> str:
    """The file holding a version's records of one part on a disk (for an inline version,
    the records follow the manifest envelope in that same file)."""
    if inline:
        return inline_path(object_id_hex, version_hex)
    return part_path(object_id_hex, version_hex, part_number)


def parse_inline_name(name: str) -> tuple[str, str] | None:
    """(object hex, version hex) of an inline version file's name, else None."""
    if len(name) != 65 + len(INLINE_SUFFIX) or not name.endswith(INLINE_SUFFIX):
        return None
    oid, dot, vhex = name[:32], name[32], name[33:65]
    if dot != "." or not (_is_hex32(oid) and _is_hex32(vhex)):
        return None
    return oid, vhex


def _is_hex32(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def part_name(part_number: int) -> str:
    return f"part.{part_number:05d}"


def part_path(object_id_hex: str, version_hex: str, part_number: int) -> str:
    return f"{version_dir(object_id_hex, version_hex)}/{part_name(part_number)}"


def upload_dir(upload_id: str) -> str:
    return f"{MULTIPART_DIR}/{upload_id}"


def upload_part_path(upload_id: str, part_number: int) -> str:
    return f"{upload_dir(upload_id)}/{part_name(part_number)}"


def bucket_record_path(bucket: str) -> str:
    return f"{BUCKETS_DIR}/{bucket}.json"


def parse_part_name(name: str) -> int | None:
    if len(name) == 10 and name.startswith("part.") and name[5:].isdigit():
        return int(name[5:])
    return None
