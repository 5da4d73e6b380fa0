"""Server logs: text and JSON lines, the request id on every line of a request (worker threads
included), the access log and its live switch, and the redaction of secrets."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import threading
from pathlib import Path

import boto3
import pytest
from aiohttp import web
from botocore.config import Config as BotoConfig

from s3free.config import Config
from s3free.meta.users import ROOT_USER, User, UserStore
from s3free.obs import logs
from s3free.obs.context import REQUEST_ID, ContextExecutor
from s3free.s3.app import Settings, make_app
from s3free.storage.disk import LocalDisk
from s3free.storage.faulty import FaultyDisk
from tests.support.engine import disk_paths, open_store

AK, SK = "LOGTESTACCESSKEY0001", "log-test-secret-key-0123456789"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    logs.set_access_log(True)


def _record(msg: str, *args, exc: BaseException | None = None, name: str = "s3free.test"):
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, exc_info)


# -- redaction ---------------------------------------------------------------------------------

SIG = "fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024"


@pytest.mark.parametrize(
    "text, secret",
    [
        (
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/"
            f"aws4_request, SignedHeaders=host;x-amz-date, Signature={SIG}",
            SIG,
        ),
        (
            "{'Authorization': 'AWS AKIDEXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=', 'Host': 'x'}",
            "frJIUN8DYpKDtOLCwo//yllqDzg=",
        ),
        (f"GET /b/k?X-Amz-Credential=AKID%2F2015&X-Amz-Signature={SIG}&x=1", SIG),
        ("GET /b/k?X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1&X-Amz-Date=1", "AKIDEX"),
        ("GET /b/k?AWSAccessKeyId=AK&Signature=abc%2Bdef%3D&Expires=1", "abc%2Bdef"),
        ('body {"access_key": "AK1", "secret_key": "s3cr3t-value-42"}', "s3cr3t-value-42"),
        ("secretAccessKey=s3cr3t-value-42 next", "s3cr3t-value-42"),
        ("metrics_token: tok-tok-tok-tok", "tok-tok-tok-tok"),
        ("got header Bearer abcdefgh12345678", "abcdefgh12345678"),
    ],
)
def test_redact_masks_secrets(text: str, secret: str) -> None:
    out = logs.redact(text)
    assert secret not in out
    assert logs.REDACTED in out


def test_redact_keeps_ordinary_text() -> None:
    text = "The request signature we calculated does not match the signature you provided."
    assert logs.redact(text) == text


def test_literal_secrets_are_masked_anywhere() -> None:
    logs.add_secret("Literal-Secret-Value-77")
    assert "Literal-Secret-Value-77" not in logs.redact("x Literal-Secret-Value-77y")
    logs.add_secret("short")  # too short to mask safely: ignored
    assert logs.redact("a short word") == "a short word"


def test_filter_redacts_arguments_and_exception_text() -> None:
    try:
        raise ValueError(f"bad X-Amz-Signature={SIG}")
    except ValueError as exc:
        record = _record("auth failed for %s", f"Signature={SIG}", exc=exc)
    logs.RedactFilter().filter(record)
    line = logs.JsonFormatter().format(record)
    assert SIG not in line
    assert "auth failed for Signature=[REDACTED]" in line
    assert "ValueError" in json.loads(line)["exception"]


def test_loggable_path_drops_only_signing_parameters() -> None:
    raw = f"/b/a%20b?uploadId=U1&X-Amz-Signature={SIG}&X-Amz-Credential=AK%2Fx&partNumber=2"
    assert logs.loggable_path(raw) == "/b/a%20b?uploadId=U1&partNumber=2"
    assert logs.loggable_path("/b/k?Signature=x&AWSAccessKeyId=y") == "/b/k"
    assert logs.loggable_path("/b/k") == "/b/k"


# -- formats -----------------------------------------------------------------------------------


def test_text_format_is_one_line_with_request_id() -> None:
    record = _record("two\nlines %d", 7)
    record.request_id = "ABC123"
    line = logs.TextFormatter().format(record)
    assert "\n" not in line
    assert line.endswith("WARNING s3free.test rid=ABC123: two\\nlines 7")


def test_json_format_fields() -> None:
    record = _record("hello %s", "world")
    logs.RequestIdFilter().filter(record)
    doc = json.loads(logs.JsonFormatter().format(record))
    assert doc["level"] == "warning" and doc["logger"] == "s3free.test"
    assert doc["message"] == "hello world" and "request_id" not in doc
    assert doc["time"].endswith("Z")


async def test_context_executor_carries_the_request_id_into_threads() -> None:
    async def main() -> list[str | None]:
        pool = ContextExecutor(2)
        loop = asyncio.get_running_loop()
        try:
            REQUEST_ID.set("RID-1")
            first = await loop.run_in_executor(pool, REQUEST_ID.get)
            REQUEST_ID.set("RID-2")
            second = await loop.run_in_executor(pool, REQUEST_ID.get)
            plain = await loop.run_in_executor(None, REQUEST_ID.get)  # a plain pool does not
            return [first, second, plain]
        finally:
            pool.shutdown()

    assert await main() == ["RID-1", "RID-2", None]


def test_set_level_refuses_unknown_levels(restore_logging) -> None:
    logs.set_level("debug")
    assert logging.getLogger().level == logging.DEBUG
    with pytest.raises(ValueError):
        logs.set_level("verbose")


# -- a real server in this process, over a disk that fails writes --------------------------------


class _Capture(logging.Handler):
    """Keeps (thread name, request id, message) of every record, after the setup's filters."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None, str]] = []
        self.addFilter(logs.RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.threadName, record.request_id, record.getMessage()))


async def _serve(root: Path, disks: list) -> tuple[web.AppRunner, object, str]:
    store = await open_store(root, disks=disks)
    users = UserStore(User(ROOT_USER, AK, SK), store.diskset, store.executor)
    await users.load()
    runner = web.AppRunner(
        make_app(store, users, Settings()),
        access_log_class=logs.AccessLogger,
        access_log=logs.ACCESS,
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, store, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name="us-east-1",
        config=BotoConfig(retries={"max_attempts": 1, "mode": "standard"}),
    )


async def test_engine_lines_from_worker_threads_carry_the_request_id(
    tmp_path, restore_logging
) -> None:
    out = io.StringIO()
    logs.setup(Config(log_format="json", log_level="info", access_log=True), stream=out)
    capture = _Capture()
    logging.getLogger().addHandler(capture)

    async def main() -> tuple[str, str, str]:
        disks = [FaultyDisk(LocalDisk(p)) for p in disk_paths(tmp_path, 4)]
        runner, store, endpoint = await _serve(tmp_path, disks)
        try:
            s3 = _client(endpoint)
            await asyncio.to_thread(s3.create_bucket, Bucket="logs")
            disks[0].fail("write", errno.EIO)  # one shard of four fails: the PUT still succeeds
            put = await asyncio.to_thread(
                s3.put_object, Bucket="logs", Key="dir/a key", Body=b"x" * 300_000
            )
            disks[0].heal()
            logs.set_access_log(False)
            head = await asyncio.to_thread(s3.head_object, Bucket="logs", Key="dir/a key")
            logs.set_access_log(True)
            got = await asyncio.to_thread(s3.get_object, Bucket="logs", Key="dir/a key")
            await asyncio.to_thread(got["Body"].read)
        finally:
            await runner.cleanup()
            await store.close()
        ids = (put, head, got)
        return tuple(r["ResponseMetadata"]["RequestId"] for r in ids)  # type: ignore[return-value]

    put_id, head_id, get_id = await main()
    # The writer's warning about the failed shard was logged in a pool thread, during the PUT.
    failed = [s for s in capture.seen if "failed" in s[2] and "shard" in s[2]]
    assert failed, capture.seen
    assert all(thread.startswith("s3free-io") and rid == put_id for thread, rid, _ in failed)
    assert threading.current_thread().name not in {t for t, _, _ in failed}

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    engine = [d for d in lines if d["logger"] == "s3free.engine.writer"]
    assert engine and all(d["request_id"] == put_id for d in engine)
    access = {d["request_id"]: d for d in lines if d["logger"] == "s3free.access"}
    assert head_id not in access  # the access log was off for the HEAD
    put, get = access[put_id], access[get_id]
    assert (put["method"], put["path"], put["status"], put["user"]) == (
        "PUT",
        "/logs/dir/a%20key",
        200,
        "root",
    )
    assert put["bytes_in"] >= 300_000 and put["client"] == "127.0.0.1"
    assert get["method"] == "GET" and get["bytes_out"] >= 300_000 and get["duration_ms"] > 0
    assert SK not in out.getvalue() and AK not in out.getvalue()
