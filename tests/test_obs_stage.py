"""The stage hook: observers see every stage, in order, with errors propagated."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from s3free.obs import stage as st


def test_stage_without_observers_is_shared_noop() -> None:
    assert st.stage(st.DISK_READ) is st.stage(st.DISK_WRITE)


def test_observers_see_stages_and_errors() -> None:
    seen: list[tuple[str, str, str]] = []

    def make(tag: str):
        @contextmanager
        def observer(name: str):
            seen.append((tag, "enter", name))
            try:
                yield
            except ValueError:
                seen.append((tag, "error", name))
                raise
            seen.append((tag, "exit", name))

        return observer

    first, second = make("a"), make("b")
    st.add_observer(first)
    st.add_observer(second)
    try:
        with st.stage(st.ERASURE_ENCODE):
            pass
        with pytest.raises(ValueError), st.stage(st.DISK_SYNC):
            raise ValueError("boom")
    finally:
        st.remove_observer(first)
        st.remove_observer(second)
    assert seen == [
        ("a", "enter", "erasure.encode"),
        ("b", "enter", "erasure.encode"),
        ("b", "exit", "erasure.encode"),
        ("a", "exit", "erasure.encode"),
        ("a", "enter", "disk.sync"),
        ("b", "enter", "disk.sync"),
        ("b", "error", "disk.sync"),
        ("a", "error", "disk.sync"),
    ]
    assert st.stage(st.DISK_READ) is st.stage(st.DISK_WRITE)
