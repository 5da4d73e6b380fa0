"""Listing against a real server: ListObjectsV2 and V1 (prefix, delimiter, paging, start-after,
encoding), ListObjectVersions (every object is version "null"), ListMultipartUploads.

Expected results come from `model`, a direct statement of S3's listing rules over the keys the
test wrote: keys in UTF-8 byte order, filtered by prefix, after the marker, with keys that
contain the delimiter after the prefix rolled up into one common prefix each.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote

import pytest
from botocore.exceptions import ClientError

from tests.s3.users_support import anonymous_client, code_of, raw_request, status_of

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

TREE = [
    "a/1",
    "a/2",
    "a/b/3",
    "a/b/c/4",
    "a-x",
    "a.",
    "b/1",
    "c",
    "d/",
    "d//e",
    "e",
    "ü/1",
    "ü/2",
    "z~",
]


def model(keys, prefix="", delimiter="", after=""):
    """The ordered listing S3 defines: entries ("key", k) and ("prefix", p), each sorted by its
    own text in UTF-8 byte order, every entry after `after`."""
    out: dict[str, tuple[str, str]] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        pos = key.find(delimiter, len(prefix)) if delimiter else -1
        entry = ("prefix", key[: pos + len(delimiter)]) if pos >= 0 else ("key", key)
        if entry[1].encode() > after.encode():
            out[entry[1]] = entry
    return [out[name] for name in sorted(out, key=str.encode)]


def put_keys(s3, bucket, keys, body=b"x"):
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def entries_v2(page) -> list[tuple[str, str]]:
    found = [("key", o["Key"]) for o in page.get("Contents", [])]
    found += [("prefix", p["Prefix"]) for p in page.get("CommonPrefixes", [])]
    return sorted(found, key=lambda e: e[1].encode())


@pytest.fixture
def tree(s3, bucket):
    put_keys(s3, bucket, TREE)
    return bucket


# -- ListObjectsV2 -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix, delimiter",
    [
        ("", ""),
        ("", "/"),
        ("a/", "/"),
        ("a", "/"),
        ("a/", ""),
        ("d/", "/"),
        ("", "b"),
        ("ü", "/"),
        ("", "//"),
        ("a", "b/"),
        ("nothing", "/"),
    ],
)
def test_v2_single_page_matches_model(s3, tree, prefix, delimiter):
    page = s3.list_objects_v2(Bucket=tree, Prefix=prefix, Delimiter=delimiter)
    expected = model(TREE, prefix, delimiter)
    assert entries_v2(page) == expected
    assert page["KeyCount"] == len(expected)
    assert page["IsTruncated"] is False
    assert "NextContinuationToken" not in page
    assert page["Prefix"] == prefix
    assert page.get("Delimiter", "") == delimiter
    assert page["MaxKeys"] == 1000
    assert page["Name"] == tree


def test_v2_contents_fields(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"hello")
    info = s3.head_object(Bucket=bucket, Key="obj")
    (entry,) = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert entry["Key"] == "obj"
    assert entry["Size"] == 5
    assert entry["ETag"] == '"5d41402abc4b2a76b9719d911017c592"'  # md5(b"hello")
    assert entry["ETag"] == info["ETag"]
    # Last-Modified (HTTP date) has whole seconds; the listing has milliseconds.
    assert entry["LastModified"].replace(microsecond=0) == info["LastModified"]
    assert entry["StorageClass"] == "STANDARD"
    assert "Owner" not in entry


def test_v2_fetch_owner(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x")
    root_id = s3.list_buckets()["Owner"]["ID"]
    (entry,) = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"]
    assert entry["Owner"] == {"DisplayName": "root", "ID": root_id}
    (entry,) = s3.list_objects_v2(Bucket=bucket, FetchOwner=False)["Contents"]
    assert "Owner" not in entry
    # V1 always shows the owner.
    (entry,) = s3.list_objects(Bucket=bucket)["Contents"]
    assert entry["Owner"]["ID"] == root_id


@pytest.mark.parametrize(
    "prefix, delimiter, max_keys",
    [("", "", 1), ("", "", 4), ("", "/", 1), ("", "/", 3), ("a/", "/", 1), ("a", "", 2)],
)
def test_v2_continuation_pages_cover_everything_once(s3, tree, prefix, delimiter, max_keys):
    expected = model(TREE, prefix, delimiter)
    seen: list[tuple[str, str]] = []
    token = None
    for _ in range(len(TREE) + 2):
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(
            Bucket=tree, Prefix=prefix, Delimiter=delimiter, MaxKeys=max_keys, **kwargs
        )
        got = entries_v2(page)
        assert page["KeyCount"] == len(got) <= max_keys
        assert page["MaxKeys"] == max_keys
        assert page.get("ContinuationToken") == token
        seen += got
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            break
        assert len(got) == max_keys
        token = page["NextContinuationToken"]
    else:
        pytest.fail("listing never ended")
    assert seen == expected


def test_v2_start_after(s3, tree):
    for after in ["a/2", "a/1x", "b", "c", "zzz", "", "a/b/"]:
        page = s3.list_objects_v2(Bucket=tree, StartAfter=after)
        assert entries_v2(page) == model(TREE, after=after), after
        assert page.get("StartAfter", "") == after
    # With a prefix: the marker may lie before, inside or after the prefix's range.
    for after in ["0", "a/1", "a/b/3", "b"]:
        page = s3.list_objects_v2(Bucket=tree, Prefix="a/", StartAfter=after)
        assert entries_v2(page) == model(TREE, "a/", after=after), after
    # With a delimiter: a common prefix is listed when it sorts after the marker.
    for after in ["a", "a-x", "d/", "c"]:
        page = s3.list_objects_v2(Bucket=tree, Delimiter="/", StartAfter=after)
        assert entries_v2(page) == model(TREE, "", "/", after), after
    # The continuation token wins over start-after on later pages.
    first = s3.list_objects_v2(Bucket=tree, StartAfter="b", MaxKeys=2)
    assert [o["Key"] for o in first["Contents"]] == ["b/1", "c"]
    second = s3.list_objects_v2(
        Bucket=tree, StartAfter="b", MaxKeys=2, ContinuationToken=first["NextContinuationToken"]
    )
    assert [o["Key"] for o in second["Contents"]] == ["d/", "d//e"]


def test_max_keys_zero_and_bad_arguments(server, s3, tree):
    page = s3.list_objects_v2(Bucket=tree, MaxKeys=0)
    assert page["KeyCount"] == 0 and "Contents" not in page
    # An empty page has nothing to go on from: not truncated, as in S3.
    assert page["IsTruncated"] is False and "NextContinuationToken" not in page
    page = s3.list_objects(Bucket=tree, MaxKeys=0, Delimiter="/")
    assert page["IsTruncated"] is False and "Contents" not in page and "NextMarker" not in page
    page = s3.list_object_versions(Bucket=tree, MaxKeys=0)
    assert page["IsTruncated"] is False and "Versions" not in page
    assert "NextKeyMarker" not in page
    for query in [
        [("list-type", "2"), ("max-keys", "-1")],
        [("list-type", "2"), ("max-keys", "many")],
        [("list-type", "2"), ("encoding-type", "base64")],
        [("list-type", "2"), ("continuation-token", "not-a-token")],
        [("max-keys", "-5")],
    ]:
        status, _, raw = raw_request(server, "GET", f"/{tree}", query=query)
        assert status == 400, (query, raw)
        assert ET.fromstring(raw).findtext("Code") == "InvalidArgument", raw


def test_empty_continuation_token_is_no_token(s3, tree):
    """continuation-token= (empty) lists from the start, or from start-after, and is echoed."""
    page = s3.list_objects_v2(Bucket=tree, ContinuationToken="")
    assert page["ContinuationToken"] == ""
    assert entries_v2(page) == model(TREE)
    page = s3.list_objects_v2(Bucket=tree, ContinuationToken="", StartAfter="d/")
    assert entries_v2(page) == model(TREE, after="d/")


def test_listing_a_missing_bucket(s3, bucket_name):
    for call in (s3.list_objects_v2, s3.list_objects, s3.list_object_versions):
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket_name)
        assert (code_of(exc), status_of(exc)) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as exc:
        s3.list_multipart_uploads(Bucket=bucket_name)
    assert code_of(exc) == "NoSuchBucket"


# -- ListObjects (V1) --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix, delimiter, max_keys", [("", "", 3), ("", "/", 2), ("a/", "/", 1)])
def test_v1_marker_paging(s3, tree, prefix, delimiter, max_keys):
    """V1 pages with Marker; NextMarker is given only with a delimiter, and otherwise the
    client continues from the last key it saw (as S3 documents)."""
    expected = model(TREE, prefix, delimiter)
    seen: list[tuple[str, str]] = []
    marker = ""
    for _ in range(len(TREE) + 2):
        page = s3.list_objects(
            Bucket=tree, Prefix=prefix, Delimiter=delimiter, MaxKeys=max_keys, Marker=marker
        )
        got = entries_v2(page)
        assert len(got) <= max_keys
        assert page["Marker"] == marker
        seen += got
        if not page["IsTruncated"]:
            assert "NextMarker" not in page
            break
        if delimiter:
            assert page["NextMarker"] == got[-1][1]
            marker = page["NextMarker"]
        else:
            assert "NextMarker" not in page
            marker = got[-1][1]
    else:
        pytest.fail("listing never ended")
    assert seen == expected


def test_v1_marker_inside_the_tree(s3, tree):
    for marker in ["a/b/3", "a/", "c", "d/"]:
        page = s3.list_objects(Bucket=tree, Marker=marker)
        assert entries_v2(page) == model(TREE, after=marker)
        page = s3.list_objects(Bucket=tree, Marker=marker, Delimiter="/")
        assert entries_v2(page) == model(TREE, "", "/", marker)


# -- paginators --------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["list_objects_v2", "list_objects"])
@pytest.mark.parametrize("delimiter", ["", "/"])
def test_paginators_visit_every_entry_once_in_order(s3, tree, operation, delimiter):
    paginator = s3.get_paginator(operation)
    pages = list(
        paginator.paginate(Bucket=tree, Delimiter=delimiter, PaginationConfig={"PageSize": 2})
    )
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
    expected = model(TREE, "", delimiter)
    assert keys == [name for kind, name in expected if kind == "key"]
    assert prefixes == [name for kind, name in expected if kind == "prefix"]
    assert len(pages) == -(-len(expected) // 2)


def test_paginator_over_many_keys(s3, bucket):
    keys = [f"k{i:04d}" for i in range(0, 300, 7)] + [f"k{i:04d}/x" for i in range(3)]
    put_keys(s3, bucket, keys)
    paginator = s3.get_paginator("list_objects_v2")
    listed = [
        o["Key"]
        for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 10})
        for o in page.get("Contents", [])
    ]
    assert listed == sorted(keys)
    # MaxItems stops early and resumes where it stopped.
    first = paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 4, "MaxItems": 9})
    result = first.build_full_result()
    assert [o["Key"] for o in result["Contents"]] == sorted(keys)[:9]
    rest = paginator.paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 4, "StartingToken": result["NextToken"]}
    ).build_full_result()
    assert [o["Key"] for o in rest["Contents"]] == sorted(keys)[9:]


# -- keys that need escaping -------------------------------------------------------------------

SPECIAL = [
    "amp&lt<gt>quot\"apos'",
    "&amp;",
    "<Key>fake</Key>",
    "sp ace  double",
    " leading and trailing ",
    "plus+and%20percent%2F",
    "question?hash#semi;colon",
    "ключ/日本語/✓",
    "emoji/😀",
    "ctrl\x01char",
    "tab\tchar",
    "del\x7fchar",
    "back\\slash",
    "~tilde=equal,comma",
    "dots/../x",
]


def test_special_keys_round_trip_through_boto3(s3, bucket):
    """boto3 lists with encoding-type=url and decodes: every key comes back exactly, in UTF-8
    byte order, and each can be fetched by the listed name."""
    for i, key in enumerate(SPECIAL):
        s3.put_object(Bucket=bucket, Key=key, Body=f"body{i}".encode())
    expected = sorted(SPECIAL, key=str.encode)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == expected
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == expected
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["Key"] for v in versions] == expected
    for i, key in enumerate(SPECIAL):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == f"body{i}".encode()
    # Prefixes and delimiters with special characters, and paging through them.
    page = s3.list_objects_v2(Bucket=bucket, Prefix="ключ/", Delimiter="/")
    assert page["CommonPrefixes"] == [{"Prefix": "ключ/日本語/"}]
    page = s3.list_objects_v2(Bucket=bucket, Delimiter="&")
    assert {"Prefix": "&"} in page["CommonPrefixes"]
    assert {"Prefix": "amp&"} in page["CommonPrefixes"]
    paged = [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 3}
        )
        for o in p["Contents"]
    ]
    assert paged == expected
    start = s3.list_objects_v2(Bucket=bucket, StartAfter="<Key>fake</Key>")
    assert [o["Key"] for o in start["Contents"]] == [
        k for k in expected if k.encode() > b"<Key>fake</Key>"
    ]


XML_SAFE = [k for k in SPECIAL if all(ch >= " " or ch == "\t" for ch in k)]


def test_special_keys_in_plain_xml(server, s3, bucket):
    """Without encoding-type the keys are XML-escaped text that parses back exactly."""
    put_keys(s3, bucket, XML_SAFE)
    status, _, raw = raw_request(server, "GET", f"/{bucket}", query=[("list-type", "2")])
    assert status == 200
    root = ET.fromstring(raw)
    assert [k.text for k in root.iter(f"{NS}Key")] == sorted(XML_SAFE, key=str.encode)
    assert root.find(f"{NS}EncodingType") is None
    # Prefix and Delimiter are echoed escaped too.
    status, _, raw = raw_request(
        server, "GET", f"/{bucket}", query=[("prefix", "amp&lt<"), ("delimiter", ">")]
    )
    root = ET.fromstring(raw)
    assert root.findtext(f"{NS}Prefix") == "amp&lt<"
    assert root.findtext(f"{NS}Delimiter") == ">"
    assert [p.text for p in root.iter(f"{NS}Prefix")][1:] == ["amp&lt<gt>"]


def test_encoding_type_url_in_raw_xml(server, s3, bucket):
    """With encoding-type=url every key, prefix, delimiter and marker in the reply is
    percent-encoded (so control characters travel in XML), and decodes to the real text."""
    put_keys(s3, bucket, SPECIAL)
    expected = sorted(SPECIAL, key=str.encode)
    for query in (
        [("list-type", "2"), ("encoding-type", "url")],
        [("encoding-type", "url")],
        [("versions", ""), ("encoding-type", "url")],
    ):
        status, _, raw = raw_request(server, "GET", f"/{bucket}", query=query)
        assert status == 200, raw
        root = ET.fromstring(raw)  # well-formed although keys hold control characters
        keys = [k.text for k in root.iter(f"{NS}Key")]
        assert [unquote(k) for k in keys] == expected
        for k in keys:
            assert all(" " < ch < "\x7f" for ch in k), k
        assert root.findtext(f"{NS}EncodingType") == "url"
    status, _, raw = raw_request(
        server,
        "GET",
        f"/{bucket}",
        query=[("encoding-type", "url"), ("prefix", "ключ/"), ("delimiter", "/"), ("marker", "ä")],
    )
    root = ET.fromstring(raw)
    assert root.findtext(f"{NS}Prefix") == "ключ/"  # V1 echoes Prefix as given
    assert root.findtext(f"{NS}Delimiter") == "/"
    assert unquote(root.findtext(f"{NS}Marker")) == "ä"
    assert [p.text for p in root.iter(f"{NS}Prefix")][1:] == [quote("ключ/日本語/")]


ENCODED = ["foo+1/bar", "foo/bar/xyzzy", "quux ab/thud", "asdf+b", "test_file(3).png", "100%"]


@pytest.mark.parametrize("listing", ["v2", "v1", "versions"])
def test_encoding_type_url_leaves_slash_alone(server, s3, bucket, listing):
    """S3's url encoding percent-encodes every byte but the unreserved characters and `/`:
    keys, common prefixes and the `/` delimiter keep their slashes."""
    put_keys(s3, bucket, ENCODED)
    extra = {"v2": [("list-type", "2")], "v1": [], "versions": [("versions", "")]}[listing]
    query = [*extra, ("encoding-type", "url"), ("delimiter", "/")]
    status, _, raw = raw_request(server, "GET", f"/{bucket}", query=query)
    assert status == 200, raw
    root = ET.fromstring(raw)
    assert [k.text for k in root.iter(f"{NS}Key")] == ["100%25", "asdf%2Bb", "test_file%283%29.png"]
    prefixes = [p.findtext(f"{NS}Prefix") for p in root.iter(f"{NS}CommonPrefixes")]
    assert prefixes == ["foo%2B1/", "foo/", "quux%20ab/"]
    assert root.findtext(f"{NS}Delimiter") == "/"
    query = [*extra, ("encoding-type", "url"), ("prefix", "foo/b"), ("delimiter", "/")]
    status, _, raw = raw_request(server, "GET", f"/{bucket}", query=query)
    root = ET.fromstring(raw)
    assert root.findtext(f"{NS}Prefix") == "foo/b"
    assert [p.findtext(f"{NS}Prefix") for p in root.iter(f"{NS}CommonPrefixes")] == ["foo/bar/"]


def test_boto3_v1_listing_reads_prefix_and_delimiter_back(s3, bucket):
    """boto3 asks for url encoding on V1 listings by itself and decodes keys, Marker and
    Delimiter, not Prefix: the Prefix it shows must be the one it sent."""
    put_keys(s3, bucket, ENCODED)
    page = s3.list_objects(Bucket=bucket, Prefix="quux ab/", Delimiter="/")
    assert page["Prefix"] == "quux ab/"
    assert page["Delimiter"] == "/"
    assert [o["Key"] for o in page["Contents"]] == ["quux ab/thud"]
    page = s3.list_objects(Bucket=bucket, Prefix="\n")
    assert page["Prefix"] == "\n" and "Contents" not in page


def test_carriage_return_in_key_survives_plain_xml(server, s3, bucket):
    """XML parsers turn a literal CR into LF; S3 writes it as &#13; so it survives."""
    s3.put_object(Bucket=bucket, Key="cr\rkey", Body=b"x")
    status, _, raw = raw_request(server, "GET", f"/{bucket}", query=[("list-type", "2")])
    assert status == 200
    assert [k.text for k in ET.fromstring(raw).iter(f"{NS}Key")] == ["cr\rkey"]
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "cr\rkey"}]})
    assert deleted["Deleted"] == [{"Key": "cr\rkey"}]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_newline_in_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key="line\nbreak", Body=b"x")
    assert s3.get_object(Bucket=bucket, Key="line\nbreak")["Body"].read() == b"x"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["line\nbreak"]


# -- ListObjectVersions ------------------------------------------------------------------------


def test_versions_are_all_null_and_latest(s3, tree):
    heads = {k: s3.head_object(Bucket=tree, Key=k) for k in TREE}
    page = s3.list_object_versions(Bucket=tree)
    versions = page["Versions"]
    assert [v["Key"] for v in versions] == sorted(TREE, key=str.encode)
    for v in versions:
        assert v["VersionId"] == "null"
        assert v["IsLatest"] is True
        assert v["ETag"] == heads[v["Key"]]["ETag"]
        assert v["Size"] == 1
    assert "DeleteMarkers" not in page
    assert page["IsTruncated"] is False
    grouped = s3.list_object_versions(Bucket=tree, Delimiter="/", Prefix="a/")
    assert [v["Key"] for v in grouped["Versions"]] == ["a/1", "a/2"]
    assert grouped["CommonPrefixes"] == [{"Prefix": "a/b/"}]


def test_versions_paging_with_key_marker(s3, tree):
    expected = sorted(TREE, key=str.encode)
    seen = []
    key_marker, version_marker = "", ""
    for _ in range(len(TREE) + 2):
        kwargs = {"KeyMarker": key_marker} if key_marker else {}
        if version_marker:
            kwargs["VersionIdMarker"] = version_marker
        page = s3.list_object_versions(Bucket=tree, MaxKeys=3, **kwargs)
        got = [v["Key"] for v in page.get("Versions", [])]
        assert len(got) <= 3
        seen += got
        if not page["IsTruncated"]:
            break
        assert page["NextKeyMarker"] == got[-1]
        assert page["NextVersionIdMarker"] == "null"
        key_marker, version_marker = page["NextKeyMarker"], page["NextVersionIdMarker"]
    else:
        pytest.fail("listing never ended")
    assert seen == expected
    paginated = [
        v["Key"]
        for p in s3.get_paginator("list_object_versions").paginate(
            Bucket=tree, PaginationConfig={"PageSize": 4}
        )
        for v in p.get("Versions", [])
    ]
    assert paginated == expected
    # A key marker alone starts after that key.
    page = s3.list_object_versions(Bucket=tree, KeyMarker="c")
    assert [v["Key"] for v in page["Versions"]] == [k for k in expected if k.encode() > b"c"]


def test_delete_with_null_version_id(s3, bucket):
    put_keys(s3, bucket, ["one", "two", "three", "four"])
    resp = s3.delete_object(Bucket=bucket, Key="one", VersionId="null")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    resp = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "two", "VersionId": "null"}, {"Key": "three"}]},
    )
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["three", "two"]
    assert "Errors" not in resp
    # A version id other than "null" names nothing: the object stays.
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key="four", VersionId="3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    resp = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "four", "VersionId": "someversion"}]}
    )
    assert [e["Key"] for e in resp["Errors"]] == ["four"]
    assert [v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == ["four"]
    # GetObject / HeadObject with versionId=null read the object.
    assert s3.get_object(Bucket=bucket, Key="four", VersionId="null")["Body"].read() == b"x"
    assert s3.head_object(Bucket=bucket, Key="four", VersionId="null")["ContentLength"] == 1


# -- ListMultipartUploads ----------------------------------------------------------------------


def test_list_multipart_uploads(s3, bucket):
    s3.put_object(Bucket=bucket, Key="u/done", Body=b"x")
    made: list[tuple[str, str]] = []
    for key in ["u/a", "u/b", "u/b", "v/c", "w", "u/x/y"]:
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        made.append((key, upload))
    expected = sorted(made, key=lambda m: (m[0].encode(), m[1]))
    try:
        page = s3.list_multipart_uploads(Bucket=bucket)
        assert [(u["Key"], u["UploadId"]) for u in page["Uploads"]] == expected
        assert page["IsTruncated"] is False
        root_id = s3.list_buckets()["Owner"]["ID"]
        for u in page["Uploads"]:
            assert u["Initiator"]["ID"] == root_id and u["Owner"]["ID"] == root_id
            assert u["StorageClass"] == "STANDARD"

        page = s3.list_multipart_uploads(Bucket=bucket, Prefix="u/")
        assert [u["Key"] for u in page["Uploads"]] == ["u/a", "u/b", "u/b", "u/x/y"]
        page = s3.list_multipart_uploads(Bucket=bucket, Prefix="u/", Delimiter="/")
        assert [u["Key"] for u in page["Uploads"]] == ["u/a", "u/b", "u/b"]
        assert page["CommonPrefixes"] == [{"Prefix": "u/x/"}]
        page = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
        assert [u["Key"] for u in page["Uploads"]] == ["w"]
        assert page["CommonPrefixes"] == [{"Prefix": "u/"}, {"Prefix": "v/"}]

        # Paging one at a time with both markers visits every upload once.
        seen = []
        key_marker, id_marker = "", ""
        for _ in range(len(made) + 2):
            kwargs = {"KeyMarker": key_marker, "UploadIdMarker": id_marker} if key_marker else {}
            page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=1, **kwargs)
            seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
            if not page["IsTruncated"]:
                break
            key_marker, id_marker = page["NextKeyMarker"], page["NextUploadIdMarker"]
            assert (key_marker, id_marker) == seen[-1]
        else:
            pytest.fail("listing never ended")
        assert seen == expected
        # A key marker alone skips every upload of that key.
        page = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="u/b")
        assert [u["Key"] for u in page["Uploads"]] == ["u/x/y", "v/c", "w"]
        paged = [
            (u["Key"], u["UploadId"])
            for p in s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=bucket, PaginationConfig={"PageSize": 2}
            )
            for u in p.get("Uploads", [])
        ]
        assert paged == expected
        # Uploads in progress are not objects.
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["u/done"]
    finally:
        for key, upload in made:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_list_multipart_uploads_delimiter_paging(s3, bucket):
    """Paging with a delimiter: each common prefix appears once, however many uploads hide
    behind it, and a page of n holds n entries (uploads and prefixes together)."""
    made = []
    for key in ["a/1", "a/2", "a/3", "b", "c/1", "c/2", "d"]:
        made.append((key, s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]))
    try:
        for size in (1, 2, 3):
            pages = list(
                s3.get_paginator("list_multipart_uploads").paginate(
                    Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": size}
                )
            )
            keys = [u["Key"] for p in pages for u in p.get("Uploads", [])]
            prefixes = [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]
            assert (keys, prefixes) == (["b", "d"], ["a/", "c/"]), size
            for page in pages:
                entries = len(page.get("Uploads", [])) + len(page.get("CommonPrefixes", []))
                assert entries <= size
                if page["IsTruncated"]:
                    assert entries == size
    finally:
        for key, upload in made:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)


def test_public_read_bucket_lists_uploads_anonymously(server, s3, bucket_name):
    """READ on a bucket is list permission for objects, versions and uploads alike."""
    s3.create_bucket(Bucket=bucket_name, ACL="public-read")
    upload = s3.create_multipart_upload(Bucket=bucket_name, Key="k")["UploadId"]
    anon = anonymous_client(server)
    try:
        assert [u["Key"] for u in anon.list_multipart_uploads(Bucket=bucket_name)["Uploads"]] == [
            "k"
        ]
        assert "Versions" not in anon.list_object_versions(Bucket=bucket_name)
        s3.put_bucket_acl(Bucket=bucket_name, ACL="private")
        with pytest.raises(ClientError) as exc:
            anon.list_multipart_uploads(Bucket=bucket_name)
        assert code_of(exc) == "AccessDenied"
        # Listing uploads does not open their parts.
        with pytest.raises(ClientError) as exc:
            anon.list_parts(Bucket=bucket_name, Key="k", UploadId=upload)
        assert code_of(exc) == "AccessDenied"
    finally:
        s3.abort_multipart_upload(Bucket=bucket_name, Key="k", UploadId=upload)
