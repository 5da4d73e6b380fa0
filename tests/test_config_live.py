"""A real server process: the request limit (503 SlowDown) under real concurrent clients,
SIGHUP reload (applied, needs-restart, refused), and `s3free admin config show`."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from s3free.admin.client import AdminClient
from s3free.bench.spawn import spawn_server
from s3free.config import MASK
from s3free.s3.auth.sigv4 import sign_headers
from tests.s3.cli_support import admin, base_env
from tests.support.server import ACCESS_KEY, SECRET_KEY, Server, make_client

TOKEN = "metrics-token-7f3e9a2b5c"
BODY = 256 * 1024


def start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    full = {
        **base_env(),
        "S3FREE_ACCESS_KEY": ACCESS_KEY,
        "S3FREE_SECRET_KEY": SECRET_KEY,
        "S3FREE_DATA_DIR": str(tmp_path / "data"),
        **(env or {}),
    }
    proc, endpoint, output = spawn_server(["--listen", "127.0.0.1:0", *args], full)
    return Server(proc, endpoint, tmp_path, output=output)


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for srv in started:
        srv.stop()


class SlowUpload:
    """A signed PUT whose body is sent a little at a time: it holds a request slot until
    finish() sends the rest."""

    def __init__(self, srv: Server, bucket: str, key: str) -> None:
        parts = urlsplit(srv.endpoint)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        path = f"/{bucket}/{key}"
        headers = sign_headers(
            method="PUT",
            host=parts.netloc,
            path=path,
            query=[],
            access_key=srv.access_key,
            secret_key=srv.secret_key,
            region="us-east-1",
        )
        self.data = bytes(range(256)) * (BODY // 256)
        self.conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
        for name, value in {**headers, "content-length": str(BODY)}.items():
            self.conn.putheader(name, value)
        self.conn.endheaders()
        self.conn.send(self.data[:1024])

    def finish(self) -> int:
        self.conn.send(self.data[1024:])
        response = self.conn.getresponse()
        response.read()
        self.conn.close()
        return response.status


def wait_for(predicate, what: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def slowed_down(s3, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        return True
    return False


def client(srv: Server) -> AdminClient:
    return AdminClient(srv.endpoint, srv.access_key, srv.secret_key)


def settings(doc: dict) -> dict[str, dict]:
    return {s["key"]: s for s in doc["settings"]}


def test_requests_over_the_limit_get_slowdown_and_sdks_retry(tmp_path, servers):
    srv = start(tmp_path, "--requests-max", "2")
    servers.append(srv)
    s3 = make_client(srv)
    s3.create_bucket(Bucket="limited")
    held = [SlowUpload(srv, "limited", f"slow{i}") for i in range(2)]
    wait_for(lambda: slowed_down(s3, "limited"), "SlowDown while two uploads hold the slots")

    # The error is S3's: 503, code SlowDown, a request id, and Retry-After.
    parts = urlsplit(srv.endpoint)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/limited?list-type=2")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 503
    assert response.getheader("Retry-After") == "1"
    error = ET.fromstring(body)
    assert error.findtext("Code") == "SlowDown"
    assert error.findtext("RequestId") == response.getheader("x-amz-request-id") != ""

    # Probes are not limited (a full server is alive, not dead).
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "/_s3free/livez")
    assert conn.getresponse().status == 200
    conn.close()

    # The admin API is not limited, and shows the slots taken.
    doc = client(srv).config()
    assert doc["running"]["requests_active"] == 2
    assert doc["running"]["requests_refused"] >= 2
    assert settings(doc)["requests_max"] == {
        "key": "requests_max",
        "value": 2,
        "source": "flag",
        "reload": "live",
        "secret": False,
    }

    # An SDK with retries gets through once a slot is free.
    patient = boto3.client(
        "s3",
        endpoint_url=srv.endpoint,
        aws_access_key_id=srv.access_key,
        aws_secret_access_key=srv.secret_key,
        region_name="us-east-1",
        config=BotoConfig(retries={"max_attempts": 8, "mode": "standard"}),
    )
    result: dict = {}

    def put() -> None:
        try:
            result["etag"] = patient.put_object(Bucket="limited", Key="k", Body=b"x" * 1000)["ETag"]
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=put)
    thread.start()
    time.sleep(0.3)  # its first attempt meets a full server
    assert held[0].finish() == 200
    thread.join(30)
    assert "etag" in result, result
    assert held[1].finish() == 200
    assert s3.get_object(Bucket="limited", Key="slow1")["Body"].read() == held[1].data
    assert s3.get_object(Bucket="limited", Key="k")["Body"].read() == b"x" * 1000
    assert client(srv).config()["running"]["requests_active"] == 0


def write(file: Path, **values) -> None:
    file.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))


def hup(srv: Server, marker: str) -> str:
    """Send SIGHUP and return the log line of the reload (containing marker)."""
    seen = len(srv.output)
    srv.proc.send_signal(signal.SIGHUP)
    return wait_for(
        lambda: next((line for line in srv.output[seen:] if marker in line), None),
        f"{marker!r} in the server log",
    )


def test_sighup_applies_live_keys_reports_restart_keys_and_refuses_bad_files(tmp_path, servers):
    file = tmp_path / "s3free.yaml"
    write(file, requests_max=0, log_level="info", scrub_rate_mb_s=8, region="us-east-1")
    srv = start(
        tmp_path,
        "--config",
        str(file),
        "--scrub-files-per-s",
        "100",
        env={"S3FREE_METRICS_TOKEN": TOKEN},
    )
    servers.append(srv)
    s3 = make_client(srv)
    s3.create_bucket(Bucket="reload")

    # admin config show, as an operator runs it: every key, value and source; secrets masked.
    env = {**base_env(), "S3FREE_ACCESS_KEY": ACCESS_KEY, "S3FREE_SECRET_KEY": SECRET_KEY}
    out = admin("config", "show", "--json", "--endpoint", srv.endpoint, env=env)
    assert out.returncode == 0, out.stderr
    assert TOKEN not in out.stdout and SECRET_KEY not in out.stdout
    shown = settings(json.loads(out.stdout))
    assert (shown["requests_max"]["value"], shown["requests_max"]["source"]) == (0, "file")
    assert shown["scrub_files_per_s"]["source"] == "flag"
    assert shown["listen"]["source"] == "flag"
    assert shown["data_dir"]["source"] == "env"
    assert shown["domain"]["source"] == "default"
    assert (shown["metrics_token"]["value"], shown["metrics_token"]["source"]) == (MASK, "env")
    assert shown["secret_key"]["value"] == MASK
    table = admin("config", "show", "--endpoint", srv.endpoint, env=env)
    assert table.returncode == 0, table.stderr
    assert any(
        line.split()[:3] == ["requests_max", "0", "file"] for line in table.stdout.splitlines()
    )

    held = SlowUpload(srv, "reload", "held")
    time.sleep(0.2)
    assert not slowed_down(s3, "reload")  # no limit yet

    # A good edit: live keys applied, a flag still wins, region needs a restart.
    write(
        file,
        requests_max=1,
        log_level="debug",
        scrub_rate_mb_s=20,
        scrub_files_per_s=300,
        region="eu-west-1",
    )
    line = hup(srv, "reloaded:")
    assert "requests_max 0 -> 1" in line
    assert "log_level info -> debug" in line
    assert "scrub_rate_mb_s 8 -> 20" in line
    assert "scrub_files_per_s" not in line  # given by flag at start: the flag stays
    assert "needs a restart (not applied): region us-east-1 -> eu-west-1" in line
    assert slowed_down(s3, "reload")  # the held upload now fills the one slot
    doc = client(srv).config()
    running = doc["running"]
    assert running["log_level"] == "debug"
    assert (running["requests_max"], running["scrub_rate_mb_s"]) == (1, 20.0)
    assert running["scrub_files_per_s"] == 100.0
    shown = settings(doc)
    assert shown["region"]["value"] == "us-east-1"  # still what the server runs with
    assert doc["pending"] == {"region": "eu-west-1"}
    assert held.finish() == 200
    assert not slowed_down(s3, "reload")

    # A bad edit: refused whole, named, and the running configuration kept.
    write(file, requests_max="lots", log_level="error", scrub_rate_mb_s=1)
    line = hup(srv, "reload refused")
    assert "requests_max" in line and "lots" in line
    doc = client(srv).config()
    assert doc["running"]["log_level"] == "debug"
    assert doc["running"]["scrub_rate_mb_s"] == 20.0
    assert settings(doc)["requests_max"]["value"] == 1
    assert doc["reloads"] == 1

    # An unknown key in the file is refused as well.
    write(file, requests_max=1, request_max=5)
    assert "did you mean requests_max" in hup(srv, "reload refused")
    assert TOKEN not in srv.log and SECRET_KEY not in srv.log
    s3.head_bucket(Bucket="reload")  # and the server serves on


def test_config_show_without_a_server_checks_a_file(tmp_path):
    file = tmp_path / "c.yaml"
    write(file, requests_max=7, metrics_token=TOKEN)
    file.chmod(0o600)
    out = admin("config", "show", "--json", "--config", str(file), env=base_env())
    assert out.returncode == 0, out.stderr
    shown = settings(json.loads(out.stdout))
    assert (shown["requests_max"]["value"], shown["requests_max"]["source"]) == (7, "file")
    assert shown["metrics_token"]["value"] == MASK and TOKEN not in out.stdout
    write(file, requests_max=-1)
    bad = admin("config", "show", "--config", str(file), env=base_env())
    assert bad.returncode == 2 and "requests_max" in bad.stderr and bad.stdout == ""


def test_a_bad_setting_stops_the_server_at_start_naming_it(tmp_path):
    from tests.s3.cli_support import s3free_cli

    file = tmp_path / "c.yaml"
    write(file, scrub_rate_mb_s="[1, 2]")
    out = s3free_cli("server", "--config", str(file), env=base_env(), timeout=60)
    assert out.returncode == 2
    assert "scrub_rate_mb_s" in out.stderr and "[1, 2]" in out.stderr
    out = s3free_cli("server", "--requests-max", "many", env=base_env(), timeout=60)
    assert out.returncode == 2 and "requests_max: 'many'" in out.stderr
