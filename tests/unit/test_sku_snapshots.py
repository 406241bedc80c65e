"""The command API's sku snapshots: bounded, kept current by saves, silent while contended."""

from __future__ import annotations

import pytest

from command_side.sku_snapshots import ProductRow, SkuSnapshot, SkuSnapshots, StockRow


def snap(version: int, on_hand: int = 10) -> SkuSnapshot:
    return SkuSnapshot(ProductRow("Mug", 450, "active", 1), StockRow(on_hand, 0, version))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_snapshot_is_kept_until_it_is_forgotten() -> None:
    snapshots = SkuSnapshots()
    assert snapshots.get("MUG") is None
    snapshots.put("MUG", snap(3))
    assert snapshots.get("MUG") == snap(3)
    assert snapshots.hits == 1
    snapshots.forget(["MUG"])
    assert snapshots.get("MUG") is None


def test_the_least_recently_used_sku_goes_first() -> None:
    snapshots = SkuSnapshots(capacity=2)
    snapshots.put("A", snap(1))
    snapshots.put("B", snap(1))
    snapshots.get("A")  # A is now the most recently used
    snapshots.put("C", snap(1))
    assert snapshots.get("B") is None
    assert snapshots.get("A") is not None and snapshots.get("C") is not None
    assert len(snapshots) == 2


def test_a_save_replaces_only_the_rows_it_wrote_and_only_when_known() -> None:
    snapshots = SkuSnapshots()
    snapshots.saved("NEW", stock=StockRow(1, 1, 1))
    assert snapshots.get("NEW") is None  # no half-known snapshot is made up
    snapshots.put("MUG", snap(3))
    snapshots.saved("MUG", stock=StockRow(10, 1, 4))
    expected = SkuSnapshot(ProductRow("Mug", 450, "active", 1), StockRow(10, 1, 4))
    assert snapshots.get("MUG") == expected
    snapshots.saved("MUG", product=ProductRow("Mug", 500, "active", 2))
    found = snapshots.get("MUG")
    assert found is not None and found.product.price == 500 and found.stock.version == 4


def test_a_contended_sku_is_read_from_the_database_for_a_while() -> None:
    clock = Clock()
    snapshots = SkuSnapshots(contended_seconds=1.0, clock=clock)
    snapshots.put("MUG", snap(3))
    snapshots.forget(["MUG"], contended=True)
    assert snapshots.stale == 1
    snapshots.put("MUG", snap(4))  # a read meanwhile is not remembered
    assert snapshots.get("MUG") is None
    clock.now += 1.5
    snapshots.put("MUG", snap(5))
    assert snapshots.get("MUG") == snap(5)


def test_contended_markers_stay_bounded() -> None:
    clock = Clock()
    snapshots = SkuSnapshots(capacity=3, contended_seconds=1.0, clock=clock)
    snapshots.forget(["A", "B", "C"], contended=True)
    clock.now += 2
    snapshots.forget(["D"], contended=True)  # past capacity: the expired markers go
    assert snapshots._contended.keys() == {"D"}


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SkuSnapshots(capacity=0)


def test_forgetting_everything_leaves_nothing() -> None:
    snapshots = SkuSnapshots()
    for sku in ("A", "B", "C"):
        snapshots.put(sku, snap(1))
    snapshots.forget_all()
    assert len(snapshots) == 0 and snapshots.get("A") is None


def test_with_room_for_one_the_newest_contended_marker_stays() -> None:
    clock = Clock()
    snapshots = SkuSnapshots(capacity=1, contended_seconds=1.0, clock=clock)
    snapshots.forget(["A", "B"], contended=True)
    assert snapshots._contended.keys() == {"B"}
    snapshots.put("B", snap(1))
    assert snapshots.get("B") is None  # still contended
