"""Scenarios that SIGKILL a real server process: during PUTs, and during
CompleteMultipartUpload. After each kill the server is restarted on the same disks and every
acknowledged object must read back byte for byte through it; the one write in flight may be
absent or complete, never anything else; nothing never written is listed; no temp file is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.data import MIB, Acks, Profile, Version
from chaos.proc import ServerProcess, start
from chaos.report import Row, finish
from chaos.verify import Verdict, verify_s3

BUCKET = "chaos"
MIN_PART = 5 * MIB  # the server's minimum multipart part size (all parts but the last)


def server_dataset(profile: Profile, seed: int, gen: int) -> list[Version]:
    """The mixed sizes, with the multipart object cut to the server's minimum part size."""
    out = [Version(f"{name}/{gen}", gen, size, seed=seed) for name, size in profile.sizes()]
    out.append(Version(f"multipart/{gen}", gen, MIN_PART + 777, parts=(MIN_PART, 777), seed=seed))
    return out


def put_s3(client, version: Version) -> None:
    if not version.parts:
        resp = client.put_object(
            Bucket=BUCKET, Key=version.key, Body=version.file(), ContentLength=version.size
        )
        etag = resp["ETag"].strip('"')
    else:
        upload = client.create_multipart_upload(Bucket=BUCKET, Key=version.key)["UploadId"]
        parts = upload_parts(client, version, upload)
        etag = complete(client, version, upload, parts)
    if etag != version.etag():
        raise AssertionError(f"{version.key}: ETag {etag}, expected {version.etag()}")


def upload_parts(client, version: Version, upload: str) -> list[dict]:
    parts = []
    for number, (a, b) in enumerate(version.part_ranges(), 1):
        resp = client.upload_part(
            Bucket=BUCKET,
            Key=version.key,
            UploadId=upload,
            PartNumber=number,
            Body=version.file(a, b),
            ContentLength=b - a,
        )
        parts.append({"PartNumber": number, "ETag": resp["ETag"]})
    return parts


def complete(client, version: Version, upload: str, parts: list[dict]) -> str:
    resp = client.complete_multipart_upload(
        Bucket=BUCKET, Key=version.key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return resp["ETag"].strip('"')


def temp_files(root: Path, disks: int) -> list[Path]:
    out = []
    for i in range(disks):
        tmp = root / f"disk{i}" / ".s3free.tmp"
        if tmp.is_dir():
            out.extend(tmp.iterdir())
    return out


class Writer(threading.Thread):
    """Writes versions one at a time (BEGIN, ACK) until the server dies or the list ends."""

    def __init__(self, server: ServerProcess, acks: Acks, versions: list[Version]) -> None:
        super().__init__(daemon=True)
        self.server, self.acks, self.versions = server, acks, versions
        self.client = server.client()
        self.error = ""

    def run(self) -> None:
        for version in self.versions:
            self.acks.begin(version)
            try:
                put_s3(self.client, version)
            except Exception as exc:
                if self.server.alive():
                    self.acks.fail(version, repr(exc))
                    self.error = f"{version.key}: {exc!r}"
                return  # killed: the write stays in flight (its outcome is unknown)
            self.acks.ack(version)


def _after_restart(
    root: Path,
    profile: Profile,
    acks: Acks,
    row: Row,
    where: str,
    check: Callable[[Any], list[str]] | None = None,
) -> None:
    """Restart, verify every acknowledged object, settle the in-flight ones, then run `check`
    (given a client) for a scenario's own problems."""
    # The temp files the kill left must be gone once the server is up again; new ones may
    # appear at once (the repair queue resumes, a probe runs) and are not the crash's.
    crashed = temp_files(root, profile.disks)
    server = start(root, profile.disks, f"{profile.k}+{profile.m}", profile.block_size)
    try:
        left = [p for p in crashed if p.exists()]
        if left:
            row.problems.append(f"{where}: temp files survived start-up: {left[:3]}")
        verdict: Verdict = verify_s3(server.client(), BUCKET, acks)
        row.problems += [f"{where}: {p}" for p in verdict.problems]
        row.bytes_verified += verdict.bytes_verified
        # What the restart showed is now the state a later crash must keep.
        settle(server.client(), acks)
        if check is not None:
            row.problems += [f"{where}: {p}" for p in check(server.client())]
    finally:
        server.stop()


def settle(client, acks: Acks) -> None:
    """Fold each in-flight write into the acknowledged state as observed after a restart."""
    for key, version in list(acks.inflight.items()):
        try:
            head = client.head_object(Bucket=BUCKET, Key=key)
        except client.exceptions.ClientError:
            head = None
        acks.inflight.pop(key)
        if head is not None and head["ETag"].strip('"') == version.etag():
            acks.done[key] = version


def sigkill_put(profile: Profile, seed: int, rounds: int, workdir: Path | None = None) -> Row:
    """Each round: a writer overwrites the dataset with a new generation; the server is
    SIGKILLed at a random moment; the restarted server must show old-or-new for every key."""
    row = Row("sigkill-put")
    rng = random.Random(f"{seed}/sigkill-put")
    root = Path(tempfile.mkdtemp(prefix="chaos-sigkill-put-", dir=workdir))
    started = time.monotonic()
    acks = Acks()
    server = start(root, profile.disks, f"{profile.k}+{profile.m}", profile.block_size)
    try:
        server.client().create_bucket(Bucket=BUCKET)
        writer = Writer(server, acks, server_dataset(profile, seed, 1))
        writer.run()
        if writer.error:
            row.problems.append(f"initial write failed: {writer.error}")
        inflight_at_kill = 0
        for r in range(rounds):
            if not server.alive():
                server = start(root, profile.disks, f"{profile.k}+{profile.m}", profile.block_size)
            versions = [
                Version(v.key, r + 2, v.size, v.parts, seed)
                for v in server_dataset(profile, seed, 1)
            ]
            rng.shuffle(versions)
            versions.append(Version(f"new/{r}", r + 2, profile.big, seed=seed))
            writer = Writer(server, acks, versions)
            writer.start()
            time.sleep(rng.uniform(0.05, 0.6))
            server.kill()
            row.faults += 1
            writer.join(120)
            inflight_at_kill += len(acks.inflight)
            if writer.error:
                row.problems.append(f"round {r}: a write failed before the kill: {writer.error}")
            _after_restart(root, profile, acks, row, f"round {r}")
        row.notes.append(f"{inflight_at_kill} of {rounds} kills landed during a PUT")
        row.detected = inflight_at_kill
    finally:
        server.kill()
        row.fault_kinds = f"{row.faults} SIGKILL during PUT"
        finish(row, root, started)
    return row


def _upload_matches_object(acks: Acks, version: Version, upload: str):
    """After a restart an upload is listed exactly when its complete did not make the object:
    a completed upload still listed beside its object (a kill after the switch) is a problem,
    and so is an upload gone while its object is absent (a retry would have nothing)."""

    def check(client) -> list[str]:
        page = client.list_multipart_uploads(Bucket=BUCKET, Prefix=version.key)
        listed = upload in [u["UploadId"] for u in page.get("Uploads", [])]
        visible = acks.done.get(version.key) == version
        if visible and listed:
            return [f"upload {upload} of {version.key} is still listed beside its object"]
        if not visible and not listed:
            return [f"upload {upload} of {version.key} is gone but its object is absent"]
        return []

    return check


def sigkill_complete(profile: Profile, seed: int, rounds: int, workdir: Path | None = None) -> Row:
    """Each round: parts uploaded, CompleteMultipartUpload sent, SIGKILL a few ms later.
    After a restart the object is whole or absent; if absent, retrying the same complete
    must succeed (the upload and its parts survived)."""
    row = Row("sigkill-complete")
    rng = random.Random(f"{seed}/sigkill-complete")
    root = Path(tempfile.mkdtemp(prefix="chaos-sigkill-complete-", dir=workdir))
    started = time.monotonic()
    acks = Acks()
    ec = f"{profile.k}+{profile.m}"
    server = start(root, profile.disks, ec, profile.block_size)
    try:
        server.client().create_bucket(Bucket=BUCKET)
        Writer(server, acks, server_dataset(profile, seed, 1)).run()
        visible = retried = 0
        for r in range(rounds):
            if not server.alive():
                server = start(root, profile.disks, ec, profile.block_size)
            client = server.client()
            version = Version(f"mpu/{r}", r + 2, MIN_PART + 4321, (MIN_PART, 4321), seed)
            upload = client.create_multipart_upload(Bucket=BUCKET, Key=version.key)["UploadId"]
            parts = upload_parts(client, version, upload)
            acks.begin(version)
            outcome: list[str] = []

            def send(c=client, v=version, u=upload, p=parts, out=outcome) -> None:
                try:
                    out.append(complete(c, v, u, p))
                except Exception as exc:
                    out.append(f"error {exc!r}")

            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            time.sleep(rng.uniform(0.0, 0.03))
            server.kill()
            row.faults += 1
            thread.join(120)
            if outcome and outcome[0] == version.etag():
                acks.ack(version)  # the kill came after the reply
            check = _upload_matches_object(acks, version, upload)
            _after_restart(root, profile, acks, row, f"round {r}", check)
            if acks.done.get(version.key) == version:
                visible += 1
                continue
            server = start(root, profile.disks, ec, profile.block_size)
            try:
                etag = complete(server.client(), version, upload, parts)
                if etag != version.etag():
                    row.problems.append(f"round {r}: retried complete gave ETag {etag}")
                acks.ack(version)
                retried += 1
            except Exception as exc:
                row.problems.append(f"round {r}: retrying the complete failed: {exc!r}")
            server.stop()
            _after_restart(root, profile, acks, row, f"round {r} after retry", check)
        row.detected = rounds
        row.repaired = retried
        row.notes.append(f"{visible} completes survived the kill, {retried} were retried")
    finally:
        server.kill()
        row.fault_kinds = f"{row.faults} SIGKILL during CompleteMultipartUpload"
        finish(row, root, started)
    return row


FULL_DISK_MIB = 16
FULL_OBJECT = 384 * 1024


def _full_body(seed: int, i: int) -> bytes:
    return random.Random(f"{seed}/full/{i}").randbytes(FULL_OBJECT)


def disk_full(seed: int, workdir: Path | None = None) -> Row:
    """Six 16 MiB tmpfs disks, RS(4,2), filled by PUTs through a real server until one is
    refused: it must be 507 XS3freeStorageFull (never a 503 to retry); no disk may go offline
    (they are `full`: readyz stays ready, `disk status` and s3free_disk_state say full); every
    acknowledged object reads back exact; DELETEs free real space on the full disks; the disks
    take writes again and a new PUT succeeds. (Issue 12 item 5: the probe's own ENOSPC took
    every disk offline, DELETE answered 204 and freed nothing.) After the refused PUT the
    disks are topped off to the last byte from outside, so the probe's own write fails too."""
    from chaos.served import Served, mount_tmpfs, unmount

    row = Row("disk-full")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="chaos-disk-full-", dir=workdir))
    served = Served(root, disks=6, ec="4+2", settings={"disk_probe_s": 0.2})
    mounted: list[Path] = []
    try:
        for i in range(served.disks):
            why = mount_tmpfs(served.disk(i), FULL_DISK_MIB)
            if why:
                row.notes.append(f"skipped: {why}")
                row.fault_kinds = "not run: no tmpfs mount allowed here"
                return row
            mounted.append(served.disk(i))
        served.start()
        client = served.s3()
        client.create_bucket(Bucket=BUCKET)
        acked: dict[str, str] = {}
        refused = None
        for i in range(400):  # 6 x 16 MiB fill after ~170 objects of 384 KiB at RS(4,2)
            body = _full_body(seed, i)
            try:
                client.put_object(Bucket=BUCKET, Key=f"f/{i:04d}", Body=body)
            except client.exceptions.ClientError as exc:
                refused = exc.response
                break
            acked[f"f/{i:04d}"] = hashlib.sha256(body).hexdigest()
        row.faults = 1
        if refused is None:
            row.problems.append("400 PUTs all succeeded: the disks never filled")
            return row
        code = refused["Error"]["Code"]
        status = refused["ResponseMetadata"]["HTTPStatusCode"]
        message = refused["Error"].get("Message", "")
        row.notes.append(f"{len(acked)} PUTs acknowledged, then {status} {code}: {message}")
        if (status, code) != (507, "XS3freeStorageFull") or "free of" not in message:
            row.problems.append(f"the PUT on full disks got {status} {code}: {message}")
        # What a write left free is taken too (another tenant of the filesystem), so the
        # probe's own small write meets ENOSPC: the disks must still not go offline.
        for path in mounted:
            _top_off(path / "filler")
        # Several probe rounds on full disks: none goes offline, the store stays ready.
        seen_full = False
        for _ in range(10):
            states = [d["state"] for d in served.status()["disks"]]
            seen_full |= "full" in states
            if "offline" in states:
                row.problems.append(f"a full disk went offline: {states}")
                break
            time.sleep(0.2)
        row.detected = int(seen_full)
        if not seen_full:
            row.problems.append("no disk was ever shown full by `disk status`")
        ready = _readyz(served.endpoint)
        if not ready.get("ready"):
            row.problems.append(f"readyz not ready with full disks: {ready}")
        if _full_gauge(served.endpoint) == 0:
            row.problems.append('s3free_disk_state{state="full"} is 0 on every disk')
        row.problems += _read_back(client, acked, "full")
        # DELETE frees the space on the full disks, and they take writes again.
        free_before = sum(_free(p) for p in mounted)
        doomed = sorted(acked)[: len(acked) * 2 // 3]
        for key in doomed:
            client.delete_object(Bucket=BUCKET, Key=key)
            del acked[key]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(d["state"] == "online" for d in served.status()["disks"]):
                break
            time.sleep(0.2)
        else:
            row.problems.append(f"disks still not writable: {served.status()['disks']}")
        freed = sum(_free(p) for p in mounted) - free_before
        row.notes.append(f"{len(doomed)} DELETEs freed {freed / MIB:.1f} MiB")
        if freed < len(doomed) * FULL_OBJECT:  # at least the data, before parity
            row.problems.append(f"{len(doomed)} DELETEs freed only {freed} bytes")
        body = _full_body(seed, 9999)
        try:
            client.put_object(Bucket=BUCKET, Key="after", Body=body)
            acked["after"] = hashlib.sha256(body).hexdigest()
        except client.exceptions.ClientError as exc:
            row.problems.append(f"PUT after the deletes failed: {exc}")
        row.problems += _read_back(client, acked, "after deletes")
        row.bytes_verified = len(acked) * FULL_OBJECT
        if " offline: " in served.log:
            row.problems.append("the server log says a disk went offline")
        row.repaired = len(doomed)
    finally:
        served.stop()
        for path in mounted:
            unmount(path)
        row.fault_kinds = row.fault_kinds or "6 tmpfs disks of 16 MiB filled by PUTs"
        finish(row, root, started)
    return row


def _top_off(path: Path) -> None:
    """Fill the filesystem holding path to the last byte (bounded by its size)."""
    with open(path, "ab", buffering=0) as f:
        for chunk in (64 * 1024, 4096, 512, 1):
            for _ in range(FULL_DISK_MIB * MIB // chunk):
                try:
                    f.write(b"\0" * chunk)
                except OSError:
                    break


def _read_back(client, acked: dict[str, str], where: str) -> list[str]:
    problems = []
    for key, digest in acked.items():
        try:
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except Exception as exc:
            problems.append(f"{where}: GET {key} failed: {exc!r}")
            continue
        if hashlib.sha256(body).hexdigest() != digest:
            problems.append(f"{where}: {key} reads back different bytes")
    return problems


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _readyz(endpoint: str) -> dict:
    try:
        with urllib.request.urlopen(f"{endpoint}/_s3free/readyz", timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


def _full_gauge(endpoint: str) -> float:
    """The sum of s3free_disk_state{state="full"} over the disks."""
    with urllib.request.urlopen(f"{endpoint}/_s3free/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("s3free_disk_state{") and 'state="full"' in line
    )
