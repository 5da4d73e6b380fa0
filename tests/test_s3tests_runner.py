"""tools/s3tests.py, the ceph/s3-tests runner: the parts whose mistakes would silently skew the
conformance figures in docs/conformance.md (the area classifier, the JUnit XML reading, the
suite's config file, the comparison of two runs). The suite itself is not needed here."""

from __future__ import annotations

import configparser
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "s3tests.py"


def _load():
    spec = importlib.util.spec_from_file_location("s3tests_runner", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


runner = _load()


@pytest.mark.parametrize(
    ("test_id", "area"),
    [
        ("test_s3::test_bucket_list_empty", "listing"),
        ("test_s3::test_bucket_listv2_continuationtoken_empty", "listing"),
        ("test_s3::test_bucket_list_delimiter_percentage", "listing"),  # not "tag" in percentage
        ("test_s3::test_object_write_check_etag", "objects"),  # nor in etag
        ("test_s3::test_put_max_tags", "tagging"),
        ("test_s3::test_get_obj_head_tagging", "tagging"),
        ("test_s3::test_bucket_create_naming_bad_ip", "buckets"),
        ("test_s3::test_object_copy_16m", "copy"),
        ("test_s3::test_multipart_copy_small", "multipart"),
        ("test_s3::test_multipart_upload_small", "multipart"),
        ("test_s3::test_multipart_get_part", "ranges"),
        ("test_s3::test_ranged_big_request_response_code", "ranges"),
        ("test_s3::test_multi_objectv2_delete", "multi-delete"),
        ("test_s3::test_copy_object_ifmatch_good", "conditional requests"),
        ("test_s3::test_put_object_ifnonmatch_good", "conditional requests"),
        ("test_s3::test_delete_objects_if_match_size", "conditional requests"),
        ("test_s3::test_object_raw_get_x_amz_expires_out_range_zero", "presigned URLs"),
        ("test_s3::test_cors_presigned_get_object", "CORS"),
        ("test_s3::test_multipart_use_cksum_helper_crc32", "checksums"),
        ("test_headers::test_object_create_bad_md5_none", "auth headers"),
        ("test_s3::test_list_buckets_bad_auth", "auth headers"),
        ("test_s3::test_bucket_acl_canned_authenticatedread", "ACL"),
        ("test_s3::test_versioning_obj_create_read_remove", "versioning"),
        ("test_s3::test_delete_marker_suspended", "versioning"),
        ("test_s3::test_object_lock_suspend_versioning", "object lock"),
        ("test_s3::test_lifecycle_expiration_versioning_enabled", "lifecycle"),
        ("test_s3::test_object_set_get_unicode_metadata", "metadata"),
        ("test_s3::test_bucket_policy_put_obj_s3_incorrect_algo_sse_s3", "policy"),
        ("test_s3::test_sse_kms_post_object_authenticated_request", "encryption"),
        ("test_s3::test_put_obj_enc_conflict_c_s3", "encryption"),
        ("test_s3::test_bucket_list_encoding_basic", "listing"),  # "_enc" is not encoding
        ("test_s3::test_post_object_expired_policy", "POST uploads"),
        ("test_s3::test_bucket_logging_put_objects_versioned", "logging"),
        ("test_s3::test_create_bucket_bucket_owner_enforced", "ownership controls"),
        ("test_s3::test_100_continue", "objects"),
        ("test_s3::test_get_object_torrent", "other"),
        ("test_iam::test_create_user", "IAM"),
        ("test_utils::test_generate", "other"),
        ("test_s3::test_something_new[param]", "other"),
    ],
)
def test_area_of_sample_names(test_id: str, area: str) -> None:
    assert runner.area_of(test_id) == area


def test_areas_cover_the_issue_list() -> None:
    """Every area the conformance target names has a rule (so its table row can exist)."""
    wanted = {"buckets", "objects", "listing", "ranges", "copy", "multipart", "multi-delete",
              "conditional requests", "presigned URLs", "checksums", "auth headers",
              "versioning", "object lock", "tagging", "metadata", "ACL", "policy", "lifecycle",
              "encryption", "CORS", "website", "logging"}  # fmt: skip
    assert wanted <= {area for area, _ in runner.AREAS}
    assert set(runner.DISPLAY) == {area for area, _ in runner.AREAS} | {runner.OTHER}


REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="3" skipped="1" tests="7">
<testcase classname="s3tests.functional.test_s3" name="test_bucket_list_empty" time="0.1"/>
<testcase classname="s3tests.functional.test_s3" name="test_bucket_list_maxkeys_zero">
 <failure message="assert True == False">
s3tests/functional/test_s3.py:1034: in test_bucket_list_maxkeys_zero
    assert response['IsTruncated'] == False
E   assert True == False</failure></testcase>
<testcase classname="s3tests.functional.test_s3" name="test_versioning_obj_create_read_remove">
 <failure message="botocore.exceptions.ClientError: An error occurred (NotImplemented) when
 calling the PutBucketVersioning operation">traceback</failure></testcase>
<testcase classname="s3tests.functional.test_s3" name="test_object_copy_16m">
 <error message="failed on setup with ConnectionError">setup</error></testcase>
<testcase classname="s3tests.functional.test_s3" name="test_object_copy_16m">
 <failure message="assert 1 == 2">E   assert 1 == 2</failure></testcase>
<testcase classname="s3tests.functional.test_s3" name="test_put_excess_tags">
 <failure message="assert 501 == 400">E   assert 501 == 400</failure></testcase>
<testcase classname="s3tests.functional.test_iam" name="test_create_user">
 <skipped type="pytest.skip" message="no iam">skip</skipped></testcase>
<testcase classname="s3tests.functional.test_s3" name="test_bucket_head">
 <error message="failed on teardown with NotImplemented">teardown</error></testcase>
</testsuite></testsuites>
"""


def test_parse_junit_outcomes_and_tallies(tmp_path: Path) -> None:
    xml = tmp_path / "report.xml"
    xml.write_text(REPORT)
    results = {r.test_id: r for r in runner.parse_junit(xml)}
    assert {t: r.outcome for t, r in results.items()} == {
        "test_s3::test_bucket_list_empty": "passed",
        "test_s3::test_bucket_list_maxkeys_zero": "failed",
        "test_s3::test_versioning_obj_create_read_remove": "failed",
        "test_s3::test_object_copy_16m": "failed",  # error then failure: the worse one, once
        "test_s3::test_put_excess_tags": "failed",
        "test_iam::test_create_user": "skipped",
        "test_s3::test_bucket_head": "error",
    }
    assert results["test_s3::test_versioning_obj_create_read_remove"].not_implemented
    assert results["test_s3::test_put_excess_tags"].not_implemented  # 501 is NotImplemented
    assert not results["test_s3::test_bucket_list_maxkeys_zero"].not_implemented
    assert runner.brief(results["test_s3::test_bucket_list_maxkeys_zero"].message) == (
        "assert response['IsTruncated'] == False -> assert True == False"
    )

    results["test_s3::test_bucket_list_maxkeys_zero"].fails_on_aws = True
    results["test_s3::test_bucket_list_empty"].fails_on_aws = True  # passed: not counted
    summary = runner.summarise(list(results.values()))
    t = summary.total
    assert (t.passed, t.failed, t.errors, t.skipped, t.not_implemented) == (1, 4, 1, 1, 3)
    assert t.fails_on_aws == 1
    listing = summary.areas["listing"]
    assert (listing.passed, listing.failed, listing.not_implemented) == (1, 1, 0)
    assert summary.areas["versioning"].not_implemented == 1
    assert summary.areas["buckets"].errors == 1
    assert list(summary.areas) == ["buckets", "listing", "copy", "versioning", "tagging", "IAM"]
    text = runner.format_summary(summary)
    assert "1/7 = 14.3 % passed" in text
    assert "| listing | 2 | 1 | 1 | 0 | 1 | 0 |" in text
    assert "| **total** | 7 | 1 | 5 | 3 | 1 | 1 |" in text


def test_fails_on_aws_marks_are_read(tmp_path: Path) -> None:
    """The suite's `fails_on_aws` marks, read from its sources: only the decorated tests."""
    functional = tmp_path / "s3tests" / "functional"
    functional.mkdir(parents=True)
    (functional / "test_s3.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.fails_on_aws\n@pytest.mark.list_objects_v2\ndef test_a():\n    pass\n\n"
        "def _helper():\n    pass\n\n"
        "@pytest.mark.parametrize(\n    'x', [1, 2]\n)\ndef test_b(x):\n    pass\n\n"
        "@pytest.mark.parametrize('x', [1])\n@pytest.mark.fails_on_aws\ndef test_c(x):\n"
        "    x = '@pytest.mark.fails_on_aws in a string'\n\ndef test_d():\n    pass\n"
    )
    (functional / "utils.py").write_text("@pytest.mark.fails_on_aws\ndef test_helper(): pass\n")
    assert runner.aws_failing(tmp_path) == {"test_s3::test_a", "test_s3::test_c"}


def test_config_file_reads_back(tmp_path: Path) -> None:
    conf = tmp_path / "s3tests.conf"
    owners = {"s3 main": ("faff41", "root"), "s3 alt": ("0b0b", "alt")}
    runner.write_config(conf, "127.0.0.1", 9101, owners)
    cfg = configparser.RawConfigParser()
    assert cfg.read(conf) == [str(conf)]
    assert cfg.get("DEFAULT", "host") == "127.0.0.1"
    assert cfg.getint("DEFAULT", "port") == 9101
    assert cfg.getboolean("DEFAULT", "is_secure") is False
    assert cfg.get("fixtures", "bucket prefix") == "s3t-{random}-"
    main = cfg["s3 main"]
    assert (main["access_key"], main["secret_key"]) == runner.MAIN[1:]
    assert (main["user_id"], main["display_name"]) == ("faff41", "root")
    assert cfg.get("s3 alt", "user_id") == "0b0b"
    assert cfg.get("s3 tenant", "tenant") == "tenant"
    for section, (name, ak, sk) in runner.USERS.items():
        assert cfg.get(section, "access_key") == ak
        assert cfg.get(section, "secret_key") == sk
        assert cfg.get(section, "user_id") == owners.get(section, (name,))[0]
        for option in ("user_id", "email", "display_name"):  # each is read by the suite
            assert cfg.get(section, option), (section, option)
    keys = [cfg.get(s, "access_key") for s in ("s3 main", *runner.USERS)]
    assert len(set(keys)) == len(keys) == 6


def test_compare_runs() -> None:
    old = {"a": "passed", "b": "failed", "c": "passed", "d": "error", "e": "skipped"}
    new = {"a": "failed", "b": "passed", "c": "passed", "d": "passed", "e": "failed", "f": "failed"}
    assert runner.compare(old, new) == (["a"], ["b", "d"])


def test_bad_suite_path_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(TOOL), "--suite", str(tmp_path / "nowhere")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no s3tests/ directory there" in proc.stderr
