"""`s3free disk` working directly on the disks, when no server holds the store.

`LocalDisks` offers the same calls as the admin API (status, scrub, repair, job, verify,
replace), answering the same JSON, so the CLI prints one way whichever it talks to. It opens
the ObjectStore itself (which takes the store lock: a running server makes that fail with
StoreInUse) and, for scrub/repair/verify, a HealService of its own. It refuses paths that are
not disks of an s3free store before anything could format them as a new set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s3free.engine import ObjectStore
from s3free.engine.diskmonitor import DiskMonitor, MonitorConfig
from s3free.errors import DiskSetError
from s3free.format.diskformat import DiskFormat
from s3free.format.errors import FormatError
from s3free.heal import HealService
from s3free.states import DiskState
from s3free.storage.layout import FORMAT_FILE


class NotAStore(DiskSetError):
    """The paths given are not the disks of one s3free store."""


def check_paths(paths: list[Path]) -> None:
    """Refuse before opening when no path is a formatted disk: opening would otherwise
    format them all as a brand-new set."""
    if not paths:
        raise NotAStore("no disks given (use --disk PATH for each disk, or --config FILE)")
    found = []
    for path in paths:
        try:
            found.append(DiskFormat.decode((Path(path) / FORMAT_FILE).read_bytes()))
        except (OSError, FormatError):
            continue
    if not found:
        shown = ", ".join(str(p) for p in paths)
        raise NotAStore(f"not a disk of an s3free store (no usable format.json): {shown}")


class LocalDisks:
    def __init__(self, store: ObjectStore, monitor: DiskMonitor) -> None:
        self.store = store
        self.monitor = monitor
        self._heal: Any = None

    @classmethod
    async def open(cls, paths: list[Path], meta_dir: Path) -> LocalDisks:
        check_paths(paths)
        store = await ObjectStore.open(paths, meta_dir=meta_dir)
        monitor = DiskMonitor(store, MonitorConfig(format_fresh=False, count_budget_s=5.0))
        try:
            await monitor.start(background=False)
        except BaseException:
            await store.close()
            raise
        return cls(store, monitor)

    async def close(self) -> None:
        if self._heal is not None:
            await self._heal.stop()
        await self.monitor.stop()
        await self.store.close()

    async def heal(self) -> Any:
        if self._heal is None:
            heal = HealService(self.store)
            await heal.start()
            self._heal = heal
            self.monitor.attach_healer(heal)
        return self._heal

    # -- the admin API's calls ------------------------------------------------------------

    async def status(self) -> dict:
        status = await self.monitor.status()
        status["heal"] = self._heal.status() if self._heal is not None else None
        return status

    async def scrub(self, bucket: str | None, rate_mb_s: float | None) -> dict:
        await self._bucket(bucket)
        return (await self.heal()).start_scrub(bucket, rate_mb_s).to_json()

    async def repair(
        self, bucket: str | None, key: str | None, rate_mb_s: float | None = None
    ) -> dict:
        await self._bucket(bucket)
        if bucket is not None and key is not None:
            await self.store.get_manifest(bucket, key)  # NoSuchKey, as the admin API
        return (await self.heal()).start_repair(bucket, key, rate_mb_s).to_json()

    async def job(self, job_id: str) -> dict | None:
        job = (await self.heal()).job(job_id)
        return job.to_json() if job is not None else None

    async def verify(self, bucket: str, key: str) -> dict:
        await self._bucket(bucket)
        return (await (await self.heal()).verify(bucket, key)).to_json()

    async def replace(self, disk: str, rate_mb_s: float | None = None) -> dict:
        from s3free.admin.disks import _action, find_slot, pace_heal

        position = find_slot(self.monitor, disk)
        before = self.monitor.state(self.monitor.diskset.slots[position])
        status = await self.monitor.check(position)
        if status["state"] == DiskState.HEALING:
            await self.heal()
            status = await self.monitor.check(position)  # starts the repair pass
        answer: dict[str, Any] = {"disk": status, "action": _action(before, status)}
        if rate_mb_s is not None:
            answer["rate_mb_s"] = pace_heal(self._heal, status, rate_mb_s)
        return answer

    async def quarantine(self) -> dict:
        from s3free.heal import quarantine

        return await self.store.run_io(quarantine.report, self.store.diskset)

    async def purge_quarantine(self, older_than_s: float, force: bool) -> dict:
        from s3free.heal import quarantine

        return await self.store.run_io(quarantine.purge, self.store.diskset, older_than_s, force)

    async def _bucket(self, bucket: str | None) -> None:
        if bucket is not None:
            await self.store.head_bucket(bucket)  # NoSuchBucket

    async def settle(self) -> None:
        """One more check, so a finished healing pass is recorded (the server's monitor
        loop does this on its own)."""
        await self.monitor.check_all()
