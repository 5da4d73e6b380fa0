"""The chaos suite's long run (1 MiB blocks, 8 MiB objects, more SIGKILL rounds), by hand:
`pytest -m slow tests/test_chaos_long.py` or `python -m chaos --long`."""

from __future__ import annotations

import pytest

from chaos import suite


def _param(entry):
    marks = [pytest.mark.slow]
    return pytest.param(entry.name, marks=marks)


@pytest.mark.parametrize("name", [_param(e) for e in suite.ENTRIES])
def test_long(name, tmp_path):
    row = suite.run_one(name, long=True, seed=21, heal=True, workdir=tmp_path)
    assert row.ok, row.fail_message()
