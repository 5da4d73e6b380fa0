"""Recently used small manifests, kept decoded.

Decoding a manifest (CRC, JSON, field checks, canonical form) costs tens of microseconds, a
large share of a 4 KiB GET. The cache is keyed by the manifest's exact encoded bytes as the
index holds them, so a changed manifest is never answered from it: a lookup still reads the
index, and only the decode is saved. Versions just written are remembered too, so reading back
what was written (the common pattern of backup verification) skips the decode as well.

A Manifest is never modified once made (changes go through dataclasses.replace), so one decoded
copy is safely shared between requests. Only manifests up to MAX_BYTES encoded are kept (small
objects; a 10,000-part manifest is decoded each time it is read, against gigabytes of data).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from s3free.format.manifest import Manifest
from s3free.meta.index import Index

MAX_BYTES = 4096
ENTRIES = 4096  # at most about 16 MiB with the decoded copies


class ManifestCache:
    def __init__(self, entries: int = ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._items: OrderedDict[bytes, Manifest] = OrderedDict()
        self._lock = threading.Lock()  # lookups come from the I/O pool's threads

    def decode(self, raw: bytes) -> Manifest:
        """The manifest these bytes encode (FormatError if they do not)."""
        if len(raw) > self._max_bytes:
            return Manifest.decode(raw)
        raw = bytes(raw)
        with self._lock:
            found = self._items.get(raw)
            if found is not None:
                self._items.move_to_end(raw)
                return found
        manifest = Manifest.decode(raw)
        self.remember(raw, manifest)
        return manifest

    def remember(self, raw: bytes, manifest: Manifest) -> None:
        """Keep a manifest whose encoding is known (one just written)."""
        if len(raw) > self._max_bytes:
            return
        key = bytes(raw)
        with self._lock:
            self._items[key] = manifest
            self._items.move_to_end(key)
            while len(self._items) > self._entries:
                self._items.popitem(last=False)


class Manifests:
    """The current manifest of a key: the index's bytes, decoded through the cache."""

    def __init__(self, index: Index, cache: ManifestCache | None = None) -> None:
        self.index = index
        self.cache = cache or ManifestCache()

    def load(self, bucket: str, key: str) -> Manifest | None:
        """Index lookup and decode together, off the loop (a 10,000-part manifest is ~1 MB)."""
        raw = self.index.get_manifest(bucket, key)  # an index.get stage (meta/index.py)
        return self.cache.decode(raw) if raw is not None else None

    def remember(self, raw: bytes, manifest: Manifest) -> None:
        self.cache.remember(raw, manifest)
