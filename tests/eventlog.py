"""Test helper: append contract events straight to ``write.event_log``.

Projection tests use this instead of the command API, so they exercise the projector
against exactly the rows a command would write (same contract, same columns) without
depending on the command side. :class:`Shop` generates a consistent stream of catalog,
stock and order events and keeps the state every read model should end up showing.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import psycopg

from shared_contracts.events import (
    Event,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ProductAdded,
    ProductUpdated,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
    encode_payload,
    event_type_of,
    schema_version_of,
    stream_of,
)
from shared_contracts.tokens import LogPoint

_INSERT = """
INSERT INTO write.event_log (event_id, stream_type, stream_id, stream_version, event_type,
                             schema_version, payload, metadata)
VALUES (%s, %s, %s,
        (SELECT coalesce(max(stream_version), 0) + 1 FROM write.event_log WHERE stream_id = %s),
        %s, %s, %s::jsonb, %s::jsonb)
RETURNING transaction_id::text::bigint, position
"""


def append(
    conn: psycopg.Connection[Any],
    events: Iterable[Event],
    *,
    actor: str = "test",
    correlation_id: str | None = None,
) -> LogPoint:
    """Append ``events`` in ``conn``'s transaction; the point of the last one (the token)."""
    point = LogPoint(0, 0)
    metadata = msgspec.json.encode(
        {"actor": actor, "correlation_id": correlation_id or str(uuid.uuid4())}
    ).decode()
    for event in events:
        stream_type, stream_id = stream_of(event)
        event_type = event_type_of(event)
        row = conn.execute(
            _INSERT,
            (
                str(uuid.uuid4()),
                stream_type,
                stream_id,
                stream_id,
                event_type,
                schema_version_of(event_type),
                encode_payload(event).decode(),
                metadata,
            ),
        ).fetchone()
        assert row is not None
        point = LogPoint(row[0], row[1])
    return point


def append_raw(
    conn: psycopg.Connection[Any],
    event_type: str,
    payload: str,
    stream_id: str,
    *,
    schema_version: int = 1,
) -> LogPoint:
    """Append one row with an arbitrary (possibly corrupt) payload."""
    row = conn.execute(
        _INSERT,
        (
            str(uuid.uuid4()),
            stream_id.split(":")[0],
            stream_id,
            stream_id,
            event_type,
            schema_version,
            payload,
            '{"actor": "test"}',
        ),
    ).fetchone()
    assert row is not None
    return LogPoint(row[0], row[1])


@dataclasses.dataclass
class Order:
    id: str
    customer: str
    lines: tuple[OrderLine, ...]
    status: str = "placed"

    @property
    def total(self) -> int:
        return sum(line.line_total for line in self.lines)


class Shop:
    """Generates consistent events and tracks the state the read models must show."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.products: dict[str, tuple[str, int]] = {}
        self.levels: dict[str, tuple[int, int]] = {}
        self.orders: dict[str, Order] = {}
        self.order_events = 0

    def add_product(self, sku: str, price: int = 250, stock: int = 100_000) -> list[Event]:
        name = f"Product {sku}"
        self.products[sku] = (name, price)
        self.levels[sku] = (stock, 0)
        return [
            ProductAdded(sku=sku, name=name, price=price),
            StockReceived(sku=sku, quantity=stock, reference=None, on_hand=stock, reserved=0),
        ]

    def rename(self, sku: str, name: str) -> list[Event]:
        self.products[sku] = (name, self.products[sku][1])
        return [ProductUpdated(sku=sku, name=name)]

    def place(self, customer: str = "c1", skus: Sequence[str] | None = None) -> list[Event]:
        chosen = list(skus) if skus else self.rng.sample(sorted(self.products), k=2)
        order_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        lines = tuple(
            OrderLine(
                sku=s,
                name=self.products[s][0],
                quantity=self.rng.randint(1, 5),
                unit_price=self.products[s][1],
            )
            for s in sorted(chosen)
        )
        order = Order(order_id, customer, lines)
        self.orders[order_id] = order
        events: list[Event] = []
        for line in lines:
            on_hand, reserved = self.levels[line.sku]
            self.levels[line.sku] = (on_hand, reserved + line.quantity)
            events.append(
                StockReserved(
                    sku=line.sku,
                    quantity=line.quantity,
                    order_id=order_id,
                    on_hand=on_hand,
                    reserved=reserved + line.quantity,
                )
            )
        self.order_events += 1
        events.append(
            OrderPlaced(order_id=order_id, customer_id=customer, lines=lines, total=order.total)
        )
        return events

    def pay(self, order_id: str) -> list[Event]:
        order = self.orders[order_id]
        order.status = "paid"
        self.order_events += 1
        return [OrderPaid(order_id=order_id, amount=order.total)]

    def ship(self, order_id: str) -> list[Event]:
        order = self.orders[order_id]
        order.status = "shipped"
        events: list[Event] = []
        for line in order.lines:
            on_hand, reserved = self.levels[line.sku]
            self.levels[line.sku] = (on_hand - line.quantity, reserved - line.quantity)
            events.append(
                StockShipped(
                    sku=line.sku,
                    quantity=line.quantity,
                    order_id=order_id,
                    on_hand=on_hand - line.quantity,
                    reserved=reserved - line.quantity,
                )
            )
        self.order_events += 1
        events.append(OrderShipped(order_id=order_id))
        return events

    def cancel(self, order_id: str) -> list[Event]:
        order = self.orders[order_id]
        previous = order.status
        order.status = "cancelled"
        events: list[Event] = []
        for line in order.lines:
            on_hand, reserved = self.levels[line.sku]
            self.levels[line.sku] = (on_hand, reserved - line.quantity)
            events.append(
                StockReleased(
                    sku=line.sku,
                    quantity=line.quantity,
                    order_id=order_id,
                    on_hand=on_hand,
                    reserved=reserved - line.quantity,
                )
            )
        self.order_events += 1
        refund = order.total if previous == "paid" else 0
        events.append(
            OrderCancelled(
                order_id=order_id,
                reason="test",
                refund=refund,
                previous_status=previous,
                lines=order.lines,
            )
        )
        return events

    def random_command(self) -> list[Event]:
        """One command's events: mostly new orders, some payments, shipments, cancels."""
        open_orders = [o for o in self.orders.values() if o.status in ("placed", "paid")]
        roll = self.rng.random()
        if not open_orders or roll < 0.5:
            return self.place(customer=f"c{self.rng.randint(1, 20)}")
        order = self.rng.choice(open_orders)
        if roll < 0.8:
            return self.pay(order.id) if order.status == "placed" else self.ship(order.id)
        return self.cancel(order.id)

    def expected_products(self) -> dict[str, tuple[str, int, int, int, int, int]]:
        """sku -> (name, price, on_hand, reserved, units_sold, revenue)."""
        sales = {sku: [0, 0] for sku in self.products}
        for order in self.orders.values():
            if order.status == "cancelled":
                continue
            for line in order.lines:
                sales[line.sku][0] += line.quantity
                sales[line.sku][1] += line.line_total
        return {
            sku: (name, price, *self.levels[sku], *sales[sku])
            for sku, (name, price) in self.products.items()
        }

    def expected_orders(self) -> dict[str, tuple[str, int]]:
        """order id -> (status, total)."""
        return {o.id: (o.status, o.total) for o in self.orders.values()}
