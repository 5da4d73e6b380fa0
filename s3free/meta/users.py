"""Users and their keys: the root user from configuration, the others created through the
admin API, kept as records on every disk (so they survive a lost index) and cached in memory.

Secrets must be usable for SigV4 (an HMAC key), so they cannot be hashed: they are encrypted at
rest with a key derived from the root secret (BLAKE3 derive_key), as a BLAKE3 keystream (XOF)
XOR, with a BLAKE3 MAC over nonce and ciphertext. Without the root secret the records reveal
names and access keys only. Secrets are never logged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import logging
import os
import re
import time
from dataclasses import dataclass

import blake3

from s3free.errors import InvalidArgument, StorageError
from s3free.storage.diskset import DiskSet

log = logging.getLogger(__name__)

USERS_DIR = "users"
ROOT_USER = "root"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_ACCESS_KEY = re.compile(r"^[A-Za-z0-9_.~+=-]{3,128}$")


class UserExists(StorageError):
    pass


class NoSuchUser(StorageError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    access_key: str
    secret_key: str
    created_ms: int = 0

    @property
    def is_root(self) -> bool:
        return self.name == ROOT_USER

    def __repr__(self) -> str:  # never show the secret
        return f"User({self.name!r}, access_key={self.access_key!r})"


class _Sealer:
    def __init__(self, root_secret: str) -> None:
        self._enc = blake3.blake3(
            root_secret.encode(), derive_key_context="s3free user secret encryption v1"
        ).digest()
        self._mac = blake3.blake3(
            root_secret.encode(), derive_key_context="s3free user secret mac v1"
        ).digest()

    def seal(self, plaintext: str) -> dict:
        nonce = os.urandom(16)
        data = plaintext.encode()
        stream = blake3.blake3(nonce, key=self._enc).digest(length=len(data))
        ct = bytes(a ^ b for a, b in zip(data, stream, strict=True))
        mac = blake3.blake3(nonce + ct, key=self._mac).digest()
        return {"ct": ct.hex(), "mac": mac.hex(), "nonce": nonce.hex()}

    def open(self, sealed: dict) -> str:
        nonce, ct = bytes.fromhex(sealed["nonce"]), bytes.fromhex(sealed["ct"])
        mac = blake3.blake3(nonce + ct, key=self._mac).digest()
        if not hmac.compare_digest(mac, bytes.fromhex(sealed["mac"])):
            raise ValueError("user secret does not authenticate (was the root secret changed?)")
        stream = blake3.blake3(nonce, key=self._enc).digest(length=len(ct))
        return bytes(a ^ b for a, b in zip(ct, stream, strict=True)).decode()


class UserStore:
    def __init__(self, root: User, diskset: DiskSet, executor: concurrent.futures.Executor) -> None:
        self.root = root
        self._set = diskset
        self._executor = executor
        self._sealer = _Sealer(root.secret_key)
        self._users: dict[str, User] = {}
        self._by_key: dict[str, User] = {root.access_key: root}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Read the user records from the online disks (first readable copy wins)."""
        users = await asyncio.get_running_loop().run_in_executor(self._executor, self._scan)
        self._users = users
        self._by_key = {u.access_key: u for u in users.values()}
        self._by_key[self.root.access_key] = self.root

    def _scan(self) -> dict[str, User]:
        found: dict[str, User] = {}
        for slot in self._set.online_slots():
            for entry in slot.disk.list_dir(USERS_DIR):
                name = entry.removesuffix(".json")
                if name in found or not entry.endswith(".json"):
                    continue
                try:
                    record = json.loads(slot.disk.read_file(f"{USERS_DIR}/{entry}"))
                    found[name] = User(
                        record["name"],
                        record["access_key"],
                        self._sealer.open(record["secret"]),
                        record["created_ms"],
                    )
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    log.error("user record %s on %s unusable: %s", entry, slot.disk.root, exc)
        return found

    def lookup(self, access_key: str) -> User | None:
        return self._by_key.get(access_key)

    def list(self) -> list[User]:
        return [self.root, *sorted(self._users.values(), key=lambda u: u.name)]

    async def add(self, name: str, access_key: str, secret_key: str) -> User:
        if not _NAME.fullmatch(name) or name == ROOT_USER:
            raise InvalidArgument(f"user name {name!r} is not allowed (1-64 of A-Z a-z 0-9 _.@-)")
        if not _ACCESS_KEY.fullmatch(access_key):
            raise InvalidArgument("access key must be 3-128 characters of A-Z a-z 0-9 _.~+=-")
        if not 8 <= len(secret_key) <= 128:
            raise InvalidArgument("secret key must be 8-128 characters")
        async with self._lock:
            if name in self._users:
                raise UserExists(f"user {name} already exists")
            if access_key in self._by_key:
                raise UserExists("that access key is already in use")
            user = User(name, access_key, secret_key, time.time_ns() // 1_000_000)
            record = {
                "access_key": access_key,
                "created_ms": user.created_ms,
                "name": name,
                "secret": self._sealer.seal(secret_key),
            }
            blob = (json.dumps(record, sort_keys=True) + "\n").encode()
            await self._on_disks(lambda s: s.disk.write_file(f"{USERS_DIR}/{name}.json", blob))
            self._users[name] = user
            self._by_key[access_key] = user
            return user

    async def remove(self, name: str) -> None:
        async with self._lock:
            user = self._users.get(name)
            if user is None:
                raise NoSuchUser(f"user {name} does not exist")
            await self._on_disks(lambda s: s.disk.remove(f"{USERS_DIR}/{name}.json"))
            del self._users[name]
            self._by_key.pop(user.access_key, None)

    async def restore_records(self) -> int:
        """Rewrite each user's record on every online disk whose copy is missing or unusable,
        with the copy most disks agree on among those that open with the root secret (the
        heal service's whole-store passes call this, so records do not rot away one disk at a
        time). Returns how many copies were rewritten."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            names = sorted(self._users)
            return await loop.run_in_executor(self._executor, self._restore, names)

    def _restore(self, names: list[str]) -> int:
        rewritten = 0
        slots = self._set.online_slots()
        for name in names:
            path = f"{USERS_DIR}/{name}.json"
            copies: dict[int, bytes | None] = {}  # slot position -> usable copy
            for slot in slots:
                try:
                    blob = slot.disk.read_file(path)
                    record = json.loads(blob)
                    self._sealer.open(record["secret"])
                    copies[slot.position] = blob
                except (OSError, ValueError, KeyError, TypeError):
                    copies[slot.position] = None
            good = [b for b in copies.values() if b is not None]
            if not good:
                log.error("user %s has no usable record on any online disk", name)
                continue
            best = max(set(good), key=good.count)
            for slot in slots:
                if copies[slot.position] != best:
                    try:
                        slot.disk.write_file(path, best)
                        rewritten += 1
                    except OSError as exc:
                        log.warning(
                            "user record %s on %s not restored: %s", name, slot.disk.root, exc
                        )
        return rewritten

    async def _on_disks(self, fn) -> None:
        loop = asyncio.get_running_loop()
        slots = self._set.online_slots()
        results = await asyncio.gather(
            *(loop.run_in_executor(self._executor, fn, s) for s in slots), return_exceptions=True
        )
        ok = sum(not isinstance(r, BaseException) for r in results)
        for slot, outcome in zip(slots, results, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("user record on %s: %s", slot.disk.root, outcome)
        if ok < self._set.write_quorum:
            raise StorageError(f"user record reached only {ok} disks")
