"""``read.product_view``: catalog + stock levels + sales per sku.

A batch is folded in Python into one change per sku (last name/price/status, last absolute
stock levels, summed sales, number of events), then written with one UPDATE and one INSERT.
Stock events carry absolute levels, so only sales are deltas; the checkpoint written in the
same transaction is what makes those deltas exactly-once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import psycopg

from projections.model import Affected, Projection, Tables
from projections.reader import StoredEvent
from shared_contracts.events import (
    OrderCancelled,
    OrderPlaced,
    ProductAdded,
    ProductDiscontinued,
    ProductUpdated,
    StockAdjusted,
    StockReceived,
    StockReleased,
    StockReserved,
    StockShipped,
)

NAME = "product_view"
VERSION = 1

_STOCK = (StockReceived, StockAdjusted, StockReserved, StockReleased, StockShipped)
EVENT_TYPES = frozenset(
    cls.__name__
    for cls in (
        ProductAdded,
        ProductUpdated,
        ProductDiscontinued,
        OrderPlaced,
        OrderCancelled,
        *_STOCK,
    )
)


@dataclasses.dataclass(slots=True)
class _Change:
    name: str | None = None
    price: int | None = None
    status: str | None = None
    on_hand: int | None = None
    reserved: int | None = None
    units: int = 0
    revenue: int = 0
    events: int = 0
    at: str | None = None


def _fold(events: Sequence[StoredEvent]) -> dict[str, _Change]:
    changes: dict[str, _Change] = {}

    def touch(sku: str, at: str) -> _Change:
        change = changes.get(sku)
        if change is None:
            change = changes[sku] = _Change()
        change.events += 1
        change.at = at
        return change

    # Stock and order events first: they are nearly all of a busy log.
    for stored in events:
        event = stored.event()
        at = stored.recorded_at_text
        if isinstance(event, _STOCK):
            c = touch(event.sku, at)
            c.on_hand, c.reserved = event.on_hand, event.reserved
        elif isinstance(event, OrderPlaced | OrderCancelled):
            sign = 1 if isinstance(event, OrderPlaced) else -1
            for line in event.lines:
                c = touch(line.sku, at)
                c.units += sign * line.quantity
                c.revenue += sign * line.quantity * line.unit_price
        elif isinstance(event, ProductAdded):
            c = touch(event.sku, at)
            c.name, c.price, c.status = event.name, event.price, "active"
        elif isinstance(event, ProductUpdated):
            c = touch(event.sku, at)
            c.name = event.name if event.name is not None else c.name
            c.price = event.price if event.price is not None else c.price
        elif isinstance(event, ProductDiscontinued):
            touch(event.sku, at).status = "discontinued"
    return changes


def apply(cur: psycopg.Cursor[Any], events: Sequence[StoredEvent], tables: Tables) -> Affected:
    """Fold ``events`` per sku and upsert the rows: one UPDATE, then one INSERT for new skus."""
    changes = _fold(events)
    if not changes:
        return Affected()
    table = tables[NAME]
    skus = list(changes)
    cols = (
        skus,
        [changes[s].name for s in skus],
        [changes[s].price for s in skus],
        [changes[s].status for s in skus],
        [changes[s].on_hand for s in skus],
        [changes[s].reserved for s in skus],
        [changes[s].units for s in skus],
        [changes[s].revenue for s in skus],
        [changes[s].events for s in skus],
        [changes[s].at for s in skus],
    )
    unnest = (
        "unnest(%b::text[], %b::text[], %b::bigint[], %b::text[], %b::bigint[], %b::bigint[],"
        " %b::bigint[], %b::bigint[], %b::bigint[], %b::text[]::timestamptz[])"
        " AS u(sku, name, price, status, on_hand, reserved, units, revenue, n, at)"
    )
    cur.execute(
        f"UPDATE {table} AS p SET name = coalesce(u.name, p.name),"
        " price = coalesce(u.price, p.price), status = coalesce(u.status, p.status),"
        " on_hand = coalesce(u.on_hand, p.on_hand), reserved = coalesce(u.reserved, p.reserved),"
        " units_sold = p.units_sold + u.units, revenue = p.revenue + u.revenue,"
        " version = p.version + u.n, updated_at = u.at"
        f" FROM {unnest} WHERE p.sku = u.sku RETURNING p.sku",
        cols,
        prepare=False,  # planned for the table as it is (projections.model)
    )
    updated = {row[0] for row in cur.fetchall()}
    if len(updated) < len(skus):
        # Rows seen for the first time. A sku normally starts with ProductAdded; should a
        # stock or sales event ever come first, the row starts with placeholders that the
        # ProductAdded fills in, rather than losing the levels.
        cur.execute(
            "INSERT INTO "
            + table
            + " (sku, name, price, status, on_hand, reserved, units_sold, revenue, version,"
            " updated_at) SELECT u.sku, coalesce(u.name, ''), coalesce(u.price, 0),"
            " coalesce(u.status, 'active'), coalesce(u.on_hand, 0), coalesce(u.reserved, 0),"
            f" u.units, u.revenue, u.n, u.at FROM {unnest} WHERE NOT (u.sku = ANY(%b))",
            (*cols, list(updated)),
        )
    return Affected(skus=set(skus))


PROJECTION = Projection(NAME, VERSION, EVENT_TYPES, (NAME,), apply)
