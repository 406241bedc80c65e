"""``Idempotency-Key``: replays, misuse, per-subject scope, expiry and concurrent duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from command_side.app import create_app
from orderdesk.database import libpq_url
from orderdesk.settings import Settings
from tests.integration.write_side import command_api, snapshot, stock_levels, stock_up
from tests.support import bearer

ORDER = {"lines": [{"sku": "MUG", "quantity": 1}]}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        stock_up(test_client, settings, MUG=(450, 10))
        yield test_client


def _orders(settings: Settings) -> int:
    with psycopg.connect(libpq_url(settings.database_url or "")) as conn:
        row = conn.execute("SELECT count(*) FROM write.orders").fetchone()
    assert row is not None
    return int(row[0])


def test_retry_replays_the_first_response(client: TestClient, settings: Settings) -> None:
    alice = {**bearer(settings, "alice", "customer"), "Idempotency-Key": "order-1"}
    first = client.post("/orders", json=ORDER, headers=alice)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    # Same request, different JSON layout: still the same request.
    again = client.post(
        "/orders",
        content=b'{ "lines" : [ {"quantity":1, "sku":"MUG"} ] }',
        headers={**alice, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["location"] == first.headers["location"]
    assert _orders(settings) == 1
    assert stock_levels(settings.database_url or "", "MUG") == (10, 1)


def test_same_key_other_body_is_422(client: TestClient, settings: Settings) -> None:
    alice = {**bearer(settings, "alice", "customer"), "Idempotency-Key": "k"}
    assert client.post("/orders", json=ORDER, headers=alice).status_code == 201
    before = snapshot(settings.database_url or "")
    other = client.post("/orders", json={"lines": [{"sku": "MUG", "quantity": 2}]}, headers=alice)
    assert other.status_code == 422
    assert other.json()["type"] == "urn:orderdesk:problem:idempotency-key-reused"
    assert snapshot(settings.database_url or "") == before


def test_keys_are_scoped_per_subject(client: TestClient, settings: Settings) -> None:
    for who in ("alice", "bob"):
        headers = {**bearer(settings, who, "customer"), "Idempotency-Key": "shared"}
        response = client.post("/orders", json=ORDER, headers=headers)
        assert response.status_code == 201 and "idempotent-replayed" not in response.headers
    assert _orders(settings) == 2


def test_a_rejected_command_is_not_stored(client: TestClient, settings: Settings) -> None:
    alice = {**bearer(settings, "alice", "customer"), "Idempotency-Key": "big-order"}
    big = {"lines": [{"sku": "MUG", "quantity": 15}]}
    assert client.post("/orders", json=big, headers=alice).status_code == 409
    client.post(
        "/stock/MUG/receipts", json={"quantity": 10}, headers=bearer(settings, "staff-1", "staff")
    )
    # The client can retry with the same key once the cause is fixed.
    retried = client.post("/orders", json=big, headers=alice)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers


def test_expired_keys_are_forgotten(client: TestClient, settings: Settings) -> None:
    alice = {**bearer(settings, "alice", "customer"), "Idempotency-Key": "old"}
    assert client.post("/orders", json=ORDER, headers=alice).status_code == 201
    with psycopg.connect(libpq_url(settings.database_url or "")) as conn:
        conn.execute(
            "UPDATE write.idempotency_keys SET created_at = now() - interval '25 hours',"
            " expires_at = now() - interval '1 hour'"
        )
    again = client.post("/orders", json=ORDER, headers=alice)
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert _orders(settings) == 2


def test_invalid_key_is_422(client: TestClient, settings: Settings) -> None:
    headers = {**bearer(settings, "alice", "customer"), "Idempotency-Key": "k" * 201}
    response = client.post("/orders", json=ORDER, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


def test_concurrent_duplicates_create_one_order(settings: Settings, tmp_path: Path) -> None:
    with command_api(settings, tmp_path) as url:

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                staff = bearer(settings, "staff-1", "staff")
                await http.post(
                    "/products", json={"sku": "MUG", "name": "Mug", "price": 450}, headers=staff
                )
                await http.post("/stock/MUG/receipts", json={"quantity": 100}, headers=staff)
                headers = {**bearer(settings, "alice", "customer"), "Idempotency-Key": "dup"}
                return await asyncio.gather(
                    *(http.post("/orders", json=ORDER, headers=headers) for _ in range(12))
                )

        responses = asyncio.run(scenario())
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 11
    assert _orders(settings) == 1
    assert stock_levels(settings.database_url or "", "MUG") == (100, 1)
