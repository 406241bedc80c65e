"""Random command sequences never break the stock invariants, and rejections change nothing.

A hypothesis state machine drives receive/adjust/place/pay/ship/cancel, valid or not, over
a few skus and checks after every step that ``0 <= reserved <= on_hand``, that each sku's
``reserved`` equals the quantities held by its placed or paid orders, and that ``on_hand``
equals what was received and adjusted minus what shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from command_side.domain.catalog import Product
from command_side.domain.errors import DomainError
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order, place_order

SKUS = ["A", "B", "C"]
# D is discontinued and ZZZ unknown: orders naming them must be rejected whole.
ORDERABLE = [*SKUS, "D", "ZZZ"]

quantities = st.integers(min_value=-2, max_value=12)
# Weighted towards valid lines so that many orders get placed, paid and shipped; the
# invalid ones (discontinued, unknown, zero, duplicate) still come up often enough.
order_lines = st.lists(
    st.tuples(
        st.sampled_from([*SKUS, *SKUS, *SKUS, "D", "ZZZ"]),
        st.sampled_from([1, 1, 2, 2, 3, 4, 6, 0]),
    ),
    max_size=3,
)


class StockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.products = {sku: Product(sku, f"Product {sku}", 100 + i) for i, sku in enumerate(SKUS)}
        self.products["D"] = Product("D", "Gone", 1, "discontinued")
        self.stock = {sku: StockItem(sku) for sku in [*SKUS, "D"]}
        self.orders: list[Order] = []
        # What on_hand must be: received + adjusted - shipped, counted outside the domain.
        self.expected_on_hand = dict.fromkeys(self.stock, 0)

    @initialize(stock=st.lists(st.integers(min_value=0, max_value=15), min_size=3, max_size=3))
    def stock_up(self, stock: list[int]) -> None:
        for sku, quantity in zip(SKUS, stock, strict=True):
            self.receive(sku, quantity)

    def snapshot(self) -> tuple[Any, ...]:
        items = tuple(
            (s.sku, s.on_hand, s.reserved, s.version, len(s.events)) for s in self.stock.values()
        )
        orders = tuple(
            (o.id, o.status, o.paid_amount, o.refund, o.version, len(o.events)) for o in self.orders
        )
        return items, orders

    def attempt(self, command: Callable[[], object]) -> bool:
        """Run ``command``; if the domain rejects it, nothing at all may have changed."""
        before = self.snapshot()
        try:
            command()
        except DomainError:
            assert self.snapshot() == before
            return False
        return True

    @rule(sku=st.sampled_from(SKUS), quantity=quantities)
    def receive(self, sku: str, quantity: int) -> None:
        if self.attempt(lambda: self.stock[sku].receive(quantity, None)):
            self.expected_on_hand[sku] += quantity

    @rule(sku=st.sampled_from(SKUS), delta=st.integers(min_value=-12, max_value=12))
    def adjust(self, sku: str, delta: int) -> None:
        item = self.stock[sku]
        allowed = delta != 0 and item.on_hand + delta >= item.reserved
        accepted = self.attempt(lambda: item.adjust(delta, "count"))
        assert accepted == allowed
        if accepted:
            self.expected_on_hand[sku] += delta

    @rule(requested=order_lines)
    def place(self, requested: list[tuple[str, int]]) -> None:
        order_id = f"order-{len(self.orders)}"

        def command() -> None:
            self.orders.append(place_order(order_id, "cust", requested, self.products, self.stock))

        if self.attempt(command):
            order = self.orders[-1]
            assert [(line.sku, line.quantity) for line in order.lines] == requested
            assert order.total == sum(line.line_total for line in order.lines)

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(min_value=0), off_by=st.sampled_from([0, 0, 0, 1, -1]))
    def pay(self, index: int, off_by: int) -> None:
        order = self.orders[index % len(self.orders)]
        allowed = order.status == "placed" and off_by == 0
        accepted = self.attempt(lambda: order.pay(order.total + off_by))
        assert accepted == allowed

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(min_value=0))
    def ship(self, index: int) -> None:
        order = self.orders[index % len(self.orders)]
        was_paid = order.status == "paid"
        accepted = self.attempt(lambda: order.ship(self.stock))
        assert accepted == was_paid
        if accepted:
            for line in order.lines:
                self.expected_on_hand[line.sku] -= line.quantity

    @precondition(lambda self: self.orders)
    @rule(index=st.integers(min_value=0))
    def cancel(self, index: int) -> None:
        order = self.orders[index % len(self.orders)]
        open_before = order.status in ("placed", "paid")
        paid = order.paid_amount
        accepted = self.attempt(lambda: order.cancel(None, self.stock))
        assert accepted == open_before
        if accepted:
            assert order.refund == paid

    @invariant()
    def levels_stay_in_bounds(self) -> None:
        for item in self.stock.values():
            assert 0 <= item.reserved <= item.on_hand

    @invariant()
    def reserved_matches_open_orders(self) -> None:
        held = dict.fromkeys(self.stock, 0)
        for order in self.orders:
            if order.status in ("placed", "paid"):
                for line in order.lines:
                    held[line.sku] += line.quantity
        assert {sku: item.reserved for sku, item in self.stock.items()} == held

    @invariant()
    def on_hand_matches_movements(self) -> None:
        assert {sku: item.on_hand for sku, item in self.stock.items()} == self.expected_on_hand

    @invariant()
    def one_version_per_event_and_events_carry_levels(self) -> None:
        for item in self.stock.values():
            assert item.version == len(item.events)
            if item.events:
                last = item.events[-1]
                assert (last.on_hand, last.reserved) == (item.on_hand, item.reserved)  # type: ignore[union-attr]
        for order in self.orders:
            assert order.version == len(order.events)


StockMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_stock_machine = StockMachine.TestCase
