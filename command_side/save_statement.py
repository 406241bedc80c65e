"""The single statement that saves a unit of work: every aggregate write and every event.

One constant SQL text with a data-modifying CTE per kind of write; each takes its rows as
ONE json parameter (``json_to_recordset``), empty when the command has none of that kind.
So a command's whole save is one prepared statement and one round trip, whatever it
changed, and the client never builds SQL nor dumps arrays element by element (psycopg does
that in Python; msgspec encodes the JSON in C).

The sub-statements see the same snapshot and touch different rows: a command never both
creates and updates one row. Foreign keys (stock → product, line → order) are checked at
the end of the statement, so parent and child rows may arrive together. Guarded updates
(``AND version = <loaded>``) report how many rows they changed; the caller compares.
"""

from __future__ import annotations

from typing import Any

import msgspec

from command_side.domain.catalog import Product
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order
from command_side.unit_of_work import Aggregate
from shared_contracts.events import (
    Event,
    encode_payload,
    event_type_of,
    schema_version_of,
    stream_of,
)

SAVE = """
WITH new_products AS (
    INSERT INTO write.products (sku, name, price, status, version)
    SELECT r.sku, r.name, r.price, r.status, r.version
    FROM json_to_recordset(%(new_products)s::json)
         AS r(sku text, name text, price bigint, status text, version int)
), new_stock AS (
    INSERT INTO write.stock_items (sku, on_hand, reserved, version)
    SELECT r.sku, 0, 0, 0 FROM json_to_recordset(%(new_products)s::json) AS r(sku text)
), changed_products AS (
    UPDATE write.products AS p
    SET name = r.name, price = r.price, status = r.status, version = r.version
    FROM json_to_recordset(%(products)s::json)
         AS r(sku text, name text, price bigint, status text, version int, expected int)
    WHERE p.sku = r.sku AND p.version = r.expected
    RETURNING 1
), changed_stock AS (
    UPDATE write.stock_items AS s
    SET on_hand = r.on_hand, reserved = r.reserved, version = r.version
    FROM json_to_recordset(%(stock)s::json)
         AS r(sku text, on_hand int, reserved int, version int, expected int)
    WHERE s.sku = r.sku AND s.version = r.expected
    RETURNING 1
), new_orders AS (
    INSERT INTO write.orders (id, customer_id, status, total, paid_amount, refund, version)
    SELECT r.id, r.customer_id, r.status, r.total, r.paid_amount, r.refund, r.version
    FROM json_to_recordset(%(new_orders)s::json)
         AS r(id uuid, customer_id text, status text, total bigint, paid_amount bigint,
              refund bigint, version int)
), new_lines AS (
    INSERT INTO write.order_lines (order_id, line_no, sku, name, quantity, unit_price)
    SELECT r.order_id, r.line_no, r.sku, r.name, r.quantity, r.unit_price
    FROM json_to_recordset(%(new_lines)s::json)
         AS r(order_id uuid, line_no smallint, sku text, name text, quantity int,
              unit_price bigint)
), changed_orders AS (
    UPDATE write.orders AS o
    SET status = r.status, paid_amount = r.paid_amount, refund = r.refund, version = r.version
    FROM json_to_recordset(%(orders)s::json)
         AS r(id uuid, status text, paid_amount bigint, refund bigint, version int,
              expected int)
    WHERE o.id = r.id AND o.version = r.expected
    RETURNING 1
), appended AS (
    -- Every row of a transaction has the same transaction_id, so (that id, the highest
    -- position) is the point of the command's last event: its consistency token.
    INSERT INTO write.event_log
        (event_id, stream_type, stream_id, stream_version, event_type, schema_version,
         payload, metadata)
    SELECT gen_random_uuid(), e.stream_type, e.stream_id, e.stream_version, e.event_type,
           e.schema_version, e.payload, %(metadata)s::jsonb
    FROM json_to_recordset(%(events)s::json)
         AS e(n int, stream_type text, stream_id text, stream_version int, event_type text,
              schema_version smallint, payload jsonb)
    ORDER BY e.n
    RETURNING position
)
SELECT pg_current_xact_id()::text::bigint,
       (SELECT max(position) FROM appended),
       (SELECT count(*) FROM changed_products),
       (SELECT count(*) FROM changed_stock),
       (SELECT count(*) FROM changed_orders)
"""

_encoder = msgspec.json.Encoder()
_KINDS = ("new_products", "products", "stock", "new_orders", "new_lines", "orders", "events")


def save_parameters(
    changed: list[Aggregate],
    loaded: dict[int, int],
    events: list[tuple[Aggregate, int, Event]],
    metadata: bytes,
) -> tuple[dict[str, Any], tuple[int, int, int]]:
    """The parameters of :data:`SAVE` for the ``changed`` aggregates (``loaded`` maps
    ``id(aggregate)`` to the version it was read at, 0 for new ones) and their ``events``,
    and how many rows its guarded product, stock and order updates must report."""
    rows: dict[str, list[Any]] = {kind: [] for kind in _KINDS}
    for a in changed:
        expected = loaded[id(a)]
        if isinstance(a, Product):
            row = {"sku": a.sku, "name": a.name, "price": a.price, "status": a.status}
            row["version"] = a.version
            if expected == 0:
                rows["new_products"].append(row)
            else:
                rows["products"].append({**row, "expected": expected})
        elif isinstance(a, StockItem):
            rows["stock"].append(
                {
                    "sku": a.sku,
                    "on_hand": a.on_hand,
                    "reserved": a.reserved,
                    "version": a.version,
                    "expected": expected,
                }
            )
        elif isinstance(a, Order):
            if expected == 0:
                rows["new_orders"].append(
                    {
                        "id": a.id,
                        "customer_id": a.customer_id,
                        "status": a.status,
                        "total": a.total,
                        "paid_amount": a.paid_amount,
                        "refund": a.refund,
                        "version": a.version,
                    }
                )
                rows["new_lines"].extend(
                    {
                        "order_id": a.id,
                        "line_no": n,
                        "sku": line.sku,
                        "name": line.name,
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                    }
                    for n, line in enumerate(a.lines, 1)
                )
            else:
                rows["orders"].append(
                    {
                        "id": a.id,
                        "status": a.status,
                        "paid_amount": a.paid_amount,
                        "refund": a.refund,
                        "version": a.version,
                        "expected": expected,
                    }
                )
    for n, (_, version, event) in enumerate(events, 1):
        stream_type, stream_id = stream_of(event)
        event_type = event_type_of(event)
        rows["events"].append(
            {
                "n": n,
                "stream_type": stream_type,
                "stream_id": stream_id,
                "stream_version": version,
                "event_type": event_type,
                "schema_version": schema_version_of(event_type),
                # Already JSON: embedded as is, so the log stores an object, not a string.
                "payload": msgspec.Raw(encode_payload(event)),
            }
        )
    params: dict[str, Any] = {kind: _encoder.encode(r).decode() for kind, r in rows.items()}
    params["metadata"] = metadata.decode()
    return params, (len(rows["products"]), len(rows["stock"]), len(rows["orders"]))
