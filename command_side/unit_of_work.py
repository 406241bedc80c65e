"""The unit of work: how handlers load aggregates and save state + events as one change.

A unit of work is used as ``async with uow:``. Inside, a handler loads aggregates (every
``get_*`` locks what it returns until the block ends, so two commands on one aggregate run
one after the other), calls their behaviour, and ``await uow.save()`` writes the changed
aggregates and appends their pending events. Leaving the block normally commits; leaving it
by an exception discards everything, so a rejected command changes nothing.

:class:`FakeUnitOfWork` keeps everything in memory for unit tests; the same contract suite
(tests/integration/test_unit_of_work_contract.py) runs against it and
:class:`command_side.postgres.PostgresUnitOfWork` so the fake cannot drift from the real one.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Protocol, Self

from command_side.domain.catalog import Product
from command_side.domain.errors import Conflict
from command_side.domain.inventory import StockItem
from command_side.domain.orders import Order
from shared_contracts.events import Event, stream_of
from shared_contracts.tokens import LogPoint

Aggregate = Product | StockItem | Order


@dataclasses.dataclass(frozen=True, slots=True)
class EventMetadata:
    """What every event of one command records about its cause (DESIGN.md §2)."""

    correlation_id: str | None
    causation_id: str
    actor: str | None
    traceparent: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the log holds it."""

    point: LogPoint
    stream_id: str
    stream_version: int
    event: Event
    metadata: EventMetadata


class UnitOfWork(Protocol):
    """What handlers need from storage; see the module docstring for the lifecycle."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def get_product(self, sku: str) -> Product | None:
        """The product, locked; ``None`` when there is none."""
        ...

    async def get_stock_item(self, sku: str) -> StockItem | None:
        """The stock of a catalog sku, locked; ``None`` when the sku is not in the catalog."""
        ...

    async def get_for_order(
        self, skus: Sequence[str]
    ) -> tuple[dict[str, Product], dict[str, StockItem]]:
        """The products and stock items of ``skus`` that exist; the stock rows are locked in
        sku order, so concurrent orders naming the same skus never deadlock."""
        ...

    async def get_order(self, order_id: str) -> Order | None:
        """The order, locked; ``None`` when there is none."""
        ...

    def add_product(self, product: Product) -> None:
        """A new product; its (empty) stock item is created with it."""
        ...

    def add_order(self, order: Order) -> None:
        """A new order."""
        ...

    async def save(self) -> LogPoint | None:
        """Write every changed aggregate and append its events; the point of the last
        event appended, or ``None`` when no aggregate recorded one. May raise
        :class:`Conflict` when another command changed the same aggregate first."""
        ...

    async def stream_head(self, stream_id: str) -> LogPoint | None:
        """The point of the newest event of ``stream_id`` (for commands that change nothing)."""
        ...

    async def events_of(self, stream_id: str) -> list[RecordedEvent]:
        """The stream's events, oldest first (audits and tests)."""
        ...


def pending(aggregates: Iterable[Aggregate]) -> list[tuple[Aggregate, int, Event]]:
    """``(aggregate, stream_version, event)`` for every pending event, in recording order."""
    found: list[tuple[Aggregate, int, Event]] = []
    for aggregate in aggregates:
        first = aggregate.version - len(aggregate.events) + 1
        found.extend((aggregate, first + i, e) for i, e in enumerate(aggregate.events))
    return found


def concurrent_change(what: str) -> Conflict:
    """The conflict raised when another command changed ``what`` first."""
    return Conflict("concurrent-modification", f"{what} was changed by another request; retry")


@dataclasses.dataclass
class _Store:
    """The fake's "database": committed state, copied into each unit of work."""

    products: dict[str, Product] = dataclasses.field(default_factory=dict)
    stock: dict[str, StockItem] = dataclasses.field(default_factory=dict)
    orders: dict[str, Order] = dataclasses.field(default_factory=dict)
    log: list[RecordedEvent] = dataclasses.field(default_factory=list)
    transactions: itertools.count[int] = dataclasses.field(
        default_factory=lambda: itertools.count(1000)
    )


class FakeUnitOfWork:
    """An in-memory unit of work. Construct one per command over a shared ``store``."""

    def __init__(self, store: _Store | None = None, metadata: EventMetadata | None = None) -> None:
        self.store = store if store is not None else _Store()
        self.metadata = metadata or EventMetadata(None, "fake-causation", None)
        self.committed = False
        self._seen: list[Aggregate] = []
        self._loaded: dict[int, int] = {}
        self._staged: _Store | None = None

    @classmethod
    def new_store(cls) -> _Store:
        """An empty store that several units of work can share."""
        return _Store()

    async def __aenter__(self) -> Self:
        self._seen, self._loaded, self._staged = [], {}, None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self._staged is not None:
            self.store.products = self._staged.products
            self.store.stock = self._staged.stock
            self.store.orders = self._staged.orders
            self.store.log = self._staged.log
            self.committed = True
        self._staged = None

    def _track(self, aggregate: Aggregate | None) -> None:
        if aggregate is not None:
            self._seen.append(aggregate)
            self._loaded[id(aggregate)] = aggregate.version

    async def get_product(self, sku: str) -> Product | None:
        found = self.store.products.get(sku)
        product = copy.deepcopy(found) if found is not None else None
        self._track(product)
        return product

    async def get_stock_item(self, sku: str) -> StockItem | None:
        found = self.store.stock.get(sku)
        item = copy.deepcopy(found) if found is not None else None
        self._track(item)
        return item

    async def get_for_order(
        self, skus: Sequence[str]
    ) -> tuple[dict[str, Product], dict[str, StockItem]]:
        products: dict[str, Product] = {}
        stock: dict[str, StockItem] = {}
        for sku in sorted(set(skus)):
            if sku in self.store.products:
                products[sku] = copy.deepcopy(self.store.products[sku])
                stock[sku] = copy.deepcopy(self.store.stock[sku])
                self._track(stock[sku])
        return products, stock

    async def get_order(self, order_id: str) -> Order | None:
        found = self.store.orders.get(order_id)
        order = copy.deepcopy(found) if found is not None else None
        self._track(order)
        return order

    def add_product(self, product: Product) -> None:
        self._seen.append(product)
        self._loaded[id(product)] = 0

    def add_order(self, order: Order) -> None:
        self._seen.append(order)
        self._loaded[id(order)] = 0

    async def save(self) -> LogPoint | None:
        base = self._staged or self.store
        staged = _Store(
            dict(base.products),
            dict(base.stock),
            dict(base.orders),
            list(base.log),
            self.store.transactions,
        )
        changed = [a for a in self._seen if a.events]
        for aggregate in changed:
            self._stage(staged, aggregate)
        events = pending(changed)
        if not events:
            return None
        tx = next(self.store.transactions)
        position = len(staged.log)
        for _aggregate, version, event in events:
            position += 1
            staged.log.append(
                RecordedEvent(
                    LogPoint(tx, position), stream_of(event)[1], version, event, self.metadata
                )
            )
        for aggregate in changed:
            self._loaded[id(aggregate)] = aggregate.version
            aggregate.events.clear()
        self._staged = staged
        return staged.log[-1].point

    def _stage(self, staged: _Store, aggregate: Aggregate) -> None:
        loaded = self._loaded[id(aggregate)]
        if isinstance(aggregate, Product):
            table: dict[str, Product] | dict[str, StockItem] | dict[str, Order]
            table, key = staged.products, aggregate.sku
            if loaded == 0:
                if key in table:
                    raise Conflict("product-exists", f"product {key} already exists")
                staged.stock[key] = StockItem(key)
        elif isinstance(aggregate, StockItem):
            table, key = staged.stock, aggregate.sku
        else:
            table, key = staged.orders, aggregate.id
        current = table.get(key)
        if (current.version if current is not None else 0) != loaded:
            raise concurrent_change(key)
        stored = copy.deepcopy(aggregate)
        stored.events = []
        table[key] = stored  # type: ignore[assignment]

    async def stream_head(self, stream_id: str) -> LogPoint | None:
        log = (self._staged or self.store).log
        points = [r.point for r in log if r.stream_id == stream_id]
        return points[-1] if points else None

    async def events_of(self, stream_id: str) -> list[RecordedEvent]:
        log = (self._staged or self.store).log
        return [r for r in log if r.stream_id == stream_id]
