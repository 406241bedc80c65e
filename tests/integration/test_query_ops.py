"""Health, readiness, projection status and the staff statistics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from orderdesk.settings import Settings
from tests.integration.query_rows import add_product, connect, query_client, set_checkpoint
from tests.support import bearer, free_port


@pytest.fixture
def client(settings: Settings) -> Iterator[Any]:
    with query_client(settings) as test_client:
        yield test_client


@pytest.fixture
def conn(settings: Settings) -> Iterator[Any]:
    assert settings.database_url is not None
    with connect(settings.database_url) as connection:
        yield connection


def test_healthz_and_readyz(client: Any) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"database": "ok", "migrations": "ok", "redis": "ok"}
    assert ready.headers["x-request-id"]


def test_readyz_is_503_when_migrations_are_behind(settings: Settings, conn: Any) -> None:
    conn.execute("UPDATE public.alembic_version SET version_num = '0001'")
    with query_client(settings) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["migrations"] == "behind"


def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    unreachable = dataclasses.replace(
        settings, database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/none"
    )
    with query_client(unreachable) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"] == "unavailable"
        response = client.get("/products")
        assert response.status_code == 503
        assert response.json()["type"] == "urn:orderdesk:problem:database-unavailable"


def test_projections_status_is_for_admins(client: Any, conn: Any, settings: Settings) -> None:
    set_checkpoint(conn, "order_view", 812, 40, events_behind=3, seconds_behind=1.5)
    set_checkpoint(conn, "daily_sales", 5, 2, state="stalled", last_error="boom")
    response = client.get("/projections", headers=bearer(settings, "root", "admin"))
    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "daily_sales",
            "version": 1,
            "state": "stalled",
            "checkpoint": {"transaction_id": 5, "position": 2},
            "events_behind": 0,
            "seconds_behind": 0.0,
            "last_error": "boom",
        },
        {
            "name": "order_view",
            "version": 1,
            "state": "live",
            "checkpoint": {"transaction_id": 812, "position": 40},
            "events_behind": 3,
            "seconds_behind": 1.5,
            "last_error": None,
        },
    ]
    assert client.get("/projections", headers=bearer(settings, "sam", "staff")).status_code == 403
    assert client.get("/projections").status_code == 401


def test_top_products_best_first_by_units_or_revenue(
    client: Any, conn: Any, settings: Settings
) -> None:
    add_product(conn, "A-1", name="Apple", units_sold=3, revenue=900)
    add_product(conn, "B-1", name="Bread", units_sold=7, revenue=70)
    add_product(conn, "C-1", name="Cheese", units_sold=3, revenue=10)
    staff = bearer(settings, "sam", "staff")
    for _ in range(2):  # from PostgreSQL (and rebuilding the sets), then from the sets
        by_units = client.get("/stats/top-products?by=units", headers=staff).json()
        assert by_units == [
            {"sku": "B-1", "name": "Bread", "units_sold": 7, "revenue": 70},
            {"sku": "A-1", "name": "Apple", "units_sold": 3, "revenue": 900},
            {"sku": "C-1", "name": "Cheese", "units_sold": 3, "revenue": 10},
        ]
        by_revenue = client.get("/stats/top-products?by=revenue&limit=2", headers=staff).json()
        assert [p["sku"] for p in by_revenue] == ["A-1", "B-1"]
    assert client.get("/stats/top-products?by=love", headers=staff).status_code == 422
    assert client.get("/stats/top-products?limit=101", headers=staff).status_code == 422
    assert (
        client.get("/stats/top-products", headers=bearer(settings, "al", "customer")).status_code
        == 403
    )


def test_daily_sales_by_day_and_its_date_rules(client: Any, conn: Any, settings: Settings) -> None:
    for day, orders in ((date(2026, 2, 27), 2), (date(2026, 3, 1), 5), (date(2026, 3, 9), 1)):
        conn.execute(
            "INSERT INTO read.daily_sales (day, orders, units, revenue, cancelled)"
            " VALUES (%s, %s, %s, %s, %s)",
            [day, orders, orders * 2, orders * 100, 1],
        )
    staff = bearer(settings, "sam", "staff")
    response = client.get("/stats/daily-sales?from=2026-02-28&to=2026-03-09", headers=staff)
    assert response.status_code == 200
    assert response.json() == [
        {"day": "2026-03-01", "orders": 5, "units": 10, "revenue": 500, "cancelled": 1},
        {"day": "2026-03-09", "orders": 1, "units": 2, "revenue": 100, "cancelled": 1},
    ]
    one_year = date(2025, 1, 1) + timedelta(days=365)
    assert (
        client.get(f"/stats/daily-sales?from=2025-01-01&to={one_year}", headers=staff).status_code
        == 200
    )
    for query in (
        "from=2026-03-02&to=2026-03-01",
        "from=2025-01-01&to=2026-01-02",
        "from=yesterday",
        "to=2026-02-30",
        "from=20260301",
        "from=9999-12-31",
        "from=0001-01-01&to=0001-01-01x",
        "to=0001-01-02",
    ):
        bad = client.get(f"/stats/daily-sales?{query}", headers=staff)
        assert bad.status_code == 422, query
        assert bad.json()["errors"][0]["loc"][0] == "query"
    assert client.get("/stats/daily-sales", headers=staff).status_code == 200
    assert client.get("/stats/daily-sales").status_code == 401
