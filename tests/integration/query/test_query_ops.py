"""Health, readiness, metrics, the OpenAPI document, projection status and the staff
statistics."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any

import jsonschema_rs
from prometheus_client.parser import text_string_to_metric_families

from orderdesk.settings import Settings
from tests.integration.query_rows import (
    BASE_TIME,
    add_history,
    add_order,
    add_product,
    query_client,
    set_checkpoint,
)
from tests.support import bearer, free_port, poll_until


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
        assert ready.json()["database"] == "down"
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


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of metric ``name`` by their sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def _requests(text: str, route: str, status: str) -> float:
    key = (("method", "GET"), ("route", route), ("service", "query-api"), ("status", status))
    return _samples(text, "orderdesk_http_request_duration_seconds_count").get(key, 0.0)


def test_metrics_count_requests_by_route_template_and_cache_hits(
    client: Any, conn: Any, settings: Settings
) -> None:
    add_product(conn, "A-1")
    add_product(conn, "B-2")
    order_id = add_order(conn, "alice")
    assert client.get("/products/A-1").status_code == 200  # miss, fills the cache
    assert client.get("/products/A-1").status_code == 200  # hit
    assert client.get("/products/B-2").status_code == 200  # miss
    assert client.get("/products/NOPE-1").status_code == 404  # miss
    staff = bearer(settings, "sam", "staff")
    assert client.get(f"/orders/{order_id}", headers=staff).status_code == 200  # miss
    assert client.get(f"/orders/{order_id}", headers=staff).status_code == 200  # hit
    assert client.get("/no/such/path").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _requests(text, "/products/{sku}", "200") == 3
    assert _requests(text, "/products/{sku}", "404") == 1
    assert _requests(text, "/orders/{order_id}", "200") == 2
    assert _requests(text, "unmatched", "404") == 1
    # Raw paths never become label values (one series per route, not per sku or order).
    assert "A-1" not in text and order_id not in text
    cache = _samples(text, "orderdesk_cache_requests_total")
    assert cache == {(("result", "hit"),): 2.0, (("result", "miss"),): 4.0}


# API.md's query table: every path and the query parameters it names.
QUERY_TABLE = {
    "/products": {"q", "status", "in_stock", "sort", "limit", "cursor"},
    "/products/{sku}": set(),
    "/orders/{order_id}": set(),
    "/orders/{order_id}/history": set(),
    "/customers/{customer_id}/orders": {"status", "limit", "cursor"},
    "/orders": {"status", "limit", "cursor"},
    "/stats/top-products": {"by", "limit"},
    "/stats/daily-sales": {"from", "to"},
    "/projections": set(),
}
SINGLE_RESOURCES = {"/products/{sku}", "/orders/{order_id}"}
CONSISTENCY_HEADERS = {"X-Consistency-Token", "X-Wait-Ms"}


def test_openapi_lists_every_path_parameter_and_response_of_the_query_api(client: Any) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {*QUERY_TABLE, "/healthz", "/readyz", "/metrics", "/openapi.json"}
    for path, query in QUERY_TABLE.items():
        op = doc["paths"][path]["get"]
        params = {(p["in"], p["name"]) for p in op["parameters"]}
        assert {name for where, name in params if where == "query"} == query, path
        path_params = {name for where, name in params if where == "path"}
        assert path_params == {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        headers = {name for where, name in params if where == "header"}
        assert "X-Request-ID" in headers, path
        if path != "/projections":
            assert headers >= CONSISTENCY_HEADERS, path
        responses = op["responses"]
        assert responses["200"]["content"]["application/json"]["schema"], path
        assert ("304" in responses) == (path in SINGLE_RESOURCES), path
        assert ("If-None-Match" in headers) == (path in SINGLE_RESOURCES), path
        problems = {
            status
            for status, r in responses.items()
            if "application/problem+json" in r.get("content", {})
        }
        assert "503" in problems, path
        if path not in ("/products", "/products/{sku}"):
            assert {"401", "403"} <= problems, path
    assert "Retry-After" in doc["paths"]["/orders"]["get"]["responses"]["503"]["headers"]
    readyz = doc["paths"]["/readyz"]["get"]["responses"]
    assert (
        readyz["503"]["content"]["application/json"] == readyz["200"]["content"]["application/json"]
    )


def _validator(doc: dict[str, Any], path: str, status: int) -> Any:
    responses = doc["paths"][path]["get"]["responses"][str(status)]
    (media,) = responses["content"].values()
    schema = {**media["schema"], "components": doc["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def test_real_responses_match_the_schemas_the_document_gives(
    client: Any, conn: Any, settings: Settings
) -> None:
    add_product(conn, "A-1", units_sold=2, revenue=300)
    order_id = add_order(conn, "alice", status="paid", paid_at=BASE_TIME + timedelta(hours=1))
    add_history(conn, order_id, 1, "OrderPlaced", {"order_id": order_id, "total": 300})
    set_checkpoint(conn, "order_view", 9, 1)
    conn.execute(
        "INSERT INTO read.daily_sales (day, orders, units, revenue, cancelled)"
        " VALUES ('2026-03-01', 1, 2, 300, 0)"
    )
    doc = client.get("/openapi.json").json()
    staff = bearer(settings, "root", "admin", "staff")
    cases = [
        ("/products", "/products?limit=1", None),
        ("/products/{sku}", "/products/A-1", None),
        ("/products/{sku}", "/products/A-1", None),  # from the cache this time
        ("/products/{sku}", "/products/NOPE-1", None),
        ("/products", "/products?limit=0", None),
        ("/orders", "/orders", staff),
        ("/orders/{order_id}", f"/orders/{order_id}", staff),
        ("/orders/{order_id}/history", f"/orders/{order_id}/history", staff),
        ("/customers/{customer_id}/orders", "/customers/alice/orders", staff),
        ("/orders", "/orders", None),
        ("/stats/top-products", "/stats/top-products", staff),
        ("/stats/daily-sales", "/stats/daily-sales?from=2026-03-01&to=2026-03-02", staff),
        ("/projections", "/projections", staff),
        ("/healthz", "/healthz", None),
        ("/readyz", "/readyz", None),
    ]
    for template, url, headers in cases:
        response = client.get(url, headers=headers)
        body = response.json()
        if response.status_code == 200:
            assert body, url  # an empty answer would validate against anything
        errors = [str(e) for e in _validator(doc, template, response.status_code).iter_errors(body)]
        assert errors == [], (url, response.status_code)
    bad = _validator(doc, "/products/{sku}", 200)
    assert not bad.is_valid({"sku": "A-1"})  # the schema is not vacuous


def test_lost_database_connections_cost_one_failed_request_not_one_each(
    client: Any, conn: Any, settings: Settings
) -> None:
    assert client.get("/products").status_code == 200

    def pool_connections() -> int:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orderdesk-query-api'"
        ).fetchone()
        return int(row[0])

    # The pool opens its connections in the background: wait until it has them all.
    poll_until(lambda: pool_connections() == settings.db_pool_size, message="pool filled")
    killed = conn.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'orderdesk-query-api'"
    ).fetchone()
    assert killed[0] >= settings.db_pool_size  # the pool, like a database restart does
    statuses = [client.get("/products").status_code for _ in range(settings.db_pool_size)]
    assert statuses.count(503) <= 2, statuses
    assert statuses[-3:] == [200, 200, 200]


def test_a_read_leaves_no_transaction_open(client: Any) -> None:
    """A read is one round trip: its statement commits by itself, so neither a BEGIN before
    it nor a COMMIT when the connection goes back to the pool costs another."""
    from psycopg.pq import TransactionStatus

    resources = client.app.state.resources

    async def read() -> TransactionStatus:
        async with resources.connection() as conn:
            await conn.execute("SELECT count(*) FROM read.product_view")
            return TransactionStatus(conn.info.transaction_status)

    assert client.portal.call(read) == TransactionStatus.IDLE
