"""The single statement that saves a unit of work: every aggregate write and every event.

A data-modifying CTE per kind of write the command actually made, with one ``VALUES`` row
(or, for a single guarded update, a plain ``UPDATE … WHERE key = … AND version = …``) per
changed row. So a command's whole save is one statement and one round trip, and its text
depends only on the command's *shape* (how many rows of each kind): an order of one line
is always the same four-part text (stock update, order, line, events), prepared once per
connection by psycopg.

Why not one constant statement for every command fed by ``json_to_recordset`` (the
previous design)? Measured: PostgreSQL spent more on that statement than on the writes —
starting eight sub-statements for every command, parsing the JSON, and hash-joining the
record sets it could not size against the tables — about 3.5x the raw endpoint's CPU per
order. Scalar parameters are dumped by psycopg's C adapters; ``VALUES`` lists have a known
row count, so the guarded updates use the primary-key index.

The sub-statements see the same snapshot and touch different rows: a command never both
creates and updates one row. Foreign keys (stock → product, line → order) are checked at
the end of the statement, so parent and child rows may arrive together. Guarded updates
(``AND version = <loaded>``) report how many rows they changed, and the statement itself
checks the counts (``write.versions_matched``, migration 0003): when another command moved
one of the rows it raises SQLSTATE :data:`VERSION_GUARD` and nothing of it is written —
which is what lets the optimistic path run it with no transaction around it.

Rows a command decided from a snapshot (:mod:`command_side.sku_snapshots`) are also
*checked*: a ``SELECT`` of the row with every value the decision used (and its version)
must find it, or the statement raises the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from command_side.domain.catalog import Product
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order
from command_side.sku_snapshots import ProductRow, StockRow
from command_side.unit_of_work import Aggregate
from shared_contracts.events import (
    Event,
    encode_payload,
    event_type_of,
    schema_version_of,
    stream_of,
)

#: The SQLSTATE ``write.versions_matched`` raises when a guarded row was changed meanwhile.
VERSION_GUARD = "OD409"

#: One placeholder per column, each with its type: the server then needs no inference, and
#: psycopg's choice of int2/int4/int8 for a Python int cannot change a column's type.
_NEW_PRODUCT = "(%s::text, %s::text, %s::bigint, %s::text, %s::int)"
_PRODUCT = "(%s::text, %s::text, %s::bigint, %s::text, %s::int, %s::int)"
_STOCK = "(%s::text, %s::int, %s::int, %s::int, %s::int)"
_NEW_ORDER = "(%s::uuid, %s::text, %s::text, %s::bigint, %s::bigint, %s::bigint, %s::int)"
_LINE = "(%s::uuid, %s::smallint, %s::text, %s::text, %s::int, %s::bigint)"
_ORDER = "(%s::uuid, %s::text, %s::bigint, %s::bigint, %s::int, %s::int)"
#: Checked rows: every value a decision used, then the version.
_CHECKED_PRODUCT = (("sku", "text"), ("name", "text"), ("price", "bigint"), ("status", "text"))
_CHECKED_STOCK = (("sku", "text"), ("on_hand", "int"), ("reserved", "int"))
_EVENT = "(gen_random_uuid(), %s, %s, %s::int, %s, %s::smallint, %s::jsonb, %s::jsonb)"


def _rows(template: str, n: int) -> str:
    return ", ".join([template] * n)


def _checked(name: str, table: str, columns: tuple[tuple[str, str], ...], n: int) -> str:
    """A CTE with one row per ``n`` rows of ``table`` found with exactly these values."""
    columns = (*columns, ("version", "int"))
    if n == 1:
        matches = " AND ".join(f"{c} = %s::{t}" for c, t in columns)
        return f"{name} AS (SELECT 1 FROM write.{table} WHERE {matches})"
    row = "(" + ", ".join(f"%s::{t}" for _, t in columns) + ")"
    names = ", ".join(c for c, _ in columns)
    on = " AND ".join(f"t.{c} = r.{c}" for c, _ in columns)
    return (
        f"{name} AS (SELECT 1 FROM write.{table} AS t "
        f"JOIN (VALUES {_rows(row, n)}) AS r({names}) ON {on})"
    )


def _guarded_update(table: str, alias: str, key: str, columns: tuple[str, ...], n: int) -> str:
    """``UPDATE`` of ``n`` rows, each ``key, *columns, expected``, where the version matches."""
    template = {"products": _PRODUCT, "stock_items": _STOCK, "orders": _ORDER}[table]
    if n == 1:  # the common case: a direct primary-key lookup, no join
        key_type, *types, expected_type = template.strip("()").split(", ")
        sets = ", ".join(f"{c} = {t}" for c, t in zip(columns, types, strict=True))
        return (
            f"UPDATE write.{table} SET {sets} "
            f"WHERE {key} = {key_type} AND version = {expected_type} RETURNING 1"
        )
    sets = ", ".join(f"{c} = r.{c}" for c in columns)
    return (
        f"UPDATE write.{table} AS {alias} SET {sets} "
        f"FROM (VALUES {_rows(template, n)}) AS r({key}, {', '.join(columns)}, expected) "
        f"WHERE {alias}.{key} = r.{key} AND {alias}.version = r.expected RETURNING 1"
    )


_PRODUCT_COLUMNS = ("name", "price", "status", "version")
_STOCK_COLUMNS = ("on_hand", "reserved", "version")
_ORDER_COLUMNS = ("status", "paid_amount", "refund", "version")


@functools.lru_cache(maxsize=256)
def save_sql(
    checked_products: int,
    checked_stock: int,
    new_products: int,
    products: int,
    stock: int,
    new_orders: int,
    lines: int,
    orders: int,
    events: int,
) -> str:
    """The save statement for a command that writes that many rows of each kind.

    Its placeholders take, in order: checked products, checked stock, new products,
    changed products, stock, new orders, order lines, changed orders, events — see
    :func:`save_parameters` for each row's order (a single guarded update takes its columns
    first, then key and expected version).
    """
    parts: list[str] = []
    guards: list[str] = []
    for name, n, table, values in (
        ("checked_products", checked_products, "products", _CHECKED_PRODUCT),
        ("checked_stock", checked_stock, "stock_items", _CHECKED_STOCK),
    ):
        if n:
            parts.append(_checked(name, table, values, n))
            guards.append(f"(SELECT count(*) FROM {name}) = {n}")
    if new_products:
        parts.append(
            "new_products AS (INSERT INTO write.products (sku, name, price, status, version) "
            f"VALUES {_rows(_NEW_PRODUCT, new_products)} RETURNING sku)"
        )
        parts.append(
            "new_stock AS (INSERT INTO write.stock_items (sku, on_hand, reserved, version) "
            "SELECT sku, 0, 0, 0 FROM new_products)"
        )
    for name, n, table, alias, key, columns in (
        ("changed_products", products, "products", "p", "sku", _PRODUCT_COLUMNS),
        ("changed_stock", stock, "stock_items", "s", "sku", _STOCK_COLUMNS),
    ):
        if n:
            parts.append(f"{name} AS ({_guarded_update(table, alias, key, columns, n)})")
            guards.append(f"(SELECT count(*) FROM {name}) = {n}")
    if new_orders:
        parts.append(
            "new_orders AS (INSERT INTO write.orders "
            "(id, customer_id, status, total, paid_amount, refund, version) "
            f"VALUES {_rows(_NEW_ORDER, new_orders)})"
        )
    if lines:
        parts.append(
            "new_lines AS (INSERT INTO write.order_lines "
            "(order_id, line_no, sku, name, quantity, unit_price) "
            f"VALUES {_rows(_LINE, lines)})"
        )
    if orders:
        parts.append(
            f"changed_orders AS ({_guarded_update('orders', 'o', 'id', _ORDER_COLUMNS, orders)})"
        )
        guards.append(f"(SELECT count(*) FROM changed_orders) = {orders}")
    # Every row of a transaction has the same transaction_id, so (that id, the highest
    # position) is the point of the command's last event: its consistency token. The rows
    # of one VALUES list are inserted in order, so positions follow the recording order.
    # The events go in only once the guarded updates have run and matched: sub-statements
    # of one WITH run in no fixed order, and an event inserted before its row's update
    # would hold the stream's next version while the update waits for that row's lock,
    # which another command may hold while it waits to insert that same version.
    matched = " AND ".join(guards)
    parts.append(
        "appended AS (INSERT INTO write.event_log (event_id, stream_type, stream_id, "
        "stream_version, event_type, schema_version, payload, metadata) "
        + (
            f"SELECT * FROM (VALUES {_rows(_EVENT, events)}) AS e WHERE {matched}"
            if guards
            else f"VALUES {_rows(_EVENT, events)}"
        )
        + " RETURNING position)"
    )
    checked = f", write.versions_matched({matched})" if guards else ""
    return (
        "WITH "
        + ",\n".join(parts)
        + "\nSELECT pg_current_xact_id()::text::bigint, (SELECT max(position) FROM appended)"
        + checked
    )


def guarded_rows(changed: list[Aggregate], loaded: dict[int, int]) -> int:
    """How many existing rows the save of ``changed`` updates under a version guard."""
    return sum(1 for a in changed if isinstance(a, StockItem) or loaded[id(a)] != 0)


def save_parameters(
    changed: list[Aggregate],
    loaded: dict[int, int],
    events: list[tuple[Aggregate, int, Event]],
    metadata: bytes,
    *,
    checked: Sequence[tuple[str, ProductRow | StockRow]] = (),
) -> tuple[str, list[Any]]:
    """The save statement for the ``changed`` aggregates (``loaded`` maps ``id(aggregate)``
    to the version it was read at, 0 for new ones) and their ``events``, and its
    parameters. ``checked``: ``(sku, row)`` as the command's decision saw them (before any
    change), which must still hold exactly those values."""
    new_products: list[Any] = []
    products: list[Any] = []
    stock: list[Any] = []
    new_orders: list[Any] = []
    lines: list[Any] = []
    orders: list[Any] = []
    counts = [0] * 7
    checked_products: list[Any] = []
    checked_stock: list[Any] = []
    for sku, row in checked:
        if isinstance(row, ProductRow):
            checked_products += (sku, row.name, row.price, row.status, row.version)
        else:
            checked_stock += (sku, row.on_hand, row.reserved, row.version)
    for a in changed:
        expected = loaded[id(a)]
        if isinstance(a, Product):
            if expected == 0:
                new_products += (a.sku, a.name, a.price, a.status, a.version)
                counts[0] += 1
            else:
                products += (a.sku, a.name, a.price, a.status, a.version, expected)
                counts[1] += 1
        elif isinstance(a, StockItem):
            stock += (a.sku, a.on_hand, a.reserved, a.version, expected)
            counts[2] += 1
        elif isinstance(a, Order):
            if expected == 0:
                new_orders += (
                    a.id,
                    a.customer_id,
                    a.status,
                    a.total,
                    a.paid_amount,
                    a.refund,
                    a.version,
                )
                counts[3] += 1
                for n, line in enumerate(a.lines, 1):
                    lines += (a.id, n, line.sku, line.name, line.quantity, line.unit_price)
                counts[4] += len(a.lines)
            else:
                orders += (a.id, a.status, a.paid_amount, a.refund, a.version, expected)
                counts[5] += 1
    # A single guarded update is written key-last (``SET … WHERE key = … AND version = …``).
    if counts[1] == 1:
        products = products[1:5] + products[0:1] + products[5:]
    if counts[2] == 1:
        stock = stock[1:4] + stock[0:1] + stock[4:]
    if counts[5] == 1:
        orders = orders[1:5] + orders[0:1] + orders[5:]
    meta = metadata.decode()
    appended: list[Any] = []
    for _, version, event in events:
        stream_type, stream_id = stream_of(event)
        event_type = event_type_of(event)
        appended += (
            stream_type,
            stream_id,
            version,
            event_type,
            schema_version_of(event_type),
            encode_payload(event).decode(),
            meta,
        )
    counts[6] = len(events)
    params = checked_products + checked_stock + new_products + products + stock + new_orders
    params += lines + orders + appended
    n_products = sum(isinstance(row, ProductRow) for _, row in checked)
    return save_sql(n_products, len(checked) - n_products, *counts), params
