"""Rebuild into shadow tables while writes, reads and the live projector go on."""

from __future__ import annotations

import dataclasses
import io
import threading
from typing import Any

import pytest
import redis
from alembic import command

from orderdesk.database import connect
from orderdesk.migrations import alembic_config
from orderdesk.settings import Settings
from projections import admin
from projections.rebuild import RebuildError, rebuild_projection
from projections.registry import PROJECTIONS
from projections.runner import catch_up, run_batch
from shared_contracts.views import TOP_PRODUCTS_BY_UNITS, TOP_PRODUCTS_COMPLETE
from tests.eventlog import Shop, append
from tests.integration.query_rows import query_client
from tests.integration.test_projections import check_views, fill, project_all
from tests.support import bearer

VIEWS = {
    "product_view": "sku",
    "order_view": "order_id",
    "daily_sales": "day",
    "order_history": "order_id, version",
}


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with connect(url) as conn:
        return {
            table: conn.execute(f"SELECT * FROM read.{table} ORDER BY {key}").fetchall()
            for table, key in VIEWS.items()
        }


def test_rebuild_under_load_reproduces_every_view(settings: Settings) -> None:
    assert settings.database_url
    shop = Shop(seed=11)
    fill(settings, shop, 150)
    project_all(settings)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with connect(settings.database_url or "", autocommit=True) as conn:
                while not stop.is_set():
                    with conn.transaction():
                        append(conn, shop.random_command())
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            with connect(settings.database_url or "", autocommit=True) as conn:
                while not stop.is_set():
                    for table in VIEWS:
                        row = conn.execute(f"SELECT count(*) FROM read.{table}").fetchone()
                        assert row is not None and row[0] > 0, table
        except BaseException as exc:
            errors.append(exc)

    def live_projector() -> None:
        try:
            with (
                connect(settings.database_url or "", autocommit=True) as write,
                connect(settings.database_url or "", autocommit=True) as read,
            ):
                while not stop.is_set():
                    for projection in PROJECTIONS.values():
                        catch_up(projection, write, read, batch_size=50, max_retries=0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (writer, reader, live_projector)]
    for thread in threads:
        thread.start()
    try:
        out = io.StringIO()
        for projection in PROJECTIONS.values():
            rebuild_projection(settings, projection, out=out, batch_size=40)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert "events/s" in out.getvalue()  # plain progress lines (not a terminal)

    project_all(settings)
    check_views(settings, shop)
    before = snapshot(settings.database_url)
    assert admin.rebuild(settings, [], all_=True) == 0
    assert snapshot(settings.database_url) == before
    # Same table and index names as the migrations: the schema has not drifted.
    command.check(alembic_config(settings.database_url))
    with connect(settings.database_url) as conn:
        states = conn.execute("SELECT state FROM read.projection_state").fetchall()
        assert {s[0] for s in states} == {"live"}
        # The swapped-in tables went live vacuumed and analyzed, with autovacuum back on.
        tables = conn.execute(
            "SELECT s.relname, c.reloptions, s.last_vacuum IS NOT NULL, s.last_analyze IS NOT NULL"
            " FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid"
            " WHERE s.schemaname = 'read' AND s.relname = ANY(%s)",
            (list(VIEWS),),
        ).fetchall()
        assert sorted(tables) == [(name, None, True, True) for name in sorted(VIEWS)]
    client = redis.Redis.from_url(settings.redis_url or "")
    # Swapping product_view drops the leaderboards; the query API reseeds them.
    assert client.exists(TOP_PRODUCTS_BY_UNITS, TOP_PRODUCTS_COMPLETE) == 0
    client.close()


def test_rebuilding_product_view_makes_the_query_api_reseed_top_products(
    settings: Settings,
) -> None:
    shop = Shop(seed=5)
    fill(settings, shop, 80)
    project_all(settings)
    expected = shop.expected_products()
    ranked = sorted(expected, key=lambda sku: (-expected[sku][4], sku))
    best, worst = ranked[0], ranked[-1]
    staff = bearer(settings, "sam", "staff")
    client = redis.Redis.from_url(settings.redis_url or "")

    def top(api: Any) -> list[str]:
        response = api.get("/stats/top-products?by=units&limit=1", headers=staff)
        assert response.status_code == 200, response.text
        return [p["sku"] for p in response.json()]

    with query_client(settings) as api:
        assert top(api) == [best]
        assert client.exists(TOP_PRODUCTS_COMPLETE) == 1  # the query API seeded the sets
        # More events through the live projector: absolute scores, the marker stays.
        fill(settings, shop, 20)
        project_all(settings)
        assert client.exists(TOP_PRODUCTS_COMPLETE) == 1
        expected = shop.expected_products()
        ranked = sorted(expected, key=lambda sku: (-expected[sku][4], sku))
        best, worst = ranked[0], ranked[-1]
        assert expected[best][4] > expected[ranked[1]][4], "no tie for the top (fixed seed)"
        assert top(api) == [best]
        # A leaderboard gone wrong (say, from before the code change that asked for this
        # rebuild) is trusted while the marker says the sets are complete ...
        client.zadd(TOP_PRODUCTS_BY_UNITS, {worst: 10**9})
        assert top(api) == [worst]
        # ... and the rebuild's swap drops sets and marker, so the answer is right again.
        rebuild_projection(settings, PROJECTIONS["product_view"], out=io.StringIO())
        assert client.exists(TOP_PRODUCTS_COMPLETE) == 0
        assert top(api) == [best]
        assert client.exists(TOP_PRODUCTS_COMPLETE) == 1
        assert client.zscore(TOP_PRODUCTS_BY_UNITS, worst) == expected[worst][4]
    client.close()


def test_bumping_the_version_asks_for_a_rebuild(settings: Settings) -> None:
    assert settings.database_url
    shop = Shop(seed=2)
    fill(settings, shop, 20)
    project_all(settings)
    bumped = dataclasses.replace(PROJECTIONS["product_view"], version=2)
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):
        assert run_batch(bumped, write, read, batch_size=10, max_retries=0).outcome == "outdated"
        rebuild_projection(settings, bumped, out=io.StringIO())
        append(write, shop.add_product("NEW-1"))
        assert run_batch(bumped, write, read, batch_size=10, max_retries=0).outcome == "applied"
        assert read.execute(
            "SELECT version FROM read.projection_state WHERE name = 'product_view'"
        ).fetchone() == (2,)
    check_views(settings, shop)


def test_rebuild_failures_are_clear_and_leave_the_live_tables(settings: Settings) -> None:
    from tests.eventlog import append_raw

    assert settings.database_url
    shop = Shop()
    fill(settings, shop, 5)
    project_all(settings)
    before = snapshot(settings.database_url)
    with connect(settings.database_url, autocommit=True) as conn:
        append_raw(conn, "OrderPlaced", '{"order_id": 42}', "order:broken")
    with pytest.raises(RebuildError, match="ValidationError"):
        rebuild_projection(settings, PROJECTIONS["order_view"], out=io.StringIO())
    assert snapshot(settings.database_url) == before
    with connect(settings.database_url) as conn:
        assert conn.execute("SELECT to_regclass('read.order_view__rebuild')").fetchone() == (None,)
        assert conn.execute(
            "SELECT state FROM read.projection_state WHERE name = 'order_view'"
        ).fetchone() == ("live",)
    assert admin.rebuild(settings, ["order_view"], all_=False) == 1
    assert admin.rebuild(settings, ["no_such_view"], all_=False) == 2
