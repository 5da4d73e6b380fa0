"""Configuration: precedence flag > environment > file > default, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3free.config import ConfigError, load

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
