"""Checks after faults: every acknowledged object reads back byte-identical (streamed against
the generator), nothing unacknowledged is visible, and which files disappeared from the disks.

Works on an ObjectStore in this process (`verify_engine`) or through a real server with boto3
(`verify_s3`); both return a Verdict listing every problem rather than stopping at the first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from chaos.data import Acks, Matcher, Version
from s3free.errors import NoSuchKey


@dataclass
class Verdict:
    bytes_verified: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def merge(self, other: Verdict) -> None:
        self.bytes_verified += other.bytes_verified
        self.objects += other.objects
        self.problems.extend(other.problems)


def _judge(key: str, allowed: list[Version | None], found: Version | None, err: str) -> str:
    """ "" when what was found is one of the allowed states of key, else the problem."""
    if found is None:
        if None in allowed:
            return ""
        return f"{key}: acknowledged but {err or 'absent'}"
    if err:
        return f"{key}: {err}"
    return ""


async def read_engine(store, bucket: str, key: str, candidates: list[Version]) -> tuple:
    """(matching version or None, bytes read, error text). NoSuchKey gives (None, 0, "")."""
    try:
        reader = await store.open_object(bucket, key)
    except NoSuchKey:
        return None, 0, ""
    matchers = [Matcher(v) for v in candidates if v.size == reader.content_length]
    got = 0
    try:
        async for chunk in reader:
            got += len(chunk)
            matchers = [m for m in matchers if m.feed(chunk)]
            if not matchers:
                await reader.aclose()
                break
    except Exception as exc:  # a read error is a finding, not a crash of the suite
        return None, got, f"read failed after {got} bytes: {exc!r}"
    for matcher in matchers:
        if not matcher.finish():
            return matcher.version, got, ""
    return None, got, f"{got} bytes matching none of generations {[v.gen for v in candidates]}"


async def verify_engine(store, bucket: str, acks: Acks) -> Verdict:
    """Read every key that was acknowledged or in flight; list the bucket."""
    verdict = Verdict()
    visible: dict[str, Version] = {}
    for key in sorted(acks.keys):
        allowed = acks.allowed(key)
        candidates = [v for v in allowed if v is not None]
        found, got, err = await read_engine(store, bucket, key, candidates)
        verdict.bytes_verified += got if found is not None else 0
        verdict.objects += 1
        problem = _judge(key, allowed, found, err)
        if problem:
            verdict.problems.append(problem)
        if found is not None:
            visible[key] = found
            head = await store.head_object(bucket, key)
            if head.etag != found.etag() or head.size != found.size:
                verdict.problems.append(f"{key}: HEAD says {head.size} bytes ETag {head.etag}")
    listed = await list_engine(store, bucket)
    verdict.problems.extend(_listing_problems(listed, visible, acks))
    return verdict


async def list_engine(store, bucket: str) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    after = ""
    for _ in range(100_000):
        page = await store.list_objects(bucket, start_after=after, max_keys=1000)
        for o in page.objects:
            out[o.key] = (o.size, o.etag)
        if not page.is_truncated or not page.objects:
            break
        after = page.objects[-1].key
    return out


def _listing_problems(
    listed: dict[str, tuple[int, str]], visible: dict[str, Version], acks: Acks
) -> list[str]:
    problems = []
    for key in sorted(set(listed) - acks.keys):
        problems.append(f"{key}: listed but never acknowledged nor in flight")
    for key in sorted(set(listed) & acks.keys):
        if key not in visible:
            problems.append(f"{key}: listed but does not read")
        elif listed[key] != (visible[key].size, visible[key].etag()):
            problems.append(f"{key}: listing says {listed[key]}")
    for key in sorted(set(visible) - set(listed)):
        problems.append(f"{key}: reads but is not listed")
    return problems


def verify_s3(client, bucket: str, acks: Acks) -> Verdict:
    """The same checks through a real server (boto3 client, bodies streamed)."""
    verdict = Verdict()
    visible: dict[str, Version] = {}
    for key in sorted(acks.keys):
        allowed = acks.allowed(key)
        candidates = [v for v in allowed if v is not None]
        found, got, err = None, 0, ""
        try:
            resp = client.get_object(Bucket=bucket, Key=key)
        except client.exceptions.NoSuchKey:
            resp = None
        except Exception as exc:
            err = f"GET failed: {exc!r}"
            resp = None
        if resp is not None:
            matchers = [Matcher(v) for v in candidates if v.size == resp["ContentLength"]]
            try:
                for chunk in resp["Body"].iter_chunks(256 * 1024):
                    got += len(chunk)
                    matchers = [m for m in matchers if m.feed(chunk)]
                    if not matchers:
                        break
            except Exception as exc:
                err = f"GET body failed after {got} bytes: {exc!r}"
            finally:
                resp["Body"].close()
            if not err:
                found = next((m.version for m in matchers if not m.finish()), None)
                if found is None:
                    err = f"{got} bytes matching none of {[v.gen for v in candidates]}"
                elif resp["ETag"].strip('"') != found.etag():
                    err = f"ETag {resp['ETag']} for generation {found.gen}"
                    found = None
        verdict.objects += 1
        if found is not None:
            visible[key] = found
            verdict.bytes_verified += got
        problem = _judge(key, allowed, found, err)
        if problem:
            verdict.problems.append(problem)
    listed: dict[str, tuple[int, str]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            listed[o["Key"]] = (o["Size"], o["ETag"].strip('"'))
    verdict.problems.extend(_listing_problems(listed, visible, acks))
    return verdict


# -- the files on the disks -------------------------------------------------------------------


def inventory(roots: list[Path]) -> set[str]:
    """Every file on the disks ("<disk name>/<relative path>"), temp files included."""
    out = set()
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), root.parent)
                out.add(rel.replace(os.sep, "/"))
    return out


def removed_unexpectedly(before: set[str], after: set[str], expected: set[str]) -> list[str]:
    """Files that vanished although they were not expected orphans (prefixes allowed)."""
    gone = before - after
    return sorted(p for p in gone if not any(p == e or p.startswith(e + "/") for e in expected))
