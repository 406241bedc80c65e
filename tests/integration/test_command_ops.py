"""The command API's operations endpoints against real PostgreSQL and Redis: /metrics,
the rate limiter, /healthz and /readyz, /openapi.json, and what never reaches the logs."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from command_side.app import create_app
from orderdesk.database import connect
from orderdesk.logs import JsonFormatter
from orderdesk.metrics import Metrics, create_metrics
from orderdesk.settings import Settings
from tests.integration.write_side import snapshot, stock_up
from tests.support import bearer, poll_until

PROBLEM = "application/problem+json"
COMMAND_PATHS = {
    ("post", "/orders"),
    ("post", "/products"),
    ("patch", "/products/{sku}"),
    ("post", "/products/{sku}/discontinue"),
    ("post", "/stock/{sku}/receipts"),
    ("post", "/stock/{sku}/adjustments"),
    ("post", "/orders/{order_id}/payment"),
    ("post", "/orders/{order_id}/shipment"),
    ("post", "/orders/{order_id}/cancellation"),
}


@pytest.fixture
def metrics() -> Metrics:
    return create_metrics("command-api")


@pytest.fixture
def client(settings: Settings, metrics: Metrics) -> Iterator[TestClient]:
    with TestClient(create_app(settings, metrics=metrics)) as test_client:
        yield test_client


def samples(client: TestClient, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of metric ``name`` as served by GET /metrics, keyed by sorted labels."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_metrics_count_commands_events_and_route_templates(
    client: TestClient, settings: Settings
) -> None:
    stock_up(client, settings, MUG=(450, 1))
    alice = bearer(settings, "alice", "customer")
    order = {"lines": [{"sku": "MUG", "quantity": 1}]}
    placed = client.post("/orders", json=order, headers=alice)
    assert placed.status_code == 201
    assert client.post("/orders", json=order, headers=alice).status_code == 409
    assert client.post("/orders", json=order).status_code == 401
    paid = client.post(f"/orders/{placed.json()['id']}/payment", json={"amount": 1}, headers=alice)
    assert paid.status_code == 422

    commands = samples(client, "orderdesk_commands_total")
    assert commands[(("outcome", "ok"), ("type", "place_order"))] == 1
    assert commands[(("outcome", "insufficient-stock"), ("type", "place_order"))] == 1
    assert commands[(("outcome", "unauthorized"), ("type", "place_order"))] == 1
    assert commands[(("outcome", "ok"), ("type", "add_product"))] == 1
    assert commands[(("outcome", "ok"), ("type", "receive_stock"))] == 1
    assert sum(v for k, v in commands.items() if ("type", "pay_order") in k) == 1

    events = samples(client, "orderdesk_events_appended_total")
    assert events[(("event_type", "OrderPlaced"),)] == 1
    assert events[(("event_type", "ProductAdded"),)] == 1
    # The rejected commands appended nothing: one reservation, for the one order.
    assert events[(("event_type", "StockReserved"),)] == 1

    latency = samples(client, "orderdesk_http_request_duration_seconds_count")
    routes = {dict(labels)["route"] for labels in latency}
    assert "/orders/{order_id}/payment" in routes
    assert not any(placed.json()["id"] in route for route in routes)
    key = (
        ("method", "POST"),
        ("route", "/orders"),
        ("service", "command-api"),
        ("status", "201"),
    )
    assert latency[key] == 1


def test_rate_limit_answers_429_problem_and_spares_operations(
    settings: Settings, metrics: Metrics
) -> None:
    tiny = dataclasses.replace(settings, rate_limit=2, rate_limit_window=60)
    with TestClient(create_app(tiny, metrics=metrics)) as client:
        staff = bearer(settings, "staff-1", "staff") | {"X-Request-ID": "rl-7"}
        product = {"sku": "CUP", "name": "Cup", "price": 300}
        assert client.post("/products", json=product, headers=staff).status_code == 201
        assert client.patch("/products/CUP", json={"price": 301}, headers=staff).status_code == 200
        before = snapshot(settings.database_url or "")
        limited = client.patch("/products/CUP", json={"price": 302}, headers=staff)
        assert limited.status_code == 429
        assert limited.headers["content-type"] == PROBLEM
        assert limited.json()["type"] == "urn:orderdesk:problem:rate-limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 30
        assert limited.headers["x-request-id"] == "rl-7"
        assert snapshot(settings.database_url or "") == before
        # Another subject has its own allowance; operations endpoints are never limited.
        other = bearer(settings, "staff-2", "staff")
        assert client.patch("/products/CUP", json={"price": 303}, headers=other).status_code == 200
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert client.get(path, headers=staff).status_code == 200
        assert samples(client, "orderdesk_rate_limited_total")[()] == 1
        latency = samples(client, "orderdesk_http_request_duration_seconds_count")
        assert any(
            dict(k)["route"] == "/products/{sku}" and dict(k)["status"] == "429" for k in latency
        )


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"database": "ok", "migrations": "ok", "redis": "ok"}


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    assert isinstance(node, dict)
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_describes_every_command(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    listed = {(m, p) for p, item in document["paths"].items() for m in item}
    assert listed >= COMMAND_PATHS
    assert {("get", p) for p in ("/healthz", "/readyz", "/metrics", "/openapi.json")} <= listed
    for ref in _refs(document):  # every $ref anywhere resolves
        _resolve(document, ref)

    place = document["paths"]["/orders"]["post"]
    body = place["requestBody"]["content"]["application/json"]["schema"]
    schema = _resolve(document, body["$ref"])
    assert set(schema["required"]) == {"lines"} and schema["additionalProperties"] is False
    assert {"201", "401", "403", "409", "422", "429"} <= set(place["responses"])
    created = _resolve(
        document, place["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert {"id", "version", "token", "total"} <= set(created["required"])
    headers = {p["name"] for p in place["parameters"] if p["in"] == "header"}
    assert {"Idempotency-Key", "X-Request-ID"} <= headers

    pay = document["paths"]["/orders/{order_id}/payment"]["post"]
    params = {(p["in"], p["name"]) for p in pay["parameters"]}
    assert {("path", "order_id"), ("header", "If-Match"), ("header", "Idempotency-Key")} <= params
    assert {"404", "412"} <= set(pay["responses"])
    assert pay["security"] == [{"bearerAuth": []}]


def test_header_errors_still_answered_with_the_limiter_in_front(
    client: TestClient, settings: Settings
) -> None:
    staff = bearer(settings, "staff-1", "staff")
    stock_up(client, settings, MUG=(450, 1))
    before = snapshot(settings.database_url or "")
    bad_key = client.post(
        "/stock/MUG/receipts", json={"quantity": 1}, headers=staff | {"Idempotency-Key": ""}
    )
    assert bad_key.status_code == 422
    assert bad_key.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    bad_if_match = client.post(
        "/stock/MUG/receipts", json={"quantity": 1}, headers=staff | {"If-Match": "v1"}
    )
    assert bad_if_match.status_code == 400
    assert bad_if_match.headers["content-type"] == PROBLEM
    assert snapshot(settings.database_url or "") == before


def test_tokens_never_reach_the_logs(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    token = bearer(settings, "alice", "customer")["Authorization"]
    forged = token[:-4] + "AAAA"
    with caplog.at_level(logging.DEBUG):
        client.post(
            "/orders",
            json={"lines": [{"sku": "NOPE", "quantity": 1}]},
            headers={"Authorization": token},
        )
        client.post("/orders", json={"lines": []}, headers={"Authorization": forged})
        client.post(
            "/orders",
            content=b"{",
            headers={"Authorization": token, "Content-Type": "application/json"},
        )
    formatter = JsonFormatter("command-api")
    lines = "\n".join(formatter.format(record) for record in caplog.records)
    assert caplog.records  # the client and driver log at DEBUG: there is something to search
    secret_parts = (token.split()[1], forged.split()[1], settings.jwt_secret)
    assert not any(part in lines for part in secret_parts)


def test_lost_database_connections_cost_one_failed_request_not_one_each(
    settings: Settings, client: TestClient
) -> None:
    staff = bearer(settings, "ops", "staff")

    def add(sku: str) -> int:
        body = {"sku": sku, "name": sku, "price": 100}
        return client.post("/products", json=body, headers=staff).status_code

    assert add("POOL-0") == 201
    assert settings.database_url
    with connect(settings.database_url, autocommit=True) as admin:

        def pool_connections() -> int:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'orderdesk-command-api'"
            ).fetchone()
            return int(row[0]) if row else 0

        # The pool opens its connections in the background: wait until it has them all.
        poll_until(lambda: pool_connections() == settings.db_pool_size, message="pool filled")
        # What a database restart does to the API: every pooled connection dies at once.
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'orderdesk-command-api'"
        ).fetchone()
    assert killed is not None and killed[0] == settings.db_pool_size
    statuses = [add(f"POOL-{i}") for i in range(1, settings.db_pool_size + 1)]
    # The first request meets a dead connection (503, retryable) and has the pool test
    # the others; the rest are served by fresh ones instead of failing one by one.
    assert statuses.count(503) <= 2, statuses
    assert statuses[-3:] == [201, 201, 201]
