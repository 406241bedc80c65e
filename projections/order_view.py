"""``read.order_view``: one row per order with its lines as placed, status and timestamps.

Per batch: one INSERT for the orders placed in it, then one UPDATE carrying each order's
folded later state (paid / shipped / cancelled). ``version`` is the order aggregate's
version, i.e. the ``stream_version`` of the last order event applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg

from projections.model import Affected, Projection, Tables
from projections.new_rows import insert_new
from projections.reader import StoredEvent
from projections.recordset import recordset, rows_json
from shared_contracts.events import OrderCancelled, OrderPaid, OrderPlaced, OrderShipped

NAME = "order_view"
VERSION = 1
EVENT_TYPES = frozenset(c.__name__ for c in (OrderPlaced, OrderPaid, OrderShipped, OrderCancelled))

_encoder = msgspec.json.Encoder()

#: The columns of an inserted order row and their SQL types (see projections.new_rows).
_PLACED = {
    "order_id": "uuid",
    "customer_id": "text",
    "lines": "jsonb",
    "total": "bigint",
    "placed_at": "timestamptz",
    "version": "bigint",
    "status": "text",
    "paid_amount": "bigint",
    "paid_at": "timestamptz",
    "shipped_at": "timestamptz",
    "refund": "bigint",
    "cancel_reason": "text",
    "cancelled_at": "timestamptz",
}
#: The keys of an order's folded later state (see projections.recordset).
_LATER = {"id": "uuid"} | {
    key: _PLACED[key]
    for key in (
        "status",
        "paid_amount",
        "paid_at",
        "shipped_at",
        "refund",
        "cancel_reason",
        "cancelled_at",
        "version",
    )
}


@dataclasses.dataclass(slots=True)
class _Later:
    status: str | None = None
    paid_amount: int | None = None
    paid_at: str | None = None
    shipped_at: str | None = None
    refund: int | None = None
    cancel_reason: str | None = None
    cancelled_at: str | None = None
    version: int = 0


def _lines_json(event: OrderPlaced) -> bytes:
    return _encoder.encode(
        [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "line_total": line.quantity * line.unit_price,
            }
            for line in event.lines
        ]
    )


def apply(cur: psycopg.Cursor[Any], events: Sequence[StoredEvent], tables: Tables) -> Affected:
    """Insert placed orders, then fold and apply each order's later events in one UPDATE."""
    table = tables[NAME]
    placed: list[tuple[OrderPlaced, StoredEvent]] = []
    later: dict[str, _Later] = {}
    for stored in events:
        event = stored.event()
        if isinstance(event, OrderPlaced):
            placed.append((event, stored))
            continue
        if not isinstance(event, OrderPaid | OrderShipped | OrderCancelled):
            continue
        change = later.setdefault(event.order_id, _Later())
        change.version = stored.stream_version
        if isinstance(event, OrderPaid):
            change.status, change.paid_amount, change.paid_at = (
                "paid",
                event.amount,
                stored.recorded_at_text,
            )
        elif isinstance(event, OrderShipped):
            change.status, change.shipped_at = "shipped", stored.recorded_at_text
        elif isinstance(event, OrderCancelled):
            change.status, change.refund = "cancelled", event.refund
            change.cancel_reason, change.cancelled_at = event.reason, stored.recorded_at_text
    if placed:
        # An order placed in this batch is written ONCE with its folded later state (in a
        # catch-up OrderPlaced and OrderPaid usually share a batch): inserting it and then
        # updating it would write every row twice and leave a dead tuple per order.
        rows = []
        for event, stored in placed:
            change = later.get(event.order_id) or _Later()
            rows.append(
                (
                    event.order_id,
                    event.customer_id,
                    msgspec.Raw(_lines_json(event)),
                    event.total,
                    stored.recorded_at_text,
                    max(stored.stream_version, change.version),
                    change.status or "placed",
                    change.paid_amount or 0,
                    change.paid_at,
                    change.shipped_at,
                    change.refund or 0,
                    change.cancel_reason,
                    change.cancelled_at,
                )
            )
        inserted = insert_new(cur, table, _PLACED, rows, bulk_load=tables.bulk_load, returning=True)
        # Rows that already existed (a replayed OrderPlaced) get their later state from the
        # UPDATE below, exactly as before; the inserted ones are complete.
        for order_id in inserted:
            later.pop(order_id, None)
    changed = set(later)
    if later:
        updates = [
            {
                "id": order_id,
                "status": c.status,
                "paid_amount": c.paid_amount,
                "paid_at": c.paid_at,
                "shipped_at": c.shipped_at,
                "refund": c.refund,
                "cancel_reason": c.cancel_reason,
                "cancelled_at": c.cancelled_at,
                "version": c.version,
            }
            for order_id, c in later.items()
        ]
        cur.execute(
            f"UPDATE {table} AS o SET status = u.status,"
            " paid_amount = coalesce(u.paid_amount, o.paid_amount),"
            " paid_at = coalesce(u.paid_at, o.paid_at),"
            " shipped_at = coalesce(u.shipped_at, o.shipped_at),"
            " refund = coalesce(u.refund, o.refund),"
            " cancel_reason = coalesce(u.cancel_reason, o.cancel_reason),"
            " cancelled_at = coalesce(u.cancelled_at, o.cancelled_at),"
            " version = greatest(o.version, u.version)"
            f" FROM {recordset('u', _LATER)} WHERE o.order_id = u.id"
            # The keys once more, as an array: the planner counts an array's elements but
            # guesses a JSON document's rows (100), which on a table of some ten thousand
            # orders made it scan the table rather than look up a few keys.
            " AND o.order_id = ANY(%s::uuid[]) RETURNING o.order_id::text",
            (rows_json(updates), list(later)),
            prepare=False,  # planned for the table as it is (projections.model)
        )
        found = {row[0] for row in cur.fetchall()}
        missing = [i for i in later if i not in found]
        if missing:
            # An order event before its OrderPlaced cannot be shown; fail loudly (the
            # projection stalls with this error) rather than drop the change.
            raise LookupError(f"order event for an order never placed: {missing[0]}")
    return Affected(order_ids={e.order_id for e, _ in placed} | changed)


PROJECTION = Projection(NAME, VERSION, EVENT_TYPES, (NAME,), apply)
