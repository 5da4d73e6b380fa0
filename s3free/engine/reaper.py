"""When a replaced or deleted version's files may go, and removing them.

A reader leases the version it reads; a version replaced or deleted meanwhile is doomed and its
files are removed when the last lease ends. A lookup (index read, then lease) in flight when a
version is retired may have found it without leasing it yet: its removal waits for the lookups
in flight at that moment (not for later ones, which see the new version).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from s3free.engine.fanout import RunIO
from s3free.format.ids import version_hex
from s3free.format.manifest import Manifest
from s3free.meta.index import Index
from s3free.storage.diskset import DiskSet, DiskSlot
from s3free.storage.layout import inline_path, version_dir

log = logging.getLogger(__name__)

# Removals that missed a disk, remembered for `settle` (beyond this, the journal alone
# remembers them and the next start-up settles them).
MAX_UNSETTLED = 100_000


class VersionReaper:
    def __init__(self, diskset: DiskSet, index: Index, run_io: RunIO) -> None:
        self.diskset = diskset
        self.index = index
        self.run_io = run_io
        # Called on the loop with each version a PUT, COPY, complete or DELETE replaced: what
        # the healer remembers about it (queued, waiting, unrepairable) is void.
        self.retire_listeners: list[Callable[[Manifest], None]] = []
        self._leases: dict[str, int] = {}
        self._doomed: dict[str, Manifest] = {}
        self._lookups: set[int] = set()  # lookups between index read and lease
        self._lookup_ids = itertools.count()
        self._deferred: list[tuple[set[int], Manifest]] = []
        self._background: set[asyncio.Task[None]] = set()
        # Versions removed while some of their disks were offline or failed: their files stay
        # there (and their journal entry) until `settle` finishes the job.
        self._unsettled: dict[str, tuple[str, tuple[str, ...]]] = {}

    # -- leases ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lookup(self) -> Iterator[None]:
        """Around an index read that leases what it finds: a version retired meanwhile is not
        removed before the block ends (by then the reader holds its lease)."""
        token = next(self._lookup_ids)
        self._lookups.add(token)
        try:
            yield
        finally:
            self._lookup_done(token)

    def lease(self, version_id: str) -> None:
        self._leases[version_id] = self._leases.get(version_id, 0) + 1

    def unlease(self, version_id: str) -> None:
        left = self._leases[version_id] - 1
        if left:
            self._leases[version_id] = left
            return
        del self._leases[version_id]
        doomed = self._doomed.pop(version_id, None)
        if doomed is not None:
            self.spawn(self.remove_version(doomed))

    def in_use(self, version_id: str) -> bool:
        """Whether a reader holds the version or its removal is still pending."""
        return (
            version_id in self._leases
            or version_id in self._doomed
            or any(m.version_id == version_id for _, m in self._deferred)
        )

    # -- retiring ----------------------------------------------------------------------------

    def retire(self, manifest: Manifest) -> None:
        """Remove a replaced or deleted version's files now, or when its last reader ends."""
        for listener in list(self.retire_listeners):
            try:
                listener(manifest)
            except Exception:
                log.exception("retire listener failed")
        if self._lookups:
            self._deferred.append((set(self._lookups), manifest))
        else:
            self._retire_now(manifest)

    def _lookup_done(self, token: int) -> None:
        self._lookups.discard(token)
        for waiting, _ in self._deferred:
            waiting.discard(token)
        ready = [m for waiting, m in self._deferred if not waiting]
        self._deferred = [(w, m) for w, m in self._deferred if w]
        for manifest in ready:
            self._retire_now(manifest)

    def _retire_now(self, manifest: Manifest) -> None:
        if manifest.version_id in self._leases:
            self._doomed[manifest.version_id] = manifest
        else:
            self.spawn(self.remove_version(manifest))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run in the background; close and wait_idle wait for it."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def wait_idle(self) -> None:
        """Wait for background removals (tests and shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- removal -----------------------------------------------------------------------------

    async def remove_version(self, manifest: Manifest) -> None:
        await self.remove_files(manifest.object_id, manifest.version_id, manifest.placement)

    async def remove_files(self, object_id: str, version_id: str, placement: Sequence[str]) -> None:
        """Remove one version's directory everywhere, then its journal entry (kept when a
        disk failed or was offline, so the next start-up tries again)."""
        vhex = version_hex(version_id)
        vdir = version_dir(object_id, vhex)
        inline = inline_path(object_id, vhex)
        online = self.diskset.online_slots_of(placement)

        def remove(slot: DiskSlot) -> None:
            # A version is a directory, or (inline) one file: whichever it is, both go.
            slot.disk.remove_tree(vdir)
            slot.disk.remove(inline)

        results = await asyncio.gather(
            *(self.run_io(remove, s) for s in online), return_exceptions=True
        )
        failed = False
        for outcome in results:
            if isinstance(outcome, BaseException):
                # Left for the scrubber's orphan collection; never silently.
                log.warning("could not remove %s: %s", vdir, outcome)
                failed = True
        if not failed and len(online) == len(placement):
            await self.run_io(self.index.drop_journal, version_id)
            self._unsettled.pop(version_id, None)
        elif len(self._unsettled) < MAX_UNSETTLED or version_id in self._unsettled:
            self._unsettled[version_id] = (object_id, tuple(placement))
        # else: the journal entry alone remembers it, and the next start-up settles it

    async def settle(self) -> int:
        """Remove again the versions whose removal missed a disk that was offline or failed;
        returns how many are now gone everywhere."""
        settled = 0
        for version_id, (oid, placement) in list(self._unsettled.items()):
            await self.remove_files(oid, version_id, placement)
            settled += version_id not in self._unsettled
        return settled
