"""The healer's persisted state, kept in the index's LevelDB under the prefix "H".

    H q <bucket> NUL <key> NUL <version id>   queued repair (JSON: priority, attempts, due_ms,
                                              reason, added_ms)
    H x <bucket> NUL <key> NUL <version id>   unrepairable record (JSON: reason, detail, ms,
                                              block_min_good, k)
    H w <bucket> NUL <key> NUL <version id>   below k+m only for want of offline disks (JSON:
                                              disks, size, since_ms); repaired when they return
    H c                                       scrub checkpoint (JSON: last (bucket, key), pass
                                              start, last completed pass, counters)

Why the index and not a file of its own: it is already durable, atomic per write and opened
once per store; a queue entry is one small put, with no file format or rewrite-the-whole-file
step to get wrong. `Index.clear` (before a rebuild) keeps these keys: they name versions, and a
stale entry is simply dropped when the healer finds the version is no longer current.
Queue entries are written unsynced (a crash may lose the last few; the scrubber finds them
again); unrepairable records and checkpoints are synced.
"""

from __future__ import annotations

import json

from s3free.meta.index import Index

QUEUE = b"Hq"
UNREPAIRABLE = b"Hx"
WAITING = b"Hw"
CHECKPOINT = b"Hc"
_STOP = b"\xff"


def _j(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _vkey(tag: bytes, bucket: str, key: str, version_id: str) -> bytes:
    return tag + b"\x00".join((bucket.encode(), key.encode(), version_id.encode()))


def _split(raw: bytes, tag: bytes) -> tuple[str, str, str]:
    bucket, _, rest = raw[len(tag) :].partition(b"\x00")
    key, _, version = rest.rpartition(b"\x00")
    return bucket.decode(), key.decode(), version.decode()


class HealState:
    def __init__(self, index: Index) -> None:
        self.db = index.db

    # -- queue -------------------------------------------------------------------------------

    def queue_put(self, ident: tuple[str, str, str], record: dict) -> None:
        self.db.put(_vkey(QUEUE, *ident), _j(record))

    def queue_delete(self, ident: tuple[str, str, str]) -> None:
        self.db.delete(_vkey(QUEUE, *ident))

    def queue_all(self) -> list[tuple[tuple[str, str, str], dict]]:
        return [(_split(k, QUEUE), json.loads(v)) for k, v in self.db.iterator(prefix=QUEUE)]

    # -- unrepairable ------------------------------------------------------------------------

    def unrepairable_put(self, ident: tuple[str, str, str], record: dict) -> None:
        self.db.put(_vkey(UNREPAIRABLE, *ident), _j(record), sync=True)

    def unrepairable_delete(self, ident: tuple[str, str, str]) -> None:
        self.db.delete(_vkey(UNREPAIRABLE, *ident), sync=True)

    def unrepairable_all(self) -> list[tuple[tuple[str, str, str], dict]]:
        return [
            (_split(k, UNREPAIRABLE), json.loads(v))
            for k, v in self.db.iterator(prefix=UNREPAIRABLE)
        ]

    # -- waiting for offline disks ----------------------------------------------------------

    def waiting_apply(
        self, ops: list[tuple[tuple[str, str, str], frozenset[str], int, bool]], ms: int
    ) -> list[tuple[dict | None, dict | None]]:
        """Apply (ident, disks, size, replace) in order, in one synced batch: with replace the
        entry's disks become exactly `disks` (none: the entry goes), else `disks` are added.
        Returns (old record, new record) per op so the caller can keep its totals. Synced: a
        lost entry would leave a degraded object unrepaired until the next scrub."""
        seen: dict[bytes, dict | None] = {}
        out: list[tuple[dict | None, dict | None]] = []
        with self.db.write_batch(sync=True) as batch:
            for ident, disks, size, replace in ops:
                raw_key = _vkey(WAITING, *ident)
                if raw_key in seen:
                    old = seen[raw_key]
                else:
                    raw = self.db.get(raw_key)
                    old = json.loads(raw) if raw else None
                wanted = set(disks) if replace else set(disks) | set((old or {}).get("disks", []))
                new = None
                if wanted:
                    new = {
                        "disks": sorted(wanted),
                        "since_ms": old["since_ms"] if old else ms,
                        "size": size or (old or {}).get("size", 0),
                    }
                if new != old:
                    if new is None:
                        batch.delete(raw_key)
                    else:
                        batch.put(raw_key, _j(new))
                seen[raw_key] = new
                out.append((old, new))
        return out

    def waiting_page(
        self, after: tuple[str, str, str] | None, limit: int
    ) -> list[tuple[tuple[str, str, str], dict]]:
        """Up to `limit` entries in key order, after `after`."""
        start = _vkey(WAITING, *after) + b"\x00" if after is not None else WAITING
        out = []
        with self.db.iterator(start=start, stop=WAITING + _STOP) as it:
            for k, v in it:
                out.append((_split(k, WAITING), json.loads(v)))
                if len(out) >= limit:
                    break
        return out

    # -- scrub checkpoint --------------------------------------------------------------------

    def checkpoint(self) -> dict | None:
        raw = self.db.get(CHECKPOINT)
        return json.loads(raw) if raw else None

    def set_checkpoint(self, record: dict) -> None:
        self.db.put(CHECKPOINT, _j(record), sync=True)

    # -- reading the index for the scrubber --------------------------------------------------

    def manifests_after(
        self, bucket: str | None, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str, bytes]]:
        """Up to `limit` (bucket, key, manifest bytes) in index order, after `after`."""
        prefix = b"M" + (bucket.encode() + b"\x00" if bucket is not None else b"")
        start = prefix
        if after is not None:
            start = max(start, b"M" + after[0].encode() + b"\x00" + after[1].encode() + b"\x00")
        out = []
        with self.db.iterator(start=start, stop=prefix + _STOP) as it:
            for k, v in it:
                b, _, key = k[1:].partition(b"\x00")
                out.append((b.decode(), key.decode(), v))
                if len(out) >= limit:
                    break
        return out

    def count_objects(self, bucket: str | None) -> int:
        prefix = b"O" + (bucket.encode() + b"\x00" if bucket is not None else b"")
        with self.db.iterator(prefix=prefix, include_value=False) as it:
            return sum(1 for _ in it)

    def referenced_versions(self, candidates: set[str]) -> set[str]:
        """Which of these version ids some object's listing entry points at (one pass)."""
        found: set[str] = set()
        if not candidates:
            return found
        with self.db.iterator(prefix=b"O", include_key=False) as it:
            for value in it:
                version = json.loads(value).get("version")
                if version in candidates:
                    found.add(version)
        return found

    def journal_versions(self) -> set[str]:
        with self.db.iterator(prefix=b"J", include_value=False) as it:
            return {k[1:].decode() for k in it}

    def upload_references(self) -> tuple[set[str], set[str]]:
        """(upload ids, version ids) of the uploads in progress."""
        uploads, versions = set(), set()
        for k, v in self.db.iterator(prefix=b"U"):
            record = json.loads(v)
            uploads.add(k[1:].decode())
            versions.add(record.get("version_id", ""))
        return uploads, versions
