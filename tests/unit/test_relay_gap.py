"""The relay's wait between wakeups (command_side.relay.coalescing_gap): light traffic keeps
the 10 ms floor, a busy log gets fewer and fuller sweeps, never more than 100 ms apart."""

from __future__ import annotations

import pytest

from command_side.relay import coalescing_gap


@pytest.mark.parametrize(("commits", "seconds"), [(0, 0.01), (1, 0.01), (5, 0.01)])
def test_light_traffic_keeps_the_floor(commits: int, seconds: float) -> None:
    assert coalescing_gap(commits) == pytest.approx(seconds)


def test_the_gap_grows_with_the_commits_of_the_previous_wakeup() -> None:
    assert coalescing_gap(10) == pytest.approx(0.02)
    assert coalescing_gap(20) == pytest.approx(0.04)


def test_a_burst_never_holds_a_wakeup_past_the_ceiling() -> None:
    assert coalescing_gap(1_000_000) == pytest.approx(0.1)


def test_at_200_orders_a_second_the_gap_settles_on_the_floor() -> None:
    # A gap of g seconds carries rate * g commits; iterate the rule from a burst.
    gap = coalescing_gap(100)
    for _ in range(20):
        gap = coalescing_gap(round(200 * gap))
    assert gap == pytest.approx(0.01)


def test_above_500_commits_a_second_the_gap_settles_on_the_ceiling() -> None:
    gap = coalescing_gap(1)
    for _ in range(20):
        gap = coalescing_gap(round(800 * gap))
    assert gap == pytest.approx(0.1)
