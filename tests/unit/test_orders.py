"""Order rules: all-or-none placement, captured prices, pay/ship/cancel transitions."""

from __future__ import annotations

import pytest

from command_side.domain.catalog import Product
from command_side.domain.errors import Conflict, InsufficientStock, RuleViolation
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order, place_order
from shared_contracts.events import (
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    StockReleased,
    StockReserved,
    StockShipped,
)

OID = "6c1f1c0a-5b8e-4a43-9d7e-0f0e7c1f7a11"


@pytest.fixture
def products() -> dict[str, Product]:
    return {
        "A": Product("A", "Apple", 100, version=1),
        "B": Product("B", "Banana", 250, version=1),
        "C": Product("C", "Cherry", 7, version=1),
        "OLD": Product("OLD", "Old stock", 5, "discontinued", version=2),
    }


@pytest.fixture
def stock() -> dict[str, StockItem]:
    return {
        "A": StockItem("A", on_hand=10, reserved=0, version=1),
        "B": StockItem("B", on_hand=5, reserved=3, version=2),
        "C": StockItem("C", on_hand=0, reserved=0, version=0),
        "OLD": StockItem("OLD", on_hand=9, version=1),
    }


def snapshot(stock: dict[str, StockItem]) -> dict[str, tuple[int, int, int, int]]:
    return {s: (i.on_hand, i.reserved, i.version, len(i.events)) for s, i in stock.items()}


def placed(products: dict[str, Product], stock: dict[str, StockItem]) -> Order:
    return place_order(OID, "cust-1", [("A", 3), ("B", 2)], products, stock)


def test_place_reserves_every_line_and_records_order_placed(
    products: dict[str, Product], stock: dict[str, StockItem]
) -> None:
    order = placed(products, stock)
    lines = (OrderLine("A", "Apple", 3, 100), OrderLine("B", "Banana", 2, 250))
    assert (order.id, order.customer_id, order.status, order.lines) == (
        OID,
        "cust-1",
        "placed",
        lines,
    )
    assert order.total == 800
    assert (order.paid_amount, order.refund, order.version) == (0, 0, 1)
    assert order.events == [OrderPlaced(order_id=OID, customer_id="cust-1", lines=lines, total=800)]
    assert (stock["A"].reserved, stock["A"].version) == (3, 2)
    assert (stock["B"].reserved, stock["B"].version) == (5, 3)
    assert stock["A"].events == [
        StockReserved(sku="A", quantity=3, order_id=OID, on_hand=10, reserved=3)
    ]
    assert stock["B"].events == [
        StockReserved(sku="B", quantity=2, order_id=OID, on_hand=5, reserved=5)
    ]
    assert stock["C"].events == []


@pytest.mark.parametrize(
    ("requested", "slug", "loc"),
    [
        ([("A", 1), ("NOPE", 1)], "unknown-sku", ["body", "lines", 1, "sku"]),
        ([("OLD", 1), ("A", 1)], "discontinued-sku", ["body", "lines", 0, "sku"]),
        # the first offending line wins, whatever kind of offence the later ones are
        ([("A", 1), ("OLD", 1), ("NOPE", 1)], "discontinued-sku", ["body", "lines", 1, "sku"]),
        ([("A", 1), ("NOPE", 1), ("OLD", 1)], "unknown-sku", ["body", "lines", 1, "sku"]),
        # 422 rules come before stock: C has none, yet the unknown sku is reported
        ([("C", 5), ("NOPE", 1)], "unknown-sku", ["body", "lines", 1, "sku"]),
        ([("A", 1), ("A", 2)], "duplicate-sku", ["body", "lines", 1, "sku"]),
        ([("A", 0)], "invalid-quantity", ["body", "lines", 0, "quantity"]),
        ([], "no-lines", ["body", "lines"]),
    ],
)
def test_place_rule_violations_change_nothing(
    products: dict[str, Product],
    stock: dict[str, StockItem],
    requested: list[tuple[str, int]],
    slug: str,
    loc: list[str | int],
) -> None:
    before = snapshot(stock)
    with pytest.raises(RuleViolation) as caught:
        place_order(OID, "cust-1", requested, products, stock)
    assert (caught.value.slug, caught.value.loc) == (slug, loc)
    assert snapshot(stock) == before


def test_place_is_all_or_none_and_names_every_short_sku(
    products: dict[str, Product], stock: dict[str, StockItem]
) -> None:
    before = snapshot(stock)
    with pytest.raises(InsufficientStock) as caught:
        # A is fine, C has nothing and B has only 2 available: neither A nor anything moves.
        place_order(OID, "cust-1", [("C", 1), ("A", 10), ("B", 3)], products, stock)
    assert caught.value.slug == "insufficient-stock"
    assert caught.value.skus == ["B", "C"]
    assert snapshot(stock) == before


def test_place_without_a_stock_item_counts_as_none_available(
    products: dict[str, Product], stock: dict[str, StockItem]
) -> None:
    del stock["C"]
    with pytest.raises(InsufficientStock) as caught:
        place_order(OID, "cust-1", [("A", 1), ("C", 1)], products, stock)
    assert caught.value.skus == ["C"]
    assert stock["A"].reserved == 0


def test_price_captured_at_order_time_survives_a_later_change(
    products: dict[str, Product], stock: dict[str, StockItem]
) -> None:
    order = placed(products, stock)
    products["A"].update(name="Green apple", price=999)
    assert order.lines[0] == OrderLine("A", "Apple", 3, 100)
    assert order.total == 800
    with pytest.raises(RuleViolation):
        order.pay(3 * 999 + 2 * 250)
    order.pay(800)
    assert order.paid_amount == 800


def test_pay_exact_total(products: dict[str, Product], stock: dict[str, StockItem]) -> None:
    order = placed(products, stock)
    order.pay(800)
    assert (order.status, order.paid_amount, order.version) == ("paid", 800, 2)
    assert order.events[-1] == OrderPaid(order_id=OID, amount=800)


@pytest.mark.parametrize("amount", [799, 801, 0])
def test_pay_wrong_amount_is_a_rule_violation(
    products: dict[str, Product], stock: dict[str, StockItem], amount: int
) -> None:
    order = placed(products, stock)
    with pytest.raises(RuleViolation) as caught:
        order.pay(amount)
    assert (caught.value.slug, caught.value.loc) == ("amount-mismatch", ["body", "amount"])
    assert (order.status, order.paid_amount, order.version, len(order.events)) == (
        "placed",
        0,
        1,
        1,
    )


@pytest.mark.parametrize("status", ["paid", "shipped", "cancelled"])
def test_pay_unless_placed_is_a_conflict(status: str) -> None:
    order = Order(OID, "c", status, [OrderLine("A", "Apple", 1, 100)], 100, version=3)
    with pytest.raises(Conflict) as caught:
        order.pay(100)  # even the right amount: status is checked first (409 before 422)
    assert caught.value.slug == "invalid-status"
    assert (order.status, order.version, order.events) == (status, 3, [])


def test_ship_moves_reserved_out_of_on_hand(
    products: dict[str, Product], stock: dict[str, StockItem]
) -> None:
    order = placed(products, stock)
    order.pay(800)
    order.ship(stock)
    assert (order.status, order.version) == ("shipped", 3)
    assert order.events[-1] == OrderShipped(order_id=OID)
    assert (stock["A"].on_hand, stock["A"].reserved) == (7, 0)
    assert (stock["B"].on_hand, stock["B"].reserved) == (3, 3)
    assert stock["A"].events[-1] == StockShipped(
        sku="A", quantity=3, order_id=OID, on_hand=7, reserved=0
    )


@pytest.mark.parametrize("status", ["placed", "shipped", "cancelled"])
def test_ship_unless_paid_is_a_conflict(stock: dict[str, StockItem], status: str) -> None:
    order = Order(OID, "c", status, [OrderLine("A", "Apple", 1, 100)], 100, version=2)
    stock["A"].reserved = 1
    before = snapshot(stock)
    with pytest.raises(Conflict) as caught:
        order.ship(stock)
    assert caught.value.slug == "invalid-status"
    assert (order.status, order.version, order.events) == (status, 2, [])
    assert snapshot(stock) == before


def test_ship_checks_every_line_before_moving_any(stock: dict[str, StockItem]) -> None:
    lines = [OrderLine("A", "Apple", 1, 100), OrderLine("C", "Cherry", 1, 7)]
    order = Order(OID, "c", "paid", lines, 107, paid_amount=107, version=2)
    stock["A"].reserved = 1  # C holds no reservation: corrupted state must not half-ship
    before = snapshot(stock)
    with pytest.raises(Conflict) as caught:
        order.ship(stock)
    assert caught.value.slug == "insufficient-reserved"
    assert snapshot(stock) == before
    assert order.status == "paid"


@pytest.mark.parametrize(("pay", "refund"), [(False, 0), (True, 800)])
def test_cancel_releases_stock_and_refunds_amount_paid(
    products: dict[str, Product], stock: dict[str, StockItem], pay: bool, refund: int
) -> None:
    order = placed(products, stock)
    if pay:
        order.pay(800)
    previous = order.status
    order.cancel("changed my mind", stock)
    assert (order.status, order.refund, order.version) == ("cancelled", refund, 3 if pay else 2)
    assert order.events[-1] == OrderCancelled(
        order_id=OID,
        reason="changed my mind",
        refund=refund,
        previous_status=previous,
        lines=order.lines,
    )
    assert (stock["A"].on_hand, stock["A"].reserved) == (10, 0)
    assert (stock["B"].on_hand, stock["B"].reserved) == (5, 3)
    assert stock["B"].events[-1] == StockReleased(
        sku="B", quantity=2, order_id=OID, on_hand=5, reserved=3
    )


@pytest.mark.parametrize("status", ["shipped", "cancelled"])
def test_cancel_shipped_or_cancelled_is_a_conflict(
    stock: dict[str, StockItem], status: str
) -> None:
    order = Order(OID, "c", status, [OrderLine("A", "Apple", 1, 100)], 100, 100, version=4)
    before = snapshot(stock)
    with pytest.raises(Conflict) as caught:
        order.cancel(None, stock)
    assert caught.value.slug == "invalid-status"
    assert (order.status, order.refund, order.version, order.events) == (status, 0, 4, [])
    assert snapshot(stock) == before
