"""The cycle collector is paused for a block and left as it was found, errors included."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reconciler import collector


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations collected while the test runs, with a threshold that collects often."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    was, threshold = gc.isenabled(), gc.get_threshold()
    gc.enable()
    gc.set_threshold(10)
    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*threshold)
        gc.enable() if was else gc.disable()


def test_nothing_is_collected_inside_and_collection_resumes_after(collections: list[int]) -> None:
    with collector.paused():
        collections.clear()  # what the test's own set-up set off
        kept = [[n] for n in range(10_000)]
        assert collections == []
    assert gc.isenabled()
    kept += [[n] for n in range(10_000)]
    assert collections != []


def test_an_error_inside_still_resumes_collection(collections: list[int]) -> None:
    with pytest.raises(RuntimeError), collector.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable() if was else gc.disable()
