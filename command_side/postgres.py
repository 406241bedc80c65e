"""The unit of work on PostgreSQL (psycopg 3, asyncio): one transaction per command.

Reads lock what they return (``FOR UPDATE``), so commands on one aggregate queue up rather
than fail; stock rows of an order are locked in sku order, so orders naming the same skus in
any order never deadlock and never oversell. Writes still carry ``AND version = <loaded>``
as a second guard, and ``event_log``'s unique ``(stream_id, stream_version)`` a third.

All writes of one command go out in one pipeline (one network round trip): the aggregate
rows, then every event in a single ``INSERT … SELECT FROM unnest(…)`` whose ``RETURNING``
gives the consistency token's point. SQL is constant text, so psycopg prepares each
statement once per connection after a few uses.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import msgspec
import psycopg
from psycopg import AsyncConnection, AsyncTransaction

from command_side.domain.catalog import Product
from command_side.domain.errors import Conflict
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order
from command_side.unit_of_work import (
    Aggregate,
    EventMetadata,
    RecordedEvent,
    concurrent_change,
    pending,
)
from shared_contracts.events import (
    OrderLine,
    decode_payload,
    encode_payload,
    event_type_of,
    schema_version_of,
    stream_of,
)
from shared_contracts.tokens import LogPoint

LOAD_PRODUCT = "SELECT name, price, status, version FROM write.products WHERE sku = %s FOR UPDATE"
LOAD_STOCK = "SELECT on_hand, reserved, version FROM write.stock_items WHERE sku = %s FOR UPDATE"
# The lock is taken row by row above the sort, i.e. in sku order: the anti-deadlock rule.
LOAD_FOR_ORDER = """
SELECT p.sku, p.name, p.price, p.status, p.version, s.on_hand, s.reserved, s.version
FROM write.stock_items s JOIN write.products p ON p.sku = s.sku
WHERE s.sku = ANY(%s::text[])
ORDER BY s.sku
FOR UPDATE OF s
"""
LOAD_ORDER = """
SELECT customer_id, status, total, paid_amount, refund, version
FROM write.orders WHERE id = %s FOR UPDATE
"""
LOAD_ORDER_LINES = """
SELECT sku, name, quantity, unit_price FROM write.order_lines
WHERE order_id = %s ORDER BY line_no
"""
INSERT_PRODUCT = """
INSERT INTO write.products (sku, name, price, status, version) VALUES (%s, %s, %s, %s, %s)
"""
INSERT_EMPTY_STOCK = """
INSERT INTO write.stock_items (sku, on_hand, reserved, version) VALUES (%s, 0, 0, 0)
"""
UPDATE_PRODUCT = """
UPDATE write.products SET name = %s, price = %s, status = %s, version = %s
WHERE sku = %s AND version = %s
"""
UPDATE_STOCK = """
UPDATE write.stock_items AS s
SET on_hand = u.on_hand, reserved = u.reserved, version = u.version
FROM unnest(%s::text[], %s::int[], %s::int[], %s::int[], %s::int[])
     AS u(sku, on_hand, reserved, version, expected)
WHERE s.sku = u.sku AND s.version = u.expected
"""
INSERT_ORDER = """
INSERT INTO write.orders (id, customer_id, status, total, paid_amount, refund, version)
VALUES (%s, %s, %s, %s, %s, %s, %s)
"""
INSERT_ORDER_LINES = """
INSERT INTO write.order_lines (order_id, line_no, sku, name, quantity, unit_price)
SELECT %s, u.n, u.sku, u.name, u.quantity, u.unit_price
FROM unnest(%s::text[], %s::text[], %s::int[], %s::bigint[])
     WITH ORDINALITY AS u(sku, name, quantity, unit_price, n)
"""
UPDATE_ORDER = """
UPDATE write.orders SET status = %s, paid_amount = %s, refund = %s, version = %s
WHERE id = %s AND version = %s
"""
# One statement for all events of the command. Every row of a transaction has the same
# transaction_id, so (that id, the highest position) is the point of the last event.
APPEND_EVENTS = """
WITH appended AS (
    INSERT INTO write.event_log
        (event_id, stream_type, stream_id, stream_version, event_type, schema_version,
         payload, metadata)
    SELECT e.event_id::uuid, e.stream_type, e.stream_id, e.stream_version, e.event_type,
           e.schema_version, e.payload::jsonb, %s::jsonb
    FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::text[], %s::smallint[],
                %s::text[]) WITH ORDINALITY
         AS e(event_id, stream_type, stream_id, stream_version, event_type, schema_version,
              payload, n)
    ORDER BY e.n
    RETURNING position
)
SELECT pg_current_xact_id()::text::bigint, max(position) FROM appended
"""
STREAM_HEAD = """
SELECT transaction_id::text::bigint, position FROM write.event_log
WHERE stream_id = %s ORDER BY stream_version DESC LIMIT 1
"""
STREAM_EVENTS = """
SELECT transaction_id::text::bigint, position, stream_version, event_type, schema_version,
       payload::text, metadata::text
FROM write.event_log WHERE stream_id = %s ORDER BY stream_version
"""

_metadata_encoder = msgspec.json.Encoder()
# A write whose rowcount proves the version guard held: (cursor, rows expected, what).
_Check = tuple[psycopg.AsyncCursor[Any], int, str]


class PostgresUnitOfWork:
    """A unit of work on one pooled connection; the transaction spans ``async with``."""

    def __init__(self, conn: AsyncConnection[Any], metadata: EventMetadata) -> None:
        self.conn = conn
        self.metadata = metadata
        self._tx: contextlib.AbstractAsyncContextManager[AsyncTransaction] | None = None
        self._seen: list[Aggregate] = []
        self._loaded: dict[int, int] = {}

    async def __aenter__(self) -> Self:
        self._seen, self._loaded = [], {}
        tx = self.conn.transaction()
        await tx.__aenter__()
        self._tx = tx
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx, self._tx = self._tx, None
        if tx is not None:
            await tx.__aexit__(exc_type, exc, tb)

    def _track(self, aggregate: Aggregate, loaded_version: int) -> None:
        self._seen.append(aggregate)
        self._loaded[id(aggregate)] = loaded_version

    async def get_product(self, sku: str) -> Product | None:
        cur = await self.conn.execute(LOAD_PRODUCT, (sku,))
        row = await cur.fetchone()
        if row is None:
            return None
        product = Product(sku, row[0], row[1], row[2], row[3])
        self._track(product, product.version)
        return product

    async def get_stock_item(self, sku: str) -> StockItem | None:
        cur = await self.conn.execute(LOAD_STOCK, (sku,))
        row = await cur.fetchone()
        if row is None:
            return None
        item = StockItem(sku, row[0], row[1], row[2])
        self._track(item, item.version)
        return item

    async def get_for_order(
        self, skus: Sequence[str]
    ) -> tuple[dict[str, Product], dict[str, StockItem]]:
        cur = await self.conn.execute(LOAD_FOR_ORDER, (list(skus),))
        products: dict[str, Product] = {}
        stock: dict[str, StockItem] = {}
        for (
            sku,
            name,
            price,
            status,
            p_version,
            on_hand,
            reserved,
            s_version,
        ) in await cur.fetchall():
            products[sku] = Product(sku, name, price, status, p_version)
            item = stock[sku] = StockItem(sku, on_hand, reserved, s_version)
            self._track(item, s_version)
        return products, stock

    async def get_order(self, order_id: str) -> Order | None:
        async with self.conn.pipeline() as pipeline:
            head = await self.conn.execute(LOAD_ORDER, (order_id,))
            lines = await self.conn.execute(LOAD_ORDER_LINES, (order_id,))
            await pipeline.sync()
            row = await head.fetchone()
            line_rows = await lines.fetchall()
        if row is None:
            return None
        order = Order(
            order_id,
            row[0],
            row[1],
            [OrderLine(sku=s, name=n, quantity=q, unit_price=p) for s, n, q, p in line_rows],
            total=row[2],
            paid_amount=row[3],
            refund=row[4],
            version=row[5],
        )
        self._track(order, order.version)
        return order

    def add_product(self, product: Product) -> None:
        self._track(product, 0)

    def add_order(self, order: Order) -> None:
        self._track(order, 0)

    async def save(self) -> LogPoint | None:
        changed = [a for a in self._seen if a.events]
        events = pending(changed)
        if not events:
            return None
        checks: list[_Check] = []
        stock = [a for a in changed if isinstance(a, StockItem)]
        try:
            async with self.conn.pipeline() as pipeline:
                for aggregate in changed:
                    check = await self._write(aggregate)
                    if check is not None:
                        checks.append(check)
                if stock:
                    cur = await self.conn.execute(
                        UPDATE_STOCK,
                        (
                            [s.sku for s in stock],
                            [s.on_hand for s in stock],
                            [s.reserved for s in stock],
                            [s.version for s in stock],
                            [self._loaded[id(s)] for s in stock],
                        ),
                    )
                    checks.append((cur, len(stock), "stock of " + ", ".join(s.sku for s in stock)))
                appended = await self.conn.execute(
                    APPEND_EVENTS,
                    (
                        _metadata_encoder.encode(self._metadata_dict()).decode(),
                        [str(uuid.uuid4()) for _ in events],
                        [stream_of(e)[0] for _, _, e in events],
                        [stream_of(e)[1] for _, _, e in events],
                        [v for _, v, _ in events],
                        [event_type_of(e) for _, _, e in events],
                        [schema_version_of(event_type_of(e)) for _, _, e in events],
                        [encode_payload(e).decode() for _, _, e in events],
                    ),
                )
                await pipeline.sync()
                row = await appended.fetchone()
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "products_pkey":
                raise Conflict("product-exists", "the product already exists") from None
            raise concurrent_change("the resource") from None
        for cur, expected, what in checks:
            if cur.rowcount != expected:
                raise concurrent_change(what)
        for aggregate in changed:
            self._loaded[id(aggregate)] = aggregate.version
            aggregate.events.clear()
        assert row is not None
        return LogPoint(int(row[0]), int(row[1]))

    async def _write(self, aggregate: Aggregate) -> _Check | None:
        loaded = self._loaded[id(aggregate)]
        if isinstance(aggregate, Product):
            if loaded == 0:
                await self.conn.execute(
                    INSERT_PRODUCT,
                    (
                        aggregate.sku,
                        aggregate.name,
                        aggregate.price,
                        aggregate.status,
                        aggregate.version,
                    ),
                )
                await self.conn.execute(INSERT_EMPTY_STOCK, (aggregate.sku,))
                return None
            cur = await self.conn.execute(
                UPDATE_PRODUCT,
                (
                    aggregate.name,
                    aggregate.price,
                    aggregate.status,
                    aggregate.version,
                    aggregate.sku,
                    loaded,
                ),
            )
            return cur, 1, f"product {aggregate.sku}"
        if isinstance(aggregate, Order):
            if loaded == 0:
                await self.conn.execute(
                    INSERT_ORDER,
                    (
                        aggregate.id,
                        aggregate.customer_id,
                        aggregate.status,
                        aggregate.total,
                        aggregate.paid_amount,
                        aggregate.refund,
                        aggregate.version,
                    ),
                )
                lines = aggregate.lines
                await self.conn.execute(
                    INSERT_ORDER_LINES,
                    (
                        aggregate.id,
                        [ln.sku for ln in lines],
                        [ln.name for ln in lines],
                        [ln.quantity for ln in lines],
                        [ln.unit_price for ln in lines],
                    ),
                )
                return None
            cur = await self.conn.execute(
                UPDATE_ORDER,
                (
                    aggregate.status,
                    aggregate.paid_amount,
                    aggregate.refund,
                    aggregate.version,
                    aggregate.id,
                    loaded,
                ),
            )
            return cur, 1, f"order {aggregate.id}"
        return None  # stock items are written together, in one statement

    def _metadata_dict(self) -> dict[str, str | None]:
        m = self.metadata
        return {
            "correlation_id": m.correlation_id,
            "causation_id": m.causation_id,
            "actor": m.actor,
            "traceparent": m.traceparent,
        }

    async def stream_head(self, stream_id: str) -> LogPoint | None:
        cur = await self.conn.execute(STREAM_HEAD, (stream_id,))
        row = await cur.fetchone()
        return LogPoint(int(row[0]), int(row[1])) if row is not None else None

    async def events_of(self, stream_id: str) -> list[RecordedEvent]:
        cur = await self.conn.execute(STREAM_EVENTS, (stream_id,))
        found = []
        for (
            tx,
            position,
            version,
            event_type,
            schema_version,
            payload,
            meta,
        ) in await cur.fetchall():
            data = msgspec.json.decode(meta)
            found.append(
                RecordedEvent(
                    LogPoint(int(tx), int(position)),
                    stream_id,
                    version,
                    decode_payload(event_type, schema_version, payload),
                    EventMetadata(
                        data.get("correlation_id"),
                        data.get("causation_id", ""),
                        data.get("actor"),
                        data.get("traceparent"),
                    ),
                )
            )
        return found
