"""One contract, two units of work: the in-memory fake must behave like PostgreSQL.

Every test runs against :class:`FakeUnitOfWork` and :class:`PostgresUnitOfWork` (on a real,
freshly migrated database), so a handler test that passes on the fake means the same on
the real storage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pytest

from command_side.domain.catalog import Product
from command_side.domain.errors import Conflict
from command_side.domain.orders import place_order
from command_side.postgres import PostgresUnitOfWork
from command_side.unit_of_work import EventMetadata, FakeUnitOfWork, UnitOfWork
from orderdesk.database import libpq_url
from shared_contracts.events import OrderPlaced, ProductAdded, StockReceived, StockReserved
from shared_contracts.tokens import LogPoint

META = EventMetadata(
    correlation_id="req-1", causation_id="cause-1", actor="alice", traceparent=None
)

Factory = Callable[[], contextlib.AbstractAsyncContextManager[UnitOfWork]]


@pytest.fixture(params=["fake", "postgres"])
def backend(request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """A function returning a fresh unit of work context (each one is one transaction)."""
    if request.param == "fake":
        store = FakeUnitOfWork.new_store()
        yield lambda: _fake(store)
    else:
        url = libpq_url(request.getfixturevalue("db_url"))
        yield lambda: _postgres(url)


@contextlib.asynccontextmanager
async def _fake(store: Any) -> AsyncIterator[UnitOfWork]:
    async with FakeUnitOfWork(store, META) as uow:
        yield uow


@contextlib.asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[UnitOfWork]:
    conn = await psycopg.AsyncConnection.connect(url)
    async with conn, PostgresUnitOfWork(conn, META) as uow:
        yield uow


def run(coro: Awaitable[Any]) -> Any:
    async def go() -> Any:
        return await coro

    return asyncio.run(go())


async def _add(new: Factory, sku: str, price: int = 100, units: int = 0) -> LogPoint | None:
    async with new() as uow:
        uow.add_product(Product.add(sku, f"name of {sku}", price))
        point = await uow.save()
    if units:
        async with new() as uow:
            item = await uow.get_stock_item(sku)
            assert item is not None
            item.receive(units)
            point = await uow.save()
    return point


def test_new_product_comes_with_empty_stock(backend: Factory) -> None:
    async def scenario() -> None:
        point = await _add(backend, "MUG", 450)
        async with backend() as uow:
            product = await uow.get_product("MUG")
            item = await uow.get_stock_item("MUG")
            assert await uow.get_product("NOPE") is None
            assert await uow.get_stock_item("NOPE") is None
            assert await uow.save() is None  # nothing changed, nothing appended
        assert product is not None and (product.name, product.price, product.version) == (
            "name of MUG",
            450,
            1,
        )
        assert item is not None and (item.on_hand, item.reserved, item.version) == (0, 0, 0)
        async with backend() as uow:
            (recorded,) = await uow.events_of("product:MUG")
            assert await uow.stream_head("product:MUG") == point == recorded.point
            assert await uow.stream_head("product:NOPE") is None
        assert recorded.event == ProductAdded(sku="MUG", name="name of MUG", price=450)
        assert (recorded.stream_version, recorded.metadata) == (1, META)

    run(scenario())


def test_points_grow_in_reading_order(backend: Factory) -> None:
    async def scenario() -> None:
        first = await _add(backend, "A", units=5)
        second = await _add(backend, "B", units=5)
        assert first is not None and second is not None and first < second

    run(scenario())


def test_an_exception_discards_everything(backend: Factory) -> None:
    async def scenario() -> None:
        await _add(backend, "MUG", units=3)
        with pytest.raises(RuntimeError):
            async with backend() as uow:
                item = await uow.get_stock_item("MUG")
                assert item is not None
                item.receive(7)
                await uow.save()
                raise RuntimeError("the command failed after saving")
        async with backend() as uow:
            item = await uow.get_stock_item("MUG")
            events = await uow.events_of("stock:MUG")
        assert item is not None and (item.on_hand, item.version) == (3, 1)
        assert [type(r.event) for r in events] == [StockReceived]

    run(scenario())


def test_duplicate_product_is_a_conflict(backend: Factory) -> None:
    async def scenario() -> None:
        await _add(backend, "MUG")
        with pytest.raises(Conflict) as caught:
            await _add(backend, "MUG")
        assert caught.value.slug == "product-exists"

    run(scenario())


def test_order_round_trip_with_all_its_events(backend: Factory) -> None:
    async def scenario() -> None:
        await _add(backend, "B", 200, units=5)
        await _add(backend, "A", 100, units=5)
        order_id = "6f1c1d1e-0000-4000-8000-000000000001"
        async with backend() as uow:
            products, stock = await uow.get_for_order(["B", "A", "GHOST"])
            assert list(stock) == ["A", "B"] and set(products) == {"A", "B"}
            order = place_order(order_id, "alice", [("B", 2), ("A", 1)], products, stock)
            uow.add_order(order)
            point = await uow.save()
        async with backend() as uow:
            loaded = await uow.get_order(order_id)
            assert await uow.get_order("6f1c1d1e-0000-4000-8000-00000000dead") is None
            placed = await uow.events_of(f"order:{order_id}")
            reserved = await uow.events_of("stock:A")
            _, stock = await uow.get_for_order(["A", "B"])
        assert loaded is not None
        assert (loaded.customer_id, loaded.status, loaded.total, loaded.version) == (
            "alice",
            "placed",
            500,
            1,
        )
        assert [(ln.sku, ln.quantity, ln.unit_price) for ln in loaded.lines] == [
            ("B", 2, 200),
            ("A", 1, 100),
        ]
        assert isinstance(placed[0].event, OrderPlaced) and placed[0].point == point
        assert isinstance(reserved[-1].event, StockReserved) and reserved[-1].stream_version == 2
        assert reserved[-1].point < point  # one transaction, the order's event last
        assert reserved[-1].point.transaction_id == point.transaction_id
        assert (stock["A"].reserved, stock["B"].reserved, stock["B"].version) == (1, 2, 2)

    run(scenario())


def test_order_changes_are_saved(backend: Factory) -> None:
    async def scenario() -> None:
        await _add(backend, "A", 100, units=5)
        order_id = "6f1c1d1e-0000-4000-8000-000000000002"
        async with backend() as uow:
            products, stock = await uow.get_for_order(["A"])
            uow.add_order(place_order(order_id, "bob", [("A", 2)], products, stock))
            await uow.save()
        async with backend() as uow:
            order = await uow.get_order(order_id)
            assert order is not None
            order.pay(200)
            _, stock = await uow.get_for_order(["A"])
            order.cancel("changed mind", stock)
            await uow.save()
        async with backend() as uow:
            order = await uow.get_order(order_id)
            _, stock = await uow.get_for_order(["A"])
        assert order is not None
        assert (order.status, order.paid_amount, order.refund, order.version) == (
            "cancelled",
            200,
            200,
            3,
        )
        assert (stock["A"].on_hand, stock["A"].reserved) == (5, 0)

    run(scenario())


@pytest.mark.parametrize("skus", [["A"], ["A", "B"]], ids=["one-line", "two-lines"])
def test_a_stale_stock_row_fails_the_whole_order(db_url: str, skus: list[str]) -> None:
    """The save's version guard: when a stock row is no longer at the version it was read
    at (here bumped behind the unit of work's back, in its own transaction), the save is a
    concurrent-modification conflict and nothing of the order is kept — also when the other
    line's row still matches (the multi-row form of the guarded update)."""
    url = libpq_url(db_url)

    def new() -> contextlib.AbstractAsyncContextManager[UnitOfWork]:
        return _postgres(url)

    async def scenario() -> None:
        for sku in skus:
            await _add(new, sku, 100, units=5)
        order_id = "6f1c1d1e-0000-4000-8000-000000000003"
        with pytest.raises(Conflict) as caught:
            async with new() as uow:
                products, stock = await uow.get_for_order(skus)
                assert isinstance(uow, PostgresUnitOfWork)
                await uow.conn.execute(
                    "UPDATE write.stock_items SET version = version + 1 WHERE sku = %s",
                    (skus[-1],),
                )
                order = place_order(order_id, "alice", [(s, 1) for s in skus], products, stock)
                uow.add_order(order)
                await uow.save()
        assert caught.value.slug == "concurrent-modification"
        async with new() as uow:
            assert await uow.get_order(order_id) is None
            _, stock = await uow.get_for_order(skus)
            assert await uow.events_of(f"order:{order_id}") == []
        assert [(stock[s].reserved, stock[s].version) for s in skus] == [(0, 1)] * len(skus)

    run(scenario())


@contextlib.asynccontextmanager
async def _optimistic(url: str) -> AsyncIterator[PostgresUnitOfWork]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with conn, PostgresUnitOfWork(conn, META, locking=False) as uow:
        yield uow


@pytest.mark.parametrize("skus", [["A"], ["A", "B"]], ids=["one-line", "two-lines"])
def test_an_optimistic_save_over_a_stale_read_writes_nothing(db_url: str, skus: list[str]) -> None:
    """The optimistic path reads without locks and saves in one self-checking statement:
    a stock row changed (and committed) by another command between the read and the save
    makes the save a RetryWithLocks, and nothing of the order exists afterwards. (An order
    of two lines would update two existing rows: it asks for the locking way already at
    the read.)"""
    from command_side.postgres import RetryWithLocks

    url = libpq_url(db_url)

    async def scenario() -> None:
        for sku in skus:
            await _add(lambda: _postgres(url), sku, 100, units=5)
        order_id = "6f1c1d1e-0000-4000-8000-000000000004"
        with pytest.raises(RetryWithLocks):
            async with _optimistic(url) as uow:
                products, stock = await uow.get_for_order(skus)
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as other:
                    await other.execute(
                        "UPDATE write.stock_items SET version = version + 1 WHERE sku = %s",
                        (skus[-1],),
                    )
                order = place_order(order_id, "alice", [(s, 1) for s in skus], products, stock)
                uow.add_order(order)
                await uow.save()
        async with _postgres(url) as uow:
            assert await uow.get_order(order_id) is None
            assert await uow.events_of(f"order:{order_id}") == []
            _, stock = await uow.get_for_order(skus)
        assert [stock[s].reserved for s in skus] == [0] * len(skus)

    run(scenario())


def test_optimistic_reads_take_no_locks_and_the_save_commits_at_once(db_url: str) -> None:
    url = libpq_url(db_url)

    async def scenario() -> None:
        await _add(lambda: _postgres(url), "A", 100, units=5)
        order_id = "6f1c1d1e-0000-4000-8000-000000000005"
        async with await psycopg.AsyncConnection.connect(url) as holder:
            # Another transaction holds the stock row's lock: a locking read would wait.
            await holder.execute("SELECT 1 FROM write.stock_items WHERE sku = 'A' FOR UPDATE")
            async with _optimistic(url) as uow:
                products, stock = await asyncio.wait_for(uow.get_for_order(["A"]), timeout=5)
            await holder.rollback()
        async with _optimistic(url) as uow:
            products, stock = await uow.get_for_order(["A"])
            uow.add_order(place_order(order_id, "alice", [("A", 2)], products, stock))
            await uow.save()
            # Still inside the block: the save is the commit, another connection sees it.
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as other:
                row = await (
                    await other.execute("SELECT reserved FROM write.stock_items WHERE sku = 'A'")
                ).fetchone()
        assert row == (2,)

    run(scenario())


def test_an_optimistic_unit_of_work_refuses_a_connection_in_transaction_mode(
    db_url: str,
) -> None:
    async def scenario() -> None:
        async with await psycopg.AsyncConnection.connect(libpq_url(db_url)) as conn:
            with pytest.raises(ValueError, match="autocommit"):
                PostgresUnitOfWork(conn, META, locking=False)

    run(scenario())


def test_one_process_s_optimistic_orders_on_one_row_take_turns_instead_of_retrying(
    db_url: str,
) -> None:
    """With a shared RowQueue, concurrent optimistic orders for one stock row read it one
    after the other, so every save matches: none needs the locking retry."""
    from command_side.row_queue import RowQueue

    url = libpq_url(db_url)
    rows = RowQueue()

    async def one(i: int) -> None:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        async with conn, PostgresUnitOfWork(conn, META, locking=False, rows=rows) as uow:
            products, stock = await uow.get_for_order(["A"])
            order_id = f"6f1c1d1e-0000-4000-8000-{i:012d}"
            uow.add_order(place_order(order_id, "alice", [("A", 1)], products, stock))
            await uow.save()

    async def scenario() -> tuple[int, int]:
        await _add(lambda: _postgres(url), "A", 100, units=50)
        await asyncio.gather(*(one(i) for i in range(10)))  # RetryWithLocks would fail it
        async with _postgres(url) as uow:
            item = await uow.get_stock_item("A")
        assert item is not None
        return item.reserved, len(rows)

    assert run(scenario()) == (10, 0)
