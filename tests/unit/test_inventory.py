"""Inventory rules: levels move as documented and 0 <= reserved <= on_hand always holds."""

from __future__ import annotations

import pytest

from command_side.domain.errors import Conflict, InsufficientStock, NotFound, RuleViolation
from command_side.domain.inventory import StockItem
from shared_contracts.events import (
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
)


def levels(item: StockItem) -> tuple[int, int, int, int]:
    return item.on_hand, item.reserved, item.available, item.version


def test_new_item_starts_empty() -> None:
    item = StockItem("A")
    assert levels(item) == (0, 0, 0, 0)
    assert item.events == []


def test_receive_adds_to_on_hand_and_records_levels() -> None:
    item = StockItem("A", on_hand=5, reserved=2, version=4)
    item.receive(10, "PO-1")
    assert levels(item) == (15, 2, 13, 5)
    assert item.events == [
        StockReceived(sku="A", quantity=10, reference="PO-1", on_hand=15, reserved=2)
    ]


@pytest.mark.parametrize("quantity", [0, -1])
def test_receive_refuses_non_positive_quantity(quantity: int) -> None:
    item = StockItem("A", on_hand=5)
    with pytest.raises(RuleViolation) as caught:
        item.receive(quantity)
    assert caught.value.slug == "invalid-quantity"
    assert caught.value.loc == ["body", "quantity"]
    assert levels(item) == (5, 0, 5, 0)


def test_adjust_moves_on_hand_both_ways() -> None:
    item = StockItem("A", on_hand=5, reserved=2, version=1)
    item.adjust(-3, "broken")
    assert levels(item) == (2, 2, 0, 2)
    item.adjust(4, "found")
    assert levels(item) == (6, 2, 4, 3)
    assert item.events == [
        StockAdjusted(sku="A", delta=-3, reason="broken", on_hand=2, reserved=2),
        StockAdjusted(sku="A", delta=4, reason="found", on_hand=6, reserved=2),
    ]


@pytest.mark.parametrize(
    ("on_hand", "reserved", "delta"),
    [(5, 0, -6), (5, 2, -4), (0, 0, -1)],
    ids=["below-zero", "below-reserved", "empty"],
)
def test_adjust_below_zero_or_reserved_is_a_conflict(
    on_hand: int, reserved: int, delta: int
) -> None:
    item = StockItem("A", on_hand=on_hand, reserved=reserved, version=3)
    with pytest.raises(Conflict) as caught:
        item.adjust(delta, "oops")
    assert caught.value.slug == "insufficient-on-hand"
    assert (item.on_hand, item.reserved, item.version, item.events) == (
        on_hand,
        reserved,
        3,
        [],
    )


def test_adjust_by_zero_is_refused() -> None:
    with pytest.raises(RuleViolation) as caught:
        StockItem("A", on_hand=1).adjust(0, "nothing")
    assert caught.value.slug == "invalid-delta"
    assert caught.value.loc == ["body", "delta"]


def test_reserve_takes_from_available() -> None:
    item = StockItem("A", on_hand=5, reserved=1)
    item.reserve("o1", 4)
    assert levels(item) == (5, 5, 0, 1)
    assert item.events == [StockReserved(sku="A", quantity=4, order_id="o1", on_hand=5, reserved=5)]


def test_reserve_more_than_available_is_insufficient_stock() -> None:
    item = StockItem("A", on_hand=5, reserved=2)
    with pytest.raises(InsufficientStock) as caught:
        item.reserve("o1", 4)
    assert caught.value.slug == "insufficient-stock"
    assert caught.value.skus == ["A"]
    assert isinstance(caught.value, Conflict)
    assert levels(item) == (5, 2, 3, 0)
    assert item.events == []


def test_release_gives_reservation_back() -> None:
    item = StockItem("A", on_hand=5, reserved=3)
    item.release("o1", 2)
    assert levels(item) == (5, 1, 4, 1)
    assert item.events == [StockReleased(sku="A", quantity=2, order_id="o1", on_hand=5, reserved=1)]


def test_ship_moves_reserved_units_out_of_on_hand() -> None:
    item = StockItem("A", on_hand=5, reserved=3)
    item.ship("o1", 2)
    assert levels(item) == (3, 1, 2, 1)
    assert item.events == [StockShipped(sku="A", quantity=2, order_id="o1", on_hand=3, reserved=1)]


@pytest.mark.parametrize("quantity", [0, 4])
def test_release_or_ship_more_than_reserved_is_refused(quantity: int) -> None:
    item = StockItem("A", on_hand=5, reserved=3)
    for action in (item.release, item.ship):
        with pytest.raises(Conflict) as caught:
            action("o1", quantity)
        assert caught.value.slug == "insufficient-reserved"
    assert levels(item) == (5, 3, 2, 0)


def test_insufficient_stock_names_skus_sorted_once() -> None:
    error = InsufficientStock(["B", "A", "B"])
    assert error.skus == ["A", "B"]
    assert "A, B" in error.detail


def test_not_found_slug() -> None:
    assert NotFound("no stock for ZZZ").slug == "not-found"
