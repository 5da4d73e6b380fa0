"""The chaos suite's long run (1 MiB blocks, 8 MiB objects, more SIGKILL rounds), by hand:
`pytest -m slow tests/test_chaos_long.py` or `python -m chaos --long`."""

from __future__ import annotations

import importlib.util

import pytest

from chaos import suite

HEAL = importlib.util.find_spec("s3free.heal") is not None


def _param(entry):
    marks = [pytest.mark.slow]
    if entry.name == "index-tables-bitrot":
        marks.append(pytest.mark.xfail(strict=True, reason="see test_chaos_fast.py"))
    if entry.needs_heal and not HEAL:
        marks.append(pytest.mark.skip(reason="needs s3free.heal"))
    return pytest.param(entry.name, marks=marks)


@pytest.mark.parametrize("name", [_param(e) for e in suite.ENTRIES])
def test_long(name, tmp_path):
    row = suite.run_one(name, long=True, seed=21, heal=HEAL, workdir=tmp_path)
    assert row.ok, row.fail_message()
