#!/usr/bin/env python3
"""Run the public S3 conformance suite (ceph/s3-tests) against a fresh s3free server and
summarise it by area, so conformance is measured the same way every time.

The suite is not part of this repository: give the path of a checkout with its own venv
(`git clone https://github.com/ceph/s3-tests`, then `python -m venv .venv` and
`.venv/bin/pip install -r requirements.txt` in it). The runner starts `s3free server` on
127.0.0.1 with four fresh temp disks and the main user's keys as root keys, creates the other
users with `s3free admin user add`, writes the suite's config file (with each user's canonical
ID as the server shows it, which the ACL tests compare with), runs pytest with a JUnit XML
report and prints passed/failed/skipped per area (NotImplemented failures, and failures of
tests the suite marks fails_on_aws, counted apart). The server is stopped and the temp dirs
removed at the end, also on a timeout or Ctrl-C.

    python tools/s3tests.py --suite /tmp/s3-tests                       # the whole suite
    python tools/s3tests.py --suite /tmp/s3-tests -k 'bucket_list' --json now.json
    python tools/s3tests.py --suite /tmp/s3-tests --compare before.json --failures
    python tools/s3tests.py --suite /tmp/s3-tests --summarise run.xml   # an earlier --junit

Exit status: 0 when the run finished (whatever the tests' results), 1 when it timed out or the
suite could not run, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from s3free.bench.spawn import spawn_server

# The suite's users: section name in its config -> (s3free user name, access key, secret key).
# "s3 main" is s3free's root user (its keys are given to the server, not added).
MAIN = ("root", "S3TROOTKEY0000000001", "s3t-root-secret-0000000000000001")
USERS: dict[str, tuple[str, str, str]] = {
    "s3 alt": ("alt", "S3TALTKEY00000000001", "s3t-alt-secret-00000000000000001"),
    "s3 tenant": ("tenant", "S3TTENKEY00000000001", "s3t-ten-secret-00000000000000001"),
    "iam": ("iam", "S3TIAMKEY00000000001", "s3t-iam-secret-00000000000000001"),
    "iam root": ("iamroot", "S3TIAMKEY00000000002", "s3t-iam-secret-00000000000000002"),
    "iam alt root": ("iamaltroot", "S3TIAMKEY00000000003", "s3t-iam-secret-00000000000000003"),
}
DISKS = 4
OTHER = "other"

# Areas, in order: a test belongs to the first area with a pattern found (re.search) in
# "<module>::<test name>", e.g. "test_s3::test_bucket_list_empty". Feature areas come before
# the generic ones (a lifecycle test on a versioned bucket is a lifecycle test).
AREAS: list[tuple[str, str]] = [
    ("IAM", r"^test_iam::"),
    ("STS", r"^test_sts::"),
    ("SNS notifications", r"^test_sns::"),
    ("S3 Select", r"^test_s3select::"),
    ("auth headers", r"^test_headers::"),
    (OTHER, r"torrent|^test_utils::"),
    ("logging", r"bucket_logging"),
    ("lifecycle", r"lifecycle|restore|read_through|transition"),
    ("encryption", r"::test_(encrypt|sse_)"),
    ("POST uploads", r"post_object"),
    ("policy", r"policy|public_block|block_public|ignore_public_acls"),
    ("encryption", r"encrypt|sse_|_enc(_|$|\[)"),
    ("CORS", r"cors"),
    ("website", r"website"),
    ("object lock", r"object_lock"),
    ("object attributes", r"object_attributes"),
    ("ownership controls", r"ownership|owner_enforced|owner_preferred|object_writer"),
    ("presigned URLs", r"presign|x_amz_expires|authenticated_expired"),
    ("conditional requests", r"_if(_none)?_?match|_ifnone?match|_if(un)?modifiedsince|conditional"),
    ("versioning", r"version|delete_marker"),
    ("tagging", r"tagging|_tags?(_|$|\[)"),
    ("checksums", r"checksum|cksum"),
    ("ACL", r"acl|anon|access_bucket|grant"),
    ("auth headers", r"_auth(_|$|\[)|_authenticated|requestid"),
    ("multi-delete", r"multi_object(v2)?_delete|delete_objects"),
    ("ranges", r"ranged_|_get_part"),
    ("copy", r"object_copy|copy_object"),
    ("multipart", r"multipart|upload_part|resend"),
    ("listing", r"bucket_list|listv2|list_objects|key_count"),
    ("metadata", r"metadata|cache_control|write_expires|response_headers"),
    ("buckets", r"bucket|account_usage"),
    ("objects", r"^test_s3::.*(object|atomic|100_continue)"),
]
# The order of the table: the areas of the conformance target (issue 14) first, then the rest.
DISPLAY = [
    "buckets", "objects", "listing", "ranges", "copy", "multipart", "multi-delete",
    "conditional requests", "presigned URLs", "checksums", "auth headers", "versioning",
    "object lock", "tagging", "metadata", "ACL", "policy", "lifecycle", "encryption", "CORS",
    "website", "logging", "POST uploads", "object attributes", "ownership controls", "S3 Select",
    "IAM", "STS", "SNS notifications", OTHER,
]  # fmt: skip
# S3's NotImplemented: by its code, or by its status when a test checks the status only.
NOT_IMPLEMENTED = re.compile(r"\bNotImplemented\b|\bassert 501 ==|\(501\)")


def area_of(test_id: str) -> str:
    """The area of a test given as "<module>::<name>" (see AREAS); OTHER when none matches."""
    for area, pattern in AREAS:
        if re.search(pattern, test_id):
            return area
    return OTHER


@dataclass
class Result:
    """One test's outcome: passed, failed, error or skipped, and the failure's message."""

    test_id: str
    outcome: str
    message: str = ""
    fails_on_aws: bool = False  # the suite marks it: AWS S3 itself fails it

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")

    @property
    def not_implemented(self) -> bool:
        return self.failed and bool(NOT_IMPLEMENTED.search(self.message))


_RANK = {"passed": 0, "skipped": 1, "error": 2, "failed": 3}


def parse_junit(path: Path) -> list[Result]:
    """The tests of a pytest JUnit XML report, one Result each (a test reported twice, e.g.
    failed and then an error in teardown, keeps its worst outcome: failed > error > skipped)."""
    root = ET.parse(path).getroot()
    results: dict[str, Result] = {}
    for case in root.iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        test_id = f"{module}::{case.get('name', '')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = f"{node.get('message', '')}\n{node.text or ''}".strip()
                break
        old = results.get(test_id)
        if old is None or _RANK[outcome] > _RANK[old.outcome]:
            results[test_id] = Result(test_id, outcome, message)
    return list(results.values())


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    not_implemented: int = 0
    fails_on_aws: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    def add(self, result: Result) -> None:
        field_name = {"error": "errors"}.get(result.outcome, result.outcome)
        setattr(self, field_name, getattr(self, field_name) + 1)
        if result.not_implemented:
            self.not_implemented += 1
        if result.failed and result.fails_on_aws:
            self.fails_on_aws += 1


@dataclass
class Summary:
    total: Tally = field(default_factory=Tally)
    areas: dict[str, Tally] = field(default_factory=dict)


def summarise(results: list[Result]) -> Summary:
    """Totals and per-area tallies, areas in DISPLAY order."""
    summary = Summary()
    for result in results:
        summary.total.add(result)
        summary.areas.setdefault(area_of(result.test_id), Tally()).add(result)
    summary.areas = {a: summary.areas[a] for a in DISPLAY if a in summary.areas}
    return summary


def format_summary(summary: Summary) -> str:
    """The overall figure and a Markdown table by area (failed counts errors too)."""
    t = summary.total
    pct = 100.0 * t.passed / t.total if t.total else 0.0
    lines = [
        f"{t.passed} passed, {t.failed} failed, {t.errors} errors ({t.not_implemented} of "
        f"them NotImplemented, {t.fails_on_aws} marked fails_on_aws), {t.skipped} skipped: "
        f"{t.passed}/{t.total} = {pct:.1f} % passed",
        "",
        "| area | tests | passed | failed | of which NotImplemented | of which AWS fails too "
        "| skipped |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for area, a in [*summary.areas.items(), ("**total**", t)]:
        lines.append(
            f"| {area} | {a.total} | {a.passed} | {a.failed + a.errors} "
            f"| {a.not_implemented} | {a.fails_on_aws} | {a.skipped} |"
        )
    return "\n".join(lines)


def brief(message: str) -> str:
    """A failure in one line: the test's own source line that failed and pytest's first "E"
    line (e.g. "assert response['IsTruncated'] == False -> assert True == False")."""
    lines = message.splitlines()
    error = next((x[1:].strip() for x in lines if x.startswith("E ")), "")
    source = ""
    for i, line in enumerate(lines[:-1]):
        if re.search(r"\.py:\d+: in test_", line):
            source = lines[i + 1].strip()
            break
    text = f"{source} -> {error}" if source and error else error or source
    return (text or next((x.strip() for x in lines if x.strip()), ""))[:300]


def aws_failing(suite: Path) -> set[str]:
    """The tests the suite marks `fails_on_aws` (AWS S3 itself fails them), as
    "<module>::<name>": read from the decorators above each `def test_` in its sources."""
    found: set[str] = set()
    for path in sorted((suite / "s3tests" / "functional").glob("test_*.py")):
        marked = False
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("@") and "fails_on_aws" in line:
                marked = True
            elif line.startswith(("def ", "async def ", "class ")):
                name = re.match(r"(?:async )?(?:def|class) (\w+)", line)
                if marked and name:
                    found.add(f"{path.stem}::{name.group(1)}")
                marked = False
    return found


def compare(old: dict[str, str], new: dict[str, str]) -> tuple[list[str], list[str]]:
    """Tests that went from passed to failed/error, and from failed/error to passed."""
    bad = ("failed", "error")
    regressed = sorted(t for t, o in new.items() if o in bad and old.get(t) == "passed")
    fixed = sorted(t for t, o in new.items() if o == "passed" and old.get(t) in bad)
    return regressed, fixed


def write_config(
    path: Path, host: str, port: int, owners: dict[str, tuple[str, str]] | None = None
) -> None:
    """The suite's config file (S3TEST_CONF): every user section it reads. `owners` maps a
    section to the (canonical ID, display name) the server shows for that user: the suite
    compares ACL and listing owners with user_id and display_name (default: the user name)."""
    cfg = configparser.RawConfigParser()
    cfg["DEFAULT"] = {"host": host, "port": str(port), "is_secure": "False", "ssl_verify": "False"}
    cfg["fixtures"] = {"bucket prefix": "s3t-{random}-"}
    for section, (name, ak, sk) in {"s3 main": MAIN, **USERS}.items():
        user_id, display = (owners or {}).get(section, (name, name))
        entry = {"display_name": display, "user_id": user_id, "email": f"{name}@example.test"}
        entry.update(access_key=ak, secret_key=sk)
        if section == "s3 main":
            entry["api_name"] = "default"
        if section == "s3 tenant":
            entry["tenant"] = "tenant"
        cfg[section] = entry
    with path.open("w") as f:
        cfg.write(f)


# Run by the suite's python (it has boto3): the owner a user's ListBuckets shows.
_OWNER = """import boto3, json, sys
endpoint, ak, sk = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ak, aws_secret_access_key=sk,
                  region_name="us-east-1")
owner = s3.list_buckets()["Owner"]
print(json.dumps([owner["ID"], owner.get("DisplayName", "")]))
"""


def owners(python: str, endpoint: str) -> dict[str, tuple[str, str]]:
    """Each config section's (canonical ID, display name), asked from the server."""
    found = {}
    for section, (_name, ak, sk) in {"s3 main": MAIN, **USERS}.items():
        proc = subprocess.run([python, "-c", _OWNER, endpoint, ak, sk],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"ListBuckets as {section!r} failed: {proc.stderr[-2000:]}")
        user_id, display = json.loads(proc.stdout)
        found[section] = (user_id, display)
    return found


def s3free_cli(*args: str, env: dict[str, str], timeout: float = 60) -> None:
    """Run `s3free ARGS` (this interpreter's install); raise with its output if it fails."""
    cmd = [sys.executable, "-m", "s3free.cli.main", *args]
    proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"s3free {' '.join(args[:3])} failed: {proc.stdout}{proc.stderr}")


def start_store(work: Path, port: int) -> tuple[subprocess.Popen, str]:
    """A fresh s3free server on 127.0.0.1 (port 0: a free one) with the suite's users."""
    disks = [work / f"disk{i}" for i in range(1, DISKS + 1)]
    args = [a for d in disks for a in ("--disk", str(d))]
    args += ["--meta-dir", str(work / "meta"), "--listen", f"127.0.0.1:{port}"]
    env = {"S3FREE_ACCESS_KEY": MAIN[1], "S3FREE_SECRET_KEY": MAIN[2]}
    proc, endpoint, _ = spawn_server(args, env, timeout=120)
    try:
        for name, ak, sk in USERS.values():
            s3free_cli("admin", "user", "add", name, "--access-key", ak, "--secret-key", sk,
                       "--endpoint", endpoint, env=env)  # fmt: skip
    except BaseException:
        stop(proc)
        raise
    return proc, endpoint


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 30) -> None:
    """Stop a child process: `sig`, then SIGKILL after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_suite(
    args: argparse.Namespace, conf: Path, report: Path, log: Path, timeout: float
) -> bool:
    """Run pytest on the suite; False when it hit the timeout (it is then interrupted with
    SIGINT so it still writes the report of the tests run so far)."""
    cmd = [args.python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--tb=short",
           f"--junitxml={report}", *(["-k", args.k] if args.k else []),
           *(args.tests or ["s3tests"])]  # fmt: skip
    print(f"running: {shlex.join(cmd)}  (in {args.suite}, output in {log})", flush=True)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=args.suite, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "S3TEST_CONF": str(conf)})  # fmt: skip
        try:
            proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            print(f"timed out after {args.timeout:.0f} s; interrupting the suite", flush=True)
            stop(proc, signal.SIGINT, grace=60)
            return False
        finally:
            stop(proc, signal.SIGINT, grace=60)


def suite_commit(suite: Path) -> str:
    proc = subprocess.run(["git", "-C", str(suite), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def report(results: list[Result], args: argparse.Namespace, finished: bool) -> None:
    """Print the summary (and the comparison, the failures); write --json."""
    aws = aws_failing(Path(args.suite))
    for r in results:
        r.fails_on_aws = r.test_id.split("[")[0] in aws
    summary = summarise(results)
    print(format_summary(summary))
    outcomes = {r.test_id: r.outcome for r in results}
    if args.failures:
        print("\nfailures other than NotImplemented:")
        for r in sorted(results, key=lambda r: (area_of(r.test_id), r.test_id)):
            if r.failed and not r.not_implemented:
                aws_note = " (fails on AWS too)" if r.fails_on_aws else ""
                print(f"  [{area_of(r.test_id)}] {r.test_id}{aws_note}: {brief(r.message)}")
    if args.compare:
        old = json.loads(Path(args.compare).read_text())["tests"]
        regressed, fixed = compare(old, outcomes)
        print(f"\npassed -> failed ({len(regressed)}):", *regressed, sep="\n  ")
        print(f"failed -> passed ({len(fixed)}):", *fixed, sep="\n  ")
    if args.json:
        failed = {r.test_id: r for r in results if r.failed}
        data = {
            "suite_commit": suite_commit(Path(args.suite)),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "finished": finished,
            "totals": vars(summary.total),
            "areas": {a: vars(t) for a, t in summary.areas.items()},
            "tests": outcomes,
            "failures": {t: brief(r.message) for t, r in failed.items()},
            "failed_fails_on_aws": sorted(t for t, r in failed.items() if r.fails_on_aws),
            "failed_not_implemented": sorted(t for t, r in failed.items() if r.not_implemented),
        }
        Path(args.json).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", required=True, help="an s3-tests checkout")
    p.add_argument("--python", help="the suite venv's python (default <suite>/.venv/bin/python)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("-k", help="pytest -k expression: run only the matching tests")
    p.add_argument("tests", nargs="*", help="test paths inside the suite (default: s3tests)")
    p.add_argument("--timeout", type=float, default=3600, help="whole-run limit, s (3600)")
    p.add_argument("--json", help="write the figures and each test's outcome to this file")
    p.add_argument("--compare", help="an earlier --json file: show what changed")
    p.add_argument("--failures", action="store_true", help="list non-NotImplemented failures")
    p.add_argument("--log", help="keep pytest's output in this file (default: discarded)")
    p.add_argument("--junit", help="keep the JUnit XML report in this file")
    p.add_argument("--summarise", metavar="XML", help="only summarise this earlier --junit report")
    args = p.parse_args(argv)
    suite = Path(args.suite)
    args.python = args.python or str(suite / ".venv" / "bin" / "python")
    if not (suite / "s3tests").is_dir():
        p.error(f"--suite {suite}: no s3tests/ directory there; give an s3-tests checkout")
    if not Path(args.python).is_file():
        p.error(f"--python {args.python}: not found; give the suite venv's python")
    for option in ("compare", "summarise"):
        if getattr(args, option) and not Path(getattr(args, option)).is_file():
            p.error(f"--{option} {getattr(args, option)}: no such file")
    if not 0 <= args.port < 65536 or args.timeout <= 0:
        p.error("--port must be 0..65535 and --timeout positive")
    return args


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # clean up as for Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarise:
        report(parse_junit(Path(args.summarise)), args, finished=True)
        return 0
    signal.signal(signal.SIGTERM, _sigterm)
    work = Path(tempfile.mkdtemp(prefix="s3free-s3tests-"))
    deadline = time.monotonic() + args.timeout
    server = None
    try:
        server, endpoint = start_store(work, args.port)
        port = int(endpoint.rsplit(":", 1)[1])
        print(f"s3free server at {endpoint}, data in {work}", flush=True)
        conf, xml, log = work / "s3tests.conf", work / "report.xml", work / "pytest.log"
        write_config(conf, "127.0.0.1", port, owners(args.python, endpoint))
        finished = run_suite(args, conf, xml, log, max(1.0, deadline - time.monotonic()))
        if args.log:
            shutil.copyfile(log, args.log)
        if args.junit and xml.is_file():
            shutil.copyfile(xml, args.junit)
        if not xml.is_file():
            print(f"the suite wrote no report; its output:\n{log.read_text()[-4000:]}")
            return 1
        report(parse_junit(xml), args, finished)
        return 0 if finished else 1
    except KeyboardInterrupt:
        print("interrupted; stopping the server", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"s3tests: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
