"""`s3free disk recover`: versions whose every manifest copy and index entry are lost come back
from their shard headers into lost+found/, run as an operator would, on a stopped store."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from s3free.engine import ObjectStore
from tests.s3.cli_support import base_env, disk
from tests.support.engine import stream_of


async def test_recover_restores_a_version_with_no_manifest_left(tmp_path):
    data_dir = tmp_path / "data"
    paths = [data_dir / f"disk{i}" for i in range(1, 5)]
    body = random.Random(5).randbytes(300_000)  # over the inline limit: a version directory

    async def write() -> str:
        store = await ObjectStore.open(paths, meta_dir=data_dir / "meta")
        await store.create_bucket("bkt")
        await store.put_object("bkt", "photos/a.jpg", stream_of(body), expected_size=len(body))
        manifest = await store.get_manifest("bkt", "photos/a.jpg")
        await store.close()
        return f"lost+found/{manifest.object_id}/{manifest.version_id}"

    expected_key = await write()
    for manifest in data_dir.glob("disk*/objects/*/*/*/*/manifest"):
        manifest.unlink()
    shutil.rmtree(data_dir / "meta")  # the index goes too: nothing names the object any more

    out = disk("recover", "--json", "--data-dir", str(data_dir), env=base_env())
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert json.loads(out.stdout) == {"problems": [], "restored": 1}

    async def read() -> tuple[list[str], bytes]:
        store = await ObjectStore.open(paths, meta_dir=data_dir / "meta")
        try:
            keys = [o.key for o in (await store.list_objects("bkt")).objects]
            return keys, await store.get_object_bytes("bkt", expected_key)
        finally:
            await store.close()

    keys, got = await read()
    assert keys == [expected_key]
    assert got == body
    # a second run finds nothing left to restore
    out = disk("recover", "--data-dir", str(data_dir), env=base_env())
    assert out.returncode == 0 and "restored 0 version(s)" in out.stdout


def test_recover_refuses_to_go_through_a_server(tmp_path: Path):
    out = disk("recover", "--endpoint", "http://127.0.0.1:9", env=base_env())
    assert out.returncode == 2
    assert "stopped store" in out.stderr
