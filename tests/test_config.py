"""Configuration: precedence flag > environment > file > default, and clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from s3free.config import KEYS, MASK, SECRETS, ConfigError, load, reload

SAMPLE = Path(__file__).parent.parent / "configs" / "s3free.yaml"


def test_the_sample_config_loads():
    config = load(str(SAMPLE), {}, env={})
    assert config.ec == "6+3"
    assert len(config.disk_paths) == 9
    assert config.host_port == ("127.0.0.1", 9000)


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("listen: 127.0.0.1:7001\nregion: eu-west-1\nec: '4+2'\n")
    env = {"S3FREE_LISTEN": "127.0.0.1:7002", "S3FREE_EC": "2+1"}
    config = load(str(file), {"listen": "127.0.0.1:7003", "ec": None}, env=env)
    assert config.listen == "127.0.0.1:7003"  # flag
    assert config.ec == "2+1"  # environment beats the file
    assert config.region == "eu-west-1"  # file beats the default
    assert config.log_level == "info"  # default
    assert load(None, {}, env={}).listen == "127.0.0.1:9000"


def test_disks_from_flags_env_and_default(tmp_path):
    assert load(None, {"disks": ("/a", "/b", "/c")}, env={}).disks == ["/a", "/b", "/c"]
    assert load(None, {}, env={"S3FREE_DISKS": "/x,/y,/z"}).disks == ["/x", "/y", "/z"]
    default = load(None, {"data_dir": str(tmp_path)}, env={}).disk_paths
    assert default == [tmp_path / f"disk{i}" for i in range(1, 5)]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("listen_port: 9000\n", "listen_port"),
        ("ec: 6-3\n", "ec"),
        ("ec: '0+3'\n", "ec"),
        ("listen: localhost\n", "listen"),
        ("region: US East\n", "region"),
        ("disks: /just/one/string/is/fine\nblock_size: lots\n", "block_size"),
        ("log_level: chatty\n", "log_level"),
        ("- a\n- b\n", "mapping"),
        ("listen: [unclosed\n", "YAML"),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path, text, named):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(str(file), {}, env={})
    assert named in str(err.value)


def test_bad_environment_value_is_refused():
    with pytest.raises(ConfigError, match="listen"):
        load(None, {}, env={"S3FREE_LISTEN": "not-a-port"})


# -- every key: sources, types, validation -------------------------------------------------------

# One bad value per key, as YAML. A key added to Config without a bad value here fails
# test_every_key_has_a_bad_value_case, so every key stays validated.
BAD = {
    "data_dir": '""',
    "disks": "[/a, '']",
    "ec": "6-3",
    "listen": "localhost",
    "meta_dir": '""',
    "region": "US East",
    "domain": "not a host!",
    "tls_cert": "/no/such/cert.pem\ntls_key: /no/such/key.pem",
    "tls_key": "/no/such/key.pem",
    "block_size": "1024",
    "log_level": "chatty",
    "disk_probe_s": "0",
    "scrub_rate_mb_s": "-1",
    "scrub_files_per_s": "lots",
    "scrub_interval_s": "1e12",
    "orphan_grace_s": "10",
    "log_format": "xml",
    "access_log": "maybe",
    "otlp_endpoint": "ftp://collector:4318",
    "trace_sample_ratio": "1.5",
    "metrics_token": "'has spaces in it'",
    "requests_max": "2.5",
    "connections_max": "-1",
    "header_timeout_s": "0",
    "idle_timeout_s": "forever",
    "stall_timeout_s": "1e9",
    "io_threads": "0",
    "access_key": "'a b'\nsecret_key: long-enough-secret",
    "secret_key": "short\naccess_key: ROOTKEY",
}


def test_every_key_has_a_bad_value_case():
    assert set(BAD) == set(KEYS)


@pytest.mark.parametrize("key", sorted(BAD))
def test_a_bad_value_is_refused_naming_the_key(tmp_path, key):
    file = tmp_path / "bad.yaml"
    file.write_text(f"{key}: {BAD[key]}\n")
    with pytest.raises(ConfigError) as err:
        load(str(file), {}, env={})
    assert key in str(err.value)


@pytest.mark.parametrize("key", sorted(KEYS))
@pytest.mark.parametrize("shape", ["[1, 2]", "{a: 1}"])
def test_a_list_or_mapping_where_a_value_goes_is_refused(tmp_path, key, shape):
    file = tmp_path / "bad.yaml"
    file.write_text(f"{key}: {shape}\n")
    with pytest.raises(ConfigError) as err:
        load(str(file), {}, env={})
    assert key in str(err.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("scrub_rate_mb_s: yes\n", "scrub_rate_mb_s"),  # YAML's yes is a bool, not 1 MB/s
        ("requests_max: true\n", "requests_max"),
        ("requests_max: 2.5\n", "requests_max"),
        ("ec: '6+3'\ndisks: [/a, /b, /c, /d]\n", "needs 9 disks"),
        ("disks: [/a, /b]\n", "at least 3"),
        ("listen_port: 9000\n", "did you mean listen"),
    ],
)
def test_types_and_combinations_are_checked(tmp_path, text, named):
    file = tmp_path / "bad.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=named):
        load(str(file), {}, env={})


def test_whole_floats_are_whole_numbers_and_words_are_booleans(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("requests_max: 4.0\naccess_log: off\nio_threads: '8'\n")
    config = load(str(file), {}, env={"S3FREE_ACCESS_LOG": "yes"})
    assert (config.requests_max, config.access_log, config.io_threads) == (4, True, 8)


def test_each_value_remembers_its_source(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("requests_max: 5\nscrub_rate_mb_s: 20\nlog_level: debug\n")
    env = {"S3FREE_SCRUB_RATE_MB_S": "30", "S3FREE_LOG_FORMAT": "json"}
    flags = {"log_level": "warning", "listen": None, "access_log": False}
    config = load(str(file), flags, env=env)
    assert (config.requests_max, config.scrub_rate_mb_s) == (5, 30.0)
    assert (config.log_level, config.log_format, config.access_log) == ("warning", "json", False)
    assert config.sources["requests_max"] == "file"
    assert config.sources["scrub_rate_mb_s"] == "env"
    assert config.sources["log_format"] == "env"
    assert config.sources["log_level"] == "flag"
    assert config.sources["access_log"] == "flag"
    assert config.sources["listen"] == "default"
    assert set(config.sources) == set(KEYS)
    # reload reads the same file and flags again (here with a new environment)
    again = reload(config, env={})
    assert (again.scrub_rate_mb_s, again.sources["scrub_rate_mb_s"]) == (20.0, "file")
    assert again.log_level == "warning"


def test_secrets_are_masked_and_never_in_messages(tmp_path):
    token, secret = "tok-3f9a8b7c6d5e4f3a", "root-secret-0123456789"
    env = {
        "S3FREE_METRICS_TOKEN": token,
        "S3FREE_ACCESS_KEY": "ROOTKEY",
        "S3FREE_SECRET_KEY": secret,
    }
    config = load(None, {}, env=env)
    assert (config.metrics_token, config.secret_key, config.access_key) == (
        token,
        secret,
        "ROOTKEY",
    )
    described = {d["key"]: d for d in config.describe()}
    assert described["metrics_token"]["value"] == MASK
    assert described["secret_key"]["value"] == MASK
    assert described["secret_key"]["source"] == "env"
    assert described["access_key"]["value"] == "ROOTKEY"  # an id, not a secret
    assert token not in repr(config) and secret not in repr(config)
    assert token not in json.dumps(config.describe()) and secret not in json.dumps(
        config.describe()
    )
    bad = "short7"
    with pytest.raises(ConfigError) as err:
        load(None, {}, env={"S3FREE_ACCESS_KEY": "ROOTKEY", "S3FREE_SECRET_KEY": bad})
    assert "secret_key" in str(err.value) and bad not in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(None, {}, env={"S3FREE_METRICS_TOKEN": "two words"})
    assert "metrics_token" in str(err.value) and "two words" not in str(err.value)
    with pytest.raises(ConfigError, match="both or neither"):
        load(None, {}, env={"S3FREE_SECRET_KEY": secret})


def test_a_secret_in_a_file_others_can_read_is_warned_about(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("metrics_token: tok-0123456789\n")
    file.chmod(0o644)
    assert any("chmod 600" in w for w in load(str(file), {}, env={}).warnings)
    file.chmod(0o600)
    assert load(str(file), {}, env={}).warnings == []


def test_unknown_environment_settings_warn_and_name_the_likely_key():
    env = {"S3FREE_REQUESTS_MAXX": "5", "S3FREE_NO_ISAL": "1", "S3FREE_LISTEN": "127.0.0.1:1"}
    config = load(None, {}, env=env)
    assert config.requests_max == 0
    assert len(config.warnings) == 1
    assert "S3FREE_REQUESTS_MAXX" in config.warnings[0]
    assert "did you mean requests_max" in config.warnings[0]


def test_flags_for_the_new_keys_reach_the_config(tmp_path):
    """`s3free server --help` lists a flag for every key that is not a secret, and the
    names the CLI passes are the config's keys."""
    from s3free.cli.main import server

    names = {p.name for p in server.params} - {"config_file"}
    assert names <= set(KEYS)
    assert set(KEYS) - names == SECRETS | {"access_key"}


# -- the samples in configs/ ---------------------------------------------------------------------

SAMPLES = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_there_are_the_three_documented_samples():
    assert {p.name for p in SAMPLES} >= {
        "s3free.yaml",
        "single-disk-dev.yaml",
        "low-memory.yaml",
    }


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
async def test_every_sample_starts_a_real_server(tmp_path, sample):
    """Each sample, with its paths moved into tmp_path (same disk count), loads, validates
    and opens a real store that serves an S3 request: the samples cannot rot."""
    import yaml

    from s3free.server import RootCredentials, start

    raw = yaml.safe_load(sample.read_text())
    disks = [str(tmp_path / f"d{i}") for i in range(len(raw.get("disks") or []))]
    env = {"S3FREE_DATA_DIR": str(tmp_path / "data"), "S3FREE_META_DIR": str(tmp_path / "meta")}
    if disks:
        env["S3FREE_DISKS"] = ",".join(disks)
    config = load(str(sample), {"listen": "127.0.0.1:0"}, env=env)
    assert config.warnings == []
    assert all(str(p).startswith(str(tmp_path)) for p in config.disk_paths)
    described = {d["key"]: d for d in config.describe()}
    moved = {"listen": "flag", "data_dir": "env", "meta_dir": "env", "disks": "env"}
    assert {k: described[k]["source"] for k in raw} == {k: moved.get(k, "file") for k in raw}

    async def serve_one() -> int:
        running = await start(config, RootCredentials("SAMPLEROOT", "sample-secret-123", False))
        try:
            async with aiohttp.ClientSession() as http, http.get(running.url + "/") as resp:
                return resp.status  # unsigned: AccessDenied, from a store that is up
        finally:
            await running.close()

    assert await serve_one() == 403
    ds_format = json.loads((config.disk_paths[0] / "format.json").read_text())
    assert len(ds_format["disks"]) == len(config.disk_paths)
    if config.k_m:
        assert (ds_format["k"], ds_format["m"]) == config.k_m
    if config.block_size:
        assert ds_format["block_size"] == config.block_size
