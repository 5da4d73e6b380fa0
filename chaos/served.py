"""A real `s3free server` on real disk directories, driven the way an operator drives it: the
server started from a YAML config, S3 through boto3, and the disks through the `s3free disk`
CLI (`--endpoint`). For the durability scenarios (durability_scenarios.py), which check what
`disk status`, `disk scrub --wait` and `disk verify` promise, not what the engine does inside.

The server's output is kept across restarts (`log`), so a scenario can read the heal
service's "repaired ... generation N" lines afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from chaos.data import MIB, Version
from chaos.proc import ACCESS_KEY, SECRET_KEY, ServerProcess
from s3free.bench.spawn import spawn_server

MIN_PART = 5 * MIB  # the server's minimum multipart part size (all parts but the last)
REPAIRED = re.compile(r"repaired (\S+?)/(\S+) \((\S+)\): (\d+) shards rebuilt, generation (\d+)")


@dataclass(frozen=True)
class Obj:
    """One acknowledged object: its bucket and the version its bytes come from."""

    bucket: str
    version: Version

    @property
    def key(self) -> str:
        return self.version.key

    @property
    def name(self) -> str:
        return f"{self.bucket}/{self.key}"


def sha256_of(version: Version) -> str:
    digest = hashlib.sha256()
    for piece in version.chunks(size=MIB):
        digest.update(piece)
    return digest.hexdigest()


@dataclass
class Served:
    """The store's directories, its config, the running server (if any) and its output."""

    root: Path
    disks: int = 9
    ec: str = "6+3"
    settings: dict = field(default_factory=dict)  # config keys on top of the defaults below
    server: ServerProcess | None = None
    log_lines: list[str] = field(default_factory=list)  # of the servers stopped so far
    _sha: dict[Version, str] = field(default_factory=dict)

    def disk(self, i: int) -> Path:
        return self.root / f"disk{i}"

    @property
    def meta(self) -> Path:
        return self.root / "meta"

    @property
    def endpoint(self) -> str:
        assert self.server is not None, "the server is not running"
        return self.server.endpoint

    @property
    def log(self) -> str:
        live = self.server.output if self.server is not None else []
        return "".join(self.log_lines + list(live))

    # -- the server process ------------------------------------------------------------------

    def config_file(self) -> Path:
        doc = {
            "data_dir": str(self.root),
            "disks": [str(self.disk(i)) for i in range(self.disks)],
            "ec": self.ec,
            "listen": "127.0.0.1:0",
            "meta_dir": str(self.meta),
            "log_level": "info",  # the heal service's "repaired ..." lines are info
            "scrub_interval_s": 0,  # no scheduled pass: every pass here is the operator's
            **self.settings,
        }
        path = self.root / "s3free.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    def start(self, timeout: float = 90) -> ServerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {"S3FREE_ACCESS_KEY": ACCESS_KEY, "S3FREE_SECRET_KEY": SECRET_KEY}
        proc, endpoint, output = spawn_server(["--config", str(self.config_file())], env, timeout)
        self.server = ServerProcess(proc, endpoint, output)
        return self.server

    def stop(self) -> None:
        """SIGTERM and wait (a clean shutdown); the output joins `log`."""
        if self.server is None:
            return
        if self.server.alive():
            self.server.proc.send_signal(signal.SIGTERM)
            try:
                self.server.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.server.kill()
        time.sleep(0.1)  # the output pump's last lines
        self.log_lines += list(self.server.output)
        self.server = None

    def s3(self, read_timeout: float = 120):
        """boto3, no retries (every error is seen)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                retries={"max_attempts": 1, "mode": "standard"},
                connect_timeout=10,
                read_timeout=read_timeout,
            ),
        )

    # -- the operator's CLI -------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """`s3free disk ARGS --endpoint URL` with the root credentials, as an operator runs it
        (a clean environment: no S3FREE_/AWS_ settings of this process leak in)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("S3FREE_", "AWS_"))}
        env.update(S3FREE_ACCESS_KEY=ACCESS_KEY, S3FREE_SECRET_KEY=SECRET_KEY)
        return subprocess.run(
            [sys.executable, "-m", "s3free.cli.main", "disk", *args, "--endpoint", self.endpoint],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    def status(self) -> dict:
        """`s3free disk status --json`."""
        out = self.cli("status", "--json", timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"disk status exited {out.returncode}: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def admin(self):
        """The admin API client the CLI uses (for checks run on every object, where a CLI
        process per object would take minutes)."""
        from s3free.admin.client import AdminClient

        return AdminClient(self.endpoint, ACCESS_KEY, SECRET_KEY)

    def metric(self, name: str) -> float | None:
        """One unlabelled sample from GET /_s3free/metrics (None when not exposed)."""
        with urllib.request.urlopen(f"{self.endpoint}/_s3free/metrics", timeout=30) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    # -- objects ------------------------------------------------------------------------------

    def sha256(self, version: Version) -> str:
        if version not in self._sha:
            self._sha[version] = sha256_of(version)
        return self._sha[version]

    def put(self, client, obj: Obj) -> None:
        """PUT (or a multipart upload when the version has parts); the ETag must match."""
        v = obj.version
        if not v.parts:
            resp = client.put_object(
                Bucket=obj.bucket, Key=v.key, Body=v.file(), ContentLength=v.size
            )
            etag = resp["ETag"].strip('"')
        else:
            upload = client.create_multipart_upload(Bucket=obj.bucket, Key=v.key)["UploadId"]
            parts = []
            for number, (a, b) in enumerate(v.part_ranges(), 1):
                resp = client.upload_part(
                    Bucket=obj.bucket, Key=v.key, UploadId=upload, PartNumber=number,
                    Body=v.file(a, b), ContentLength=b - a,
                )  # fmt: skip
                parts.append({"PartNumber": number, "ETag": resp["ETag"]})
            resp = client.complete_multipart_upload(
                Bucket=obj.bucket, Key=v.key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
            etag = resp["ETag"].strip('"')
        if etag != v.etag():
            raise AssertionError(f"{obj.name}: ETag {etag}, expected {v.etag()}")

    def read_back(self, client, objs: list[Obj], where: str) -> tuple[list[str], int]:
        """GET each object; its sha256 must be the written one. (problems, bytes read)."""
        problems, total = [], 0
        for obj in objs:
            try:
                body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
                digest, got = hashlib.sha256(), 0
                while piece := body.read(MIB):
                    digest.update(piece)
                    got += len(piece)
                total += got
                if digest.hexdigest() != self.sha256(obj.version):
                    problems.append(
                        f"{where}: {obj.name}: {got} bytes, sha256 differs "
                        f"(expected {obj.version.size} bytes)"
                    )
            except Exception as exc:
                problems.append(f"{where}: GET {obj.name} failed: {exc!r}")
        return problems, total

    def listing(self, client, objs: list[Obj], where: str) -> list[str]:
        """Every key of every bucket listed, nothing else."""
        problems = []
        for bucket in sorted({o.bucket for o in objs}):
            want = {o.key for o in objs if o.bucket == bucket}
            got: set[str] = set()
            try:
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    got |= {c["Key"] for c in page.get("Contents", [])}
            except Exception as exc:
                problems.append(f"{where}: listing {bucket} failed: {exc!r}")
                continue
            if want - got:
                problems.append(f"{where}: {bucket} lists without {sorted(want - got)[:10]}")
            if got - want:
                problems.append(f"{where}: {bucket} lists unknown keys {sorted(got - want)[:10]}")
        return problems

    def unhealthy(self, objs: list[Obj]) -> dict[str, str]:
        """Objects whose `disk verify` verdict is not ok (the admin API the CLI calls, and the
        CLI's own verdict), by name -> what verify said."""
        from s3free.admin.client import AdminError
        from s3free.cli.diskview import verdict

        admin, out = self.admin(), {}
        for obj in objs:
            try:
                health = admin.verify(obj.bucket, obj.key)
            except AdminError as exc:
                out[obj.name] = f"verify failed: {exc}"
                continue
            if verdict(health) != "ok":
                bad = [
                    f"part {s['part']} shard {s['shard']} {s['state']}"
                    for s in health["shards"]
                    if s["state"] != "ok"
                ]
                bad += [f"manifest on {d} {v}" for d, v in health["manifests"].items() if v != "ok"]
                out[obj.name] = f"{verdict(health)}: {', '.join(bad[:6])}"
        return out


def outstanding(status: dict) -> list[str]:
    """What `disk status --json` says is not yet back at k+m: queued repairs, unrepairable
    objects, degraded objects (when the server reports them), disks not online."""
    out = []
    heal = status.get("heal") or {}
    if heal.get("queue_depth"):
        out.append(f"repair queue depth {heal['queue_depth']}")
    for u in heal.get("unrepairable") or []:
        out.append(f"unrepairable {u.get('bucket')}/{u.get('key')}: {u.get('detail')}")
    degraded = heal.get("degraded")
    if isinstance(degraded, dict):
        busy = {k: v for k, v in degraded.items() if k != "caught_up" and isinstance(v, int) and v}
        if busy:
            out.append(f"degraded {busy}")
    elif degraded:
        out.append(f"degraded {degraded}")
    for d in status.get("disks", []):
        if d.get("state") != "online":
            out.append(f"disk {d['position']} {d['state']}: {d.get('problem') or d.get('heal')}")
    return out


def repaired_lines(log: str) -> list[tuple[str, str, str, int, int]]:
    """(bucket, key, version id, shards rebuilt, generation) of every "repaired" log line."""
    return [(m[1], m[2], m[3], int(m[4]), int(m[5])) for m in REPAIRED.finditer(log)]


def mount_tmpfs(path: Path, mib: int) -> str:
    """Mount a tmpfs of `mib` MiB at path (made if missing): a small disk that really fills.
    Returns "" when mounted, else why not (not root, no mount(8), a container without
    CAP_SYS_ADMIN): the caller skips and says so."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run mount: {exc}"
    if out.returncode != 0:
        return f"mount -t tmpfs refused (needs root): {out.stderr.strip() or out.returncode}"
    return ""


def unmount(path: Path) -> None:
    """Undo mount_tmpfs (lazily, so a straggling reader cannot keep it mounted)."""
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
