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
import uuid
from dataclasses import dataclass

import blake3

from s3free.errors import InvalidArgument, StorageError
from s3free.format import records
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
    # Stable across renames of nothing and re-adds of a name: bucket owners are ids. Users
    # recorded before ids (and root) have their name as their id.
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.name)

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
        # name -> generation of the newest record seen (live or tombstone), so the next
        # change of that name is written above it.
        self._gens: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Read the user records from the online disks: per name the newest copy wins
        (format/records.py), and a tombstone means the user was removed."""
        loop = asyncio.get_running_loop()
        users, gens = await loop.run_in_executor(self._executor, self._scan)
        self._users, self._gens = users, gens
        self._reindex()

    def _reindex(self) -> None:
        self._by_key = {u.access_key: u for u in self._users.values()}
        self._by_key[self.root.access_key] = self.root

    def _copies(self, slots, name: str) -> dict[int, tuple[dict, bytes] | None]:
        """slot position -> that disk's usable copy of the user's record (None: missing or
        unusable: unreadable, not JSON, another name, a secret that does not open)."""
        out: dict[int, tuple[dict, bytes] | None] = {}
        for slot in slots:
            out[slot.position] = None
            try:
                blob = slot.disk.read_file(f"{USERS_DIR}/{name}.json")
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("user record %s on %s unreadable: %s", name, slot.disk.root, exc)
                continue
            try:
                out[slot.position] = (self._parse(name, blob), blob)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("user record %s on %s unusable: %s", name, slot.disk.root, exc)
        return out

    def _parse(self, name: str, blob: bytes) -> dict:
        record = json.loads(blob)
        if not isinstance(record, dict) or record.get("name") != name:
            raise ValueError("record does not name its user")
        records.generation_of(record)
        if not records.is_tombstone(record):
            if not isinstance(record["access_key"], str) or not isinstance(
                record["created_ms"], int
            ):
                raise ValueError("access key or creation time missing")
            self._sealer.open(record["secret"])
        return record

    def _user(self, record: dict) -> User:
        return User(
            record["name"],
            record["access_key"],
            self._sealer.open(record["secret"]),
            record["created_ms"],
            record.get("id", ""),
        )

    def _names_on_disks(self, slots) -> set[str]:
        names: set[str] = set()
        for slot in slots:
            names.update(
                e.removesuffix(".json")
                for e in slot.disk.list_dir(USERS_DIR)
                if e.endswith(".json")
            )
        return names

    def _scan(self) -> tuple[dict[str, User], dict[str, int]]:
        found: dict[str, User] = {}
        gens: dict[str, int] = {}
        slots = self._set.online_slots()
        for name in sorted(self._names_on_disks(slots)):
            good = [c for c in self._copies(slots, name).values() if c is not None]
            if not good:
                continue
            record, _ = records.newest(good)
            gens[name] = records.generation_of(record)
            if not records.is_tombstone(record):
                found[name] = self._user(record)
        return found, gens

    def lookup(self, access_key: str) -> User | None:
        return self._by_key.get(access_key)

    def list(self) -> list[User]:
        return [self.root, *sorted(self._users.values(), key=lambda u: u.name)]

    def display_name(self, user_id: str) -> str:
        """The name of the user with this id (bucket owners are ids); a removed user's id is
        shown as it is. "" and "root" are the root user."""
        if user_id in ("", self.root.id):
            return self.root.name
        for user in self._users.values():
            if user.id == user_id:
                return user.name
        return user_id

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
            # A fresh random id: a name removed and added again is a new user, who owns
            # none of the buckets of the one before.
            user = User(name, access_key, secret_key, time.time_ns() // 1_000_000, uuid.uuid4().hex)
            record = {
                "access_key": access_key,
                "created_ms": user.created_ms,
                "generation": await self._next_generation(name),
                "id": user.id,
                "name": name,
                "secret": self._sealer.seal(secret_key),
            }
            await self._write(name, record)
            self._users[name] = user
            self._by_key[access_key] = user
            return user

    async def remove(self, name: str) -> None:
        """Write a tombstone (not remove the files): a disk away now still holds the live
        record, which loses to the tombstone's higher generation when it is back."""
        async with self._lock:
            user = self._users.get(name)
            if user is None:
                raise NoSuchUser(f"user {name} does not exist")
            await self._write(name, records.tombstone(name, await self._next_generation(name)))
            del self._users[name]
            self._by_key.pop(user.access_key, None)

    async def _next_generation(self, name: str) -> int:
        def highest() -> int:
            copies = self._copies(self._set.online_slots(), name).values()
            return max((records.generation_of(c[0]) for c in copies if c is not None), default=0)

        on_disk = await asyncio.get_running_loop().run_in_executor(self._executor, highest)
        return records.next_generation(on_disk, self._gens.get(name, 0))

    async def _write(self, name: str, record: dict) -> None:
        blob = records.encode(record)
        await self._on_disks(lambda s: s.disk.write_file(f"{USERS_DIR}/{name}.json", blob))
        self._gens[name] = record["generation"]

    async def restore_records(self) -> int:
        """Bring every online disk's copy of every user record (tombstones included) to the
        newest copy any online disk holds (a disk that was away holds stale ones; rot and
        loss are repaired the same way), and the users in memory with it. The heal service
        calls this in whole-store passes and when a disk comes back. Returns how many copies
        were rewritten."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            rewritten, users, gens = await loop.run_in_executor(self._executor, self._restore)
            for name, user in users.items():
                if user is None:
                    self._users.pop(name, None)
                else:
                    self._users[name] = user
            self._gens.update(gens)
            self._reindex()
            return rewritten

    def _restore(self) -> tuple[int, dict[str, User | None], dict[str, int]]:
        rewritten = 0
        users: dict[str, User | None] = {}
        gens: dict[str, int] = {}
        slots = self._set.online_slots()
        for name in sorted(self._names_on_disks(slots) | set(self._users)):
            path = f"{USERS_DIR}/{name}.json"
            copies = self._copies(slots, name)
            good = [c for c in copies.values() if c is not None]
            if not good:
                log.error("user %s has no usable record on any online disk", name)
                continue
            record, best = records.newest(good)
            gens[name] = records.generation_of(record)
            current = self._users.get(name)
            if records.is_tombstone(record):
                users[name] = None
            elif current is None or current.id != record.get("id", name):
                users[name] = self._user(record)  # a newer record than the one in memory
            for slot in slots:
                copy = copies[slot.position]
                if copy is None or copy[1] != best:
                    try:
                        slot.disk.write_file(path, best)
                        rewritten += 1
                    except OSError as exc:
                        log.warning(
                            "user record %s on %s not restored: %s", name, slot.disk.root, exc
                        )
        return rewritten, users, gens

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
