"""An in-process store on real disk directories, each behind a FaultyDisk, and the dataset
writer that records exactly which writes were acknowledged."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from chaos.data import Acks, Profile, Version
from chaos.faults import Budget, FaultLog, Injector
from chaos.locate import Layout
from s3free.engine import ObjectStore
from s3free.format.manifest import Manifest
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk

BUCKET = "chaos"


@dataclass
class Rig:
    root: Path
    profile: Profile
    seed: int
    rng: random.Random
    disks: list[FaultyDisk] = field(default_factory=list)
    store: ObjectStore | None = None
    acks: Acks = field(default_factory=Acks)
    log: FaultLog = field(default_factory=FaultLog)

    @property
    def disk_paths(self) -> list[Path]:
        return [self.root / f"disk{i}" for i in range(self.profile.disks)]

    @property
    def meta(self) -> Path:
        return self.root / "meta"

    async def open(self) -> ObjectStore:
        """(Re)open the store on the same directories, with fresh FaultyDisk wrappers."""
        self.disks = [FaultyDisk(LocalDisk(p)) for p in self.disk_paths]
        self.store = await ObjectStore.open(
            self.disks,
            meta_dir=self.meta,
            k=self.profile.k,
            m=self.profile.m,
            block_size=self.profile.block_size,
            min_part_size=1,
            io_threads=8,
        )
        return self.store

    async def close(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            await store.close()

    def layout(self) -> Layout:
        assert self.store is not None
        return Layout({s.disk_id: Path(s.disk.root) for s in self.store.diskset.slots})

    def injector(self, budget: Budget | None = None) -> Injector:
        return Injector(self.layout(), self.rng, budget or Budget(self.profile.m), self.log)

    def disk_index(self, disk_id: str) -> int:
        assert self.store is not None
        return next(s.position for s in self.store.diskset.slots if s.disk_id == disk_id)

    async def manifests(self) -> dict[str, Manifest]:
        """The current manifest of every acknowledged key (from the index)."""
        assert self.store is not None
        return {key: await self.store.get_manifest(BUCKET, key) for key in sorted(self.acks.done)}

    async def write(self, versions: list[Version]) -> None:
        """Write each version (PUT or multipart); record BEGIN/ACK/failure exactly."""
        assert self.store is not None
        for version in versions:
            self.acks.begin(version)
            try:
                await put_engine(self.store, BUCKET, version)
            except Exception as exc:  # a refused write is recorded, and the scenario judges
                self.acks.fail(version, repr(exc))
            else:
                self.acks.ack(version)


async def put_engine(store: ObjectStore, bucket: str, version: Version) -> None:
    if not version.parts:
        info = await store.put_object(
            bucket, version.key, version.stream(), expected_size=version.size
        )
    else:
        upload = await store.create_multipart_upload(bucket, version.key)
        etags = []
        for number, (a, b) in enumerate(version.part_ranges(), 1):
            part = await store.upload_part(
                bucket, version.key, upload, number, version.stream(a, b), expected_size=b - a
            )
            etags.append((number, part.etag))
        info = await store.complete_multipart_upload(bucket, version.key, upload, etags)
    if info.etag != version.etag():
        raise AssertionError(f"{version.key}: stored ETag {info.etag}, expected {version.etag()}")
