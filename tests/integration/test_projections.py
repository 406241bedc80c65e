"""The read models: every view matches the events, in one database or two."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec
import pytest
import redis

from orderdesk.cache import unpack
from orderdesk.database import connect
from orderdesk.settings import Settings
from projections.registry import PROJECTIONS
from projections.runner import catch_up, lock_key, run_batch
from projections.sweep import catch_up_all, sweep_batch
from shared_contracts.views import (
    TOP_PRODUCTS_BY_REVENUE,
    TOP_PRODUCTS_BY_UNITS,
    OrderView,
    ProductView,
    order_cache_key,
    product_cache_key,
)
from tests.eventlog import Shop, append


def project_all(settings: Settings, batch_size: int = 7) -> None:
    """Catch every projection up, in small batches so batch boundaries are exercised."""
    assert settings.database_url and settings.effective_read_database_url
    client = redis.Redis.from_url(settings.redis_url or "")
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.effective_read_database_url, autocommit=True) as read,
    ):
        for projection in PROJECTIONS.values():
            result = catch_up(
                projection,
                write,
                read,
                batch_size=batch_size,
                max_retries=0,
                redis=client,
                max_seconds=60,
            )
            assert result.outcome in ("applied", "idle") and result.caught_up, result
    client.close()


def fill(settings: Settings, shop: Shop, commands: int) -> None:
    assert settings.database_url
    with connect(settings.database_url, autocommit=True) as conn:
        if not shop.products:
            for i in range(5):
                append(conn, shop.add_product(f"SKU-{i}", price=100 + i))
        for _ in range(commands):
            with conn.transaction():
                append(conn, shop.random_command())


def read_products(settings: Settings) -> dict[str, tuple[Any, ...]]:
    assert settings.effective_read_database_url
    with connect(settings.effective_read_database_url) as conn:
        rows = conn.execute(
            "SELECT sku, name, price, on_hand, reserved, units_sold, revenue FROM read.product_view"
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def check_views(settings: Settings, shop: Shop) -> None:
    assert settings.effective_read_database_url
    assert read_products(settings) == shop.expected_products()
    with connect(settings.effective_read_database_url) as conn:
        orders = conn.execute(
            "SELECT order_id::text, status, total FROM read.order_view"
        ).fetchall()
        assert {r[0]: (r[1], r[2]) for r in orders} == shop.expected_orders()
        history = conn.execute("SELECT count(*) FROM read.order_history").fetchone()
        assert history == (shop.order_events,)
        sales = conn.execute(
            "SELECT sum(orders), sum(cancelled), sum(revenue) FROM read.daily_sales"
        ).fetchone()
        cancelled = sum(1 for o in shop.orders.values() if o.status == "cancelled")
        gross = sum(o.total for o in shop.orders.values())
        assert sales == (len(shop.orders), cancelled, gross)


@pytest.mark.parametrize("separate_read_db", [False, True], ids=["one-db", "two-dbs"])
def test_views_match_the_events(
    settings: Settings, second_db_url: str, separate_read_db: bool
) -> None:
    if separate_read_db:
        settings = dataclasses.replace(settings, read_database_url=second_db_url)
    shop = Shop(seed=7)
    fill(settings, shop, 60)
    project_all(settings)
    check_views(settings, shop)
    # More events on top of existing rows, then catch up again.
    fill(settings, shop, 40)
    project_all(settings)
    check_views(settings, shop)
    if separate_read_db:
        with connect(settings.database_url or "") as conn:
            assert conn.execute("SELECT count(*) FROM read.order_view").fetchone() == (0,)


def test_order_view_history_and_daily_sales_details(settings: Settings) -> None:
    shop = Shop()
    assert settings.database_url
    with connect(settings.database_url, autocommit=True) as conn:
        append(conn, shop.add_product("A", price=300))
        append(conn, shop.add_product("B", price=50))
        placed = shop.place("alice", ["A", "B"])
        append(conn, placed, actor="alice", correlation_id="req-1")
        order_id = placed[-1].order_id  # type: ignore[union-attr]
        append(conn, shop.pay(order_id), actor="alice", correlation_id="req-2")
        append(conn, shop.cancel(order_id), actor="staff-1", correlation_id="req-3")
        events = conn.execute(
            "SELECT recorded_at FROM write.event_log WHERE stream_id = %s ORDER BY stream_version",
            (f"order:{order_id}",),
        ).fetchall()
    project_all(settings)
    with connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT status, paid_amount, refund, cancel_reason, placed_at, paid_at, cancelled_at,"
            " version, lines FROM read.order_view WHERE order_id = %s",
            (order_id,),
        ).fetchone()
        assert row is not None
        assert row[:4] == ("cancelled", row[1], row[1], "test")
        assert (row[4], row[5], row[6]) == tuple(e[0] for e in events)
        assert row[7] == 3
        assert [line["line_total"] for line in row[8]] == [
            line.quantity * line.unit_price
            for line in shop.orders[order_id].lines  # type: ignore[index]
        ]
        history = conn.execute(
            "SELECT event_type, version, actor, request_id, data->>'order_id'"
            " FROM read.order_history WHERE order_id = %s ORDER BY version",
            (order_id,),
        ).fetchall()
        assert history == [
            ("OrderPlaced", 1, "alice", "req-1", order_id),
            ("OrderPaid", 2, "alice", "req-2", order_id),
            ("OrderCancelled", 3, "staff-1", "req-3", order_id),
        ]
        day = events[0][0].astimezone(dt.UTC).date()
        assert conn.execute(
            "SELECT orders, units, revenue, cancelled FROM read.daily_sales WHERE day = %s",
            (day,),
        ).fetchone() == (
            1,
            sum(line.quantity for line in shop.orders[order_id].lines),
            shop.orders[order_id].total,
            1,
        )
        # Cancelled: the sales are taken back out of the product rows.
        assert conn.execute("SELECT sum(units_sold) FROM read.product_view").fetchone() == (0,)


def test_redis_holds_the_committed_rows_and_absolute_leaderboards(settings: Settings) -> None:
    shop = Shop(seed=3)
    fill(settings, shop, 30)
    client = redis.Redis.from_url(settings.redis_url or "")
    # A server that has forgotten the cache script (restarted, or SCRIPT FLUSH): the
    # projector's first refresh meets NOSCRIPT and must load it, not drop the refresh.
    client.script_flush()
    project_all(settings)
    expected = shop.expected_products()
    for sku, (_, _, _, _, units, revenue) in expected.items():
        raw = client.get(product_cache_key(sku))
        assert raw is not None
        version, body = unpack(raw)
        view = msgspec.json.decode(body, type=ProductView)
        assert (view.units_sold, view.revenue, view.version) == (units, revenue, version)
        assert client.zscore(TOP_PRODUCTS_BY_UNITS, sku) == units
        assert client.zscore(TOP_PRODUCTS_BY_REVENUE, sku) == revenue
    for order_id, (status, total) in shop.expected_orders().items():
        raw = client.get(order_cache_key(order_id))
        assert raw is not None
        view_o = msgspec.json.decode(unpack(raw)[1], type=OrderView)
        assert (view_o.status, view_o.total) == (status, total)


def test_replaying_a_batch_after_commit_applies_nothing_twice(settings: Settings) -> None:
    shop = Shop(seed=5)
    fill(settings, shop, 20)
    project_all(settings)
    # A redelivered / duplicate message: the runner starts from the committed checkpoint.
    project_all(settings)
    project_all(settings)
    check_views(settings, shop)


def test_a_projection_locked_by_another_runner_is_left_alone(settings: Settings) -> None:
    shop = Shop()
    fill(settings, shop, 3)
    projection = PROJECTIONS["product_view"]
    assert settings.database_url
    with (
        connect(settings.database_url) as holder,
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(projection.name))
        result = run_batch(projection, write, read, batch_size=100, max_retries=0)
        assert result.outcome == "locked"
        holder.rollback()
        assert run_batch(projection, write, read, batch_size=100, max_retries=0).events > 0


def test_checkpoint_covers_the_token_and_notifies(settings: Settings) -> None:
    shop = Shop()
    assert settings.database_url
    with (
        connect(settings.database_url, autocommit=True) as conn,
        connect(settings.database_url, autocommit=True) as listener,
    ):
        listener.execute("LISTEN orderdesk_checkpoints")
        token = append(conn, shop.add_product("T-1"))
        project_all(settings)
        names = {n.payload for n in listener.notifies(timeout=1, stop_after=4)}
        assert "product_view" in names
        rows = conn.execute(
            "SELECT name, checkpoint_tx, checkpoint_pos, state, version FROM read.projection_state"
        ).fetchall()
        # Even projections that handle no catalog event count the write as applied.
        assert {r[0] for r in rows} == set(PROJECTIONS)
        for name, tx, pos, state, version in rows:
            assert (tx, pos) >= tuple(token), name
            assert (state, version) == ("live", PROJECTIONS[name].version)


def test_a_projection_stored_at_an_older_version_refuses_to_run(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    shop = Shop()
    fill(settings, shop, 2)
    projection = PROJECTIONS["order_view"]
    assert settings.database_url
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):
        read.execute(
            "INSERT INTO read.projection_state (name, version, state) VALUES (%s, %s, 'live')",
            (projection.name, projection.version - 1),
        )
        result = run_batch(projection, write, read, batch_size=100, max_retries=0)
        assert result.outcome == "outdated"
        assert "orderdesk projections rebuild order_view" in caplog.text
        assert read.execute("SELECT count(*) FROM read.order_view").fetchone() == (0,)


def sweep_all(settings: Settings, batch_size: int = 7) -> list[Any]:
    """Catch every projection up the way a ``project("*")`` wakeup does."""
    assert settings.database_url and settings.effective_read_database_url
    client = redis.Redis.from_url(settings.redis_url or "")
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.effective_read_database_url, autocommit=True) as read,
    ):
        results = catch_up_all(
            list(PROJECTIONS.values()),
            write,
            read,
            batch_size=batch_size,
            max_retries=0,
            redis=client,
            max_seconds=60,
        )
    client.close()
    return results


@pytest.mark.parametrize("separate_read_db", [False, True], ids=["one-db", "two-dbs"])
def test_a_sweep_of_every_projection_matches_the_events(
    settings: Settings, second_db_url: str, separate_read_db: bool
) -> None:
    if separate_read_db:
        settings = dataclasses.replace(settings, read_database_url=second_db_url)
    shop = Shop(seed=11)
    fill(settings, shop, 60)
    results = sweep_all(settings)
    assert {r.name: r.outcome for r in results} == dict.fromkeys(PROJECTIONS, "applied")
    assert all(r.caught_up for r in results)
    check_views(settings, shop)
    fill(settings, shop, 30)
    sweep_all(settings, batch_size=1000)
    sweep_all(settings)  # a duplicate wakeup finds nothing new
    check_views(settings, shop)


def test_a_sweep_starts_each_projection_from_its_own_checkpoint(settings: Settings) -> None:
    shop = Shop(seed=12)
    fill(settings, shop, 5)
    sweep_all(settings)
    fill(settings, shop, 20)
    assert settings.database_url
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):
        # order_view runs ahead alone, then everything is swept together: the log is read
        # from the lowest checkpoint and order_view must not apply its events twice.
        catch_up(PROJECTIONS["order_view"], write, read, batch_size=100, max_retries=0)
        fill(settings, shop, 10)
        first = sweep_batch(list(PROJECTIONS.values()), write, read, batch_size=10_000)
        by_name = {r.name: r for r in first.results}
        assert by_name["order_view"].events < by_name["order_history"].events
    sweep_all(settings)
    check_views(settings, shop)


def test_a_sweep_leaves_a_projection_another_worker_holds(settings: Settings) -> None:
    shop = Shop(seed=13)
    fill(settings, shop, 5)
    sweep_all(settings)  # the state rows exist from here on
    fill(settings, shop, 5)
    held = PROJECTIONS["product_view"]
    assert settings.database_url
    with (
        connect(settings.database_url) as holder,
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_key(held.name))
        sweep = sweep_batch(list(PROJECTIONS.values()), write, read, batch_size=1000)
        assert sweep.left == [held]
        assert {r.name for r in sweep.results} == set(PROJECTIONS) - {held.name}
        results = catch_up_all(
            list(PROJECTIONS.values()), write, read, batch_size=1000, max_retries=0
        )
        assert {r.name: r.outcome for r in results}[held.name] == "locked"
        holder.rollback()
    sweep_all(settings)
    check_views(settings, shop)
