"""The unit of work on PostgreSQL (psycopg 3, asyncio): one atomic save per command.

Two ways to run a command, both ending in the same single save statement:

- **optimistic** (``locking=False``, the first attempt of a command without an
  Idempotency-Key): the reads take no locks and no transaction is opened, and the save
  statement commits by itself (autocommit): two round trips per command instead of four
  (BEGIN, read, save, COMMIT), and no row lock written for a read. Every guarded write
  carries ``AND version = <loaded>`` and the statement raises
  (:data:`command_side.save_statement.VERSION_GUARD`) when one found its row changed, so a
  stale read writes nothing and surfaces as :class:`RetryWithLocks`: the caller runs the
  command again, locking. A stream version taken meanwhile is a unique violation, likewise
  rolled back with the statement. Saves that would update more than one existing row go
  the locking way from the start (see :class:`RetryWithLocks`).
- **locking** (``locking=True``): one transaction; reads lock what they return
  (``FOR UPDATE``), so commands on one aggregate queue up rather than fail; stock rows of
  an order are locked in sku order, so orders naming the same skus in any order never
  deadlock and never oversell. The version guards and ``event_log``'s unique
  ``(stream_id, stream_version)`` stay as second and third guards.

An optimistic order of one line may decide from this process's snapshot of its sku's rows
(:mod:`command_side.sku_snapshots`) instead of reading them: one round trip instead of two.
The save then checks that both rows still hold every value the decision used, and a
command rejected on a snapshot is run again reading the database (:class:`ReadAgain`)
before the rejection is sent.

All writes of one command are ONE statement (:func:`command_side.save_statement.save_sql`,
one text per shape of command): the aggregate rows and every event, whose last position is
the consistency token's point. SQL texts are constant per shape, so psycopg prepares each
once per connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import msgspec
import psycopg
from psycopg import AsyncConnection, AsyncTransaction

from command_side.domain.catalog import Product
from command_side.domain.errors import Conflict, DomainError
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order
from command_side.row_queue import RowQueue
from command_side.save_statement import VERSION_GUARD, guarded_rows, save_parameters
from command_side.sku_snapshots import ProductRow, SkuSnapshot, SkuSnapshots, StockRow
from command_side.unit_of_work import (
    Aggregate,
    EventMetadata,
    RecordedEvent,
    concurrent_change,
    pending,
)
from orderdesk.problems import ProblemError
from shared_contracts.events import (
    OrderLine,
    decode_payload,
    event_type_of,
)
from shared_contracts.tokens import LogPoint

LOAD_PRODUCT = "SELECT name, price, status, version FROM write.products WHERE sku = %s FOR UPDATE"
LOAD_STOCK = "SELECT on_hand, reserved, version FROM write.stock_items WHERE sku = %s FOR UPDATE"
# An order of one line (most of them): a primary-key lookup of both rows. With ``ANY`` of
# an array of unknown size, the generic plan seq-scans and hash-joins both tables.
LOAD_FOR_ONE_SKU = """
SELECT p.sku, p.name, p.price, p.status, p.version, s.on_hand, s.reserved, s.version
FROM write.stock_items s JOIN write.products p ON p.sku = s.sku
WHERE s.sku = %s
FOR UPDATE OF s
"""
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
STREAM_HEAD = """
SELECT transaction_id::text::bigint, position FROM write.event_log
WHERE stream_id = %s ORDER BY stream_version DESC LIMIT 1
"""
STREAM_EVENTS = """
SELECT transaction_id::text::bigint, position, stream_version, event_type, schema_version,
       payload::text, metadata::text
FROM write.event_log WHERE stream_id = %s ORDER BY stream_version
"""


def _unlocked(sql: str) -> str:
    """``sql`` without its trailing ``FOR UPDATE [OF …]`` clause (the optimistic reads)."""
    head, found, _ = sql.rpartition("FOR UPDATE")
    assert found, sql
    return head.rstrip() + "\n"


_UNLOCKED = {
    sql: _unlocked(sql)
    for sql in (LOAD_PRODUCT, LOAD_STOCK, LOAD_FOR_ONE_SKU, LOAD_FOR_ORDER, LOAD_ORDER)
}

_metadata_encoder = msgspec.json.Encoder()


class RetryWithLocks(Exception):
    """An optimistic save wrote nothing; run the command again with a locking unit of work.

    Either a row it read was changed by another command meanwhile (a stale read), or the
    save would update more than one existing row: one statement updates rows in an order
    it does not control, and two such saves could deadlock, so those commands lock their
    rows in key order instead (the common commands update one row: an order of one line,
    a payment, a stock receipt, a product change).
    """


class ReadAgain(RetryWithLocks):
    """A command was rejected on a snapshot: run it again reading the database (no locks
    needed: a rejection there is final, and a save is guarded as always)."""


def _described(changed: list[Aggregate]) -> str:
    names = [a.id if isinstance(a, Order) else a.sku for a in changed]
    return ", ".join(names)


class PostgresUnitOfWork:
    """A unit of work on one pooled connection. Locking (the default), the transaction
    spans ``async with``; optimistic (``locking=False``, needs an autocommit connection),
    :meth:`save` is the commit. ``snapshots``: the process's sku snapshots, read by
    optimistic orders (unless ``fresh``) and kept current by every read and save. See the
    module docstring."""

    def __init__(
        self,
        conn: AsyncConnection[Any],
        metadata: EventMetadata,
        *,
        locking: bool = True,
        rows: RowQueue | None = None,
        snapshots: SkuSnapshots | None = None,
        fresh: bool = False,
    ) -> None:
        if not locking and not conn.autocommit:
            raise ValueError("an optimistic unit of work needs an autocommit connection")
        self.conn = conn
        self.metadata = metadata
        self.locking = locking
        #: Optimistic only: stock rows are read after this process's earlier commands on
        #: them have saved (:mod:`command_side.row_queue`); held until the block ends.
        self.rows = rows if not locking else None
        self.snapshots = snapshots
        #: Whether an optimistic read may be answered from a snapshot.
        self.from_snapshots = snapshots is not None and not locking and not fresh
        #: skus this unit of work decided from a snapshot, the rows as it saw them (which
        #: the save checks), and every sku whose snapshot it read or made (forgotten if
        #: the block fails: the save may have failed on a stale one).
        self._from_snapshot: list[str] = []
        self._checked: list[tuple[str, ProductRow | StockRow]] = []
        self._touched: list[str] = []
        #: Locking only: skus whose rows the save wrote, whose snapshots go once it ends.
        self._written: list[str] = []
        self._queued: list[str] = []
        self._tx: contextlib.AbstractAsyncContextManager[AsyncTransaction] | None = None
        self._seen: list[Aggregate] = []
        self._loaded: dict[int, int] = {}
        #: Event types appended in this transaction, for the caller to count once committed.
        self.appended: list[str] = []

    async def __aenter__(self) -> Self:
        self._seen, self._loaded, self.appended = [], {}, []
        self._from_snapshot, self._checked, self._touched, self._written = [], [], [], []
        if not self.locking:
            return self
        # Not in pipeline mode: measured, psycopg's async pipeline spends more CPU per
        # statement (one communicate step per queued command) than the BEGIN round trip
        # it would save; with the writes folded into one statement there is little to batch.
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
        ending = exc
        try:
            if tx is not None:
                await tx.__aexit__(exc_type, exc, tb)
        except BaseException as failed:  # the commit itself failed
            ending = failed
            raise
        finally:
            if self._queued:
                assert self.rows is not None
                queued, self._queued = self._queued, []
                self.rows.give_back(queued)
            if self.snapshots is not None:
                self._end_snapshots(ending)
        if (
            isinstance(exc, (DomainError, ProblemError))
            and self._from_snapshot
            and not self.appended  # never run again once a save has committed
        ):
            # Rejected on a snapshot (the handlers answer domain errors as problems): only
            # the database can confirm it.
            raise ReadAgain(f"rejected on a snapshot of {', '.join(self._from_snapshot)}")

    def _end_snapshots(self, exc: BaseException | None) -> None:
        assert self.snapshots is not None
        # Committed or not, what a locking save wrote is read afresh next time.
        self.snapshots.forget(self._written)
        if isinstance(exc, psycopg.OperationalError) and self.conn.broken:
            # The database went away (restart, failover): it may have lost commits that
            # the snapshots remember. (Not for a deadlock or a timeout: also operational
            # errors, but the connection is fine and nothing was lost.)
            self.snapshots.forget_all()
        elif exc is not None:
            self.snapshots.forget(self._touched)

    async def _queue_for(self, skus: Sequence[str]) -> None:
        """Wait for this process's earlier commands on these stock rows (optimistic only;
        once per unit of work, so keys are always taken together and in order)."""
        if self.rows is not None and not self._queued:
            self._queued = await self.rows.take(f"stock:{sku}" for sku in skus)

    def _sql(self, locked: str) -> str:
        return locked if self.locking else _UNLOCKED[locked]

    def _track(self, aggregate: Aggregate, loaded_version: int) -> None:
        self._seen.append(aggregate)
        self._loaded[id(aggregate)] = loaded_version

    async def get_product(self, sku: str) -> Product | None:
        cur = await self.conn.execute(self._sql(LOAD_PRODUCT), (sku,))
        row = await cur.fetchone()
        if row is None:
            return None
        product = Product(sku, row[0], row[1], row[2], row[3])
        self._track(product, product.version)
        return product

    async def get_stock_item(self, sku: str) -> StockItem | None:
        await self._queue_for([sku])
        cur = await self.conn.execute(self._sql(LOAD_STOCK), (sku,))
        row = await cur.fetchone()
        if row is None:
            return None
        item = StockItem(sku, row[0], row[1], row[2])
        self._track(item, item.version)
        return item

    async def get_for_order(
        self, skus: Sequence[str]
    ) -> tuple[dict[str, Product], dict[str, StockItem]]:
        if not self.locking and len(set(skus)) + len(self._seen) > 1:
            # The save would update more than one existing row (several stock rows, or an
            # order and its stock): such saves lock (RetryWithLocks), so skip this read.
            raise RetryWithLocks("more than one existing row to update")
        await self._queue_for(skus)
        snapshots = self.snapshots if not self.locking else None
        if snapshots is not None and self.from_snapshots and len(skus) == 1:
            found = snapshots.get(skus[0])
            if found is not None:
                return self._from(skus[0], found)
        if len(skus) == 1:
            cur = await self.conn.execute(self._sql(LOAD_FOR_ONE_SKU), (skus[0],))
        else:
            cur = await self.conn.execute(self._sql(LOAD_FOR_ORDER), (list(skus),))
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
            if snapshots is not None:
                self._touched.append(sku)
                snapshots.put(
                    sku,
                    SkuSnapshot(
                        ProductRow(name, price, status, p_version),
                        StockRow(on_hand, reserved, s_version),
                    ),
                )
        return products, stock

    def _from(
        self, sku: str, snapshot: SkuSnapshot
    ) -> tuple[dict[str, Product], dict[str, StockItem]]:
        """:meth:`get_for_order`'s answer from a snapshot; the save checks both rows."""
        p, s = snapshot.product, snapshot.stock
        item = StockItem(sku, s.on_hand, s.reserved, s.version)
        self._track(item, s.version)
        self._from_snapshot.append(sku)
        self._touched.append(sku)
        self._checked += ((sku, p), (sku, s))
        return {sku: Product(sku, p.name, p.price, p.status, p.version)}, {sku: item}

    async def get_order(self, order_id: str) -> Order | None:
        async with self.conn.pipeline() as pipeline:
            head = await self.conn.execute(self._sql(LOAD_ORDER), (order_id,))
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
        if not self.locking and guarded_rows(changed, self._loaded) > 1:
            raise RetryWithLocks("more than one existing row to update")
        sql, params = save_parameters(
            changed,
            self._loaded,
            events,
            _metadata_encoder.encode(self._metadata_dict()),
            checked=self._checked,
        )
        try:
            cur = await self.conn.execute(sql, params)
            row = await cur.fetchone()
        except psycopg.errors.UniqueViolation:
            # A new product collides on its key, its stock row's or its stream's version 1,
            # whichever the database checks first: all three mean "it exists already".
            if any(isinstance(a, Product) and self._loaded[id(a)] == 0 for a in changed):
                raise Conflict("product-exists", "the product already exists") from None
            if not self.locking:  # a stream version taken since the read: read again
                raise RetryWithLocks(_described(changed)) from None
            raise concurrent_change("the resource") from None
        except psycopg.DatabaseError as exc:
            if exc.sqlstate != VERSION_GUARD:
                raise
            if self.snapshots is not None and self._from_snapshot:
                # Another process writes these rows too: read them for a while.
                self.snapshots.forget(self._from_snapshot, contended=True)
            if not self.locking:
                raise RetryWithLocks(_described(changed)) from None
            raise concurrent_change(_described(changed)) from None
        assert row is not None
        self.appended.extend(event_type_of(e) for _, _, e in events)
        if self.snapshots is not None:
            self._keep_snapshots(changed)
        for aggregate in changed:
            self._loaded[id(aggregate)] = aggregate.version
            aggregate.events.clear()
        return LogPoint(int(row[0]), int(row[1]))

    def _keep_snapshots(self, changed: list[Aggregate]) -> None:
        """After a save: an optimistic one has committed, so its rows are the snapshots
        now; a locking one commits later (or not), so its skus are forgotten at the end."""
        assert self.snapshots is not None
        for a in changed:
            if isinstance(a, Order):
                continue
            if self.locking:
                self._written.append(a.sku)
            elif isinstance(a, StockItem):
                self.snapshots.saved(a.sku, stock=StockRow(a.on_hand, a.reserved, a.version))
            else:
                row = ProductRow(a.name, a.price, a.status, a.version)
                self.snapshots.saved(a.sku, product=row)

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
