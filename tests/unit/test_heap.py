"""orderdesk.heap: the collector settings each long-running process applies after start-up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orderdesk import heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_what_exists_and_collects_young_objects_less_often(
    restored_collector: None,
) -> None:
    survivor = [object() for _ in range(100)]
    heap.settle()
    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *heap.OLDER_THRESHOLDS)


def test_the_collector_still_runs_on_its_own_after_settling(restored_collector: None) -> None:
    heap.settle()
    passes: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(record)
    try:
        cycles = []
        for _ in range(2 * heap.YOUNG_THRESHOLD):
            pair: list[object] = []
            pair.append(pair)
            cycles.append(pair)
    finally:
        gc.callbacks.remove(record)
    assert passes, "no automatic collection after settle()"
