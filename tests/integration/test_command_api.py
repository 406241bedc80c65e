"""The command API against a real database: every endpoint's answer and every error of API.md.

For each rejected command the whole write database is compared before and after: a
rejection changes no row and appends no event.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from command_side.app import create_app
from orderdesk.settings import Settings
from shared_contracts.tokens import decode_token
from tests.integration.write_side import snapshot, stock_levels, stock_up
from tests.support import bearer

PROBLEM = "application/problem+json"


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def assert_success(response: Any, status: int, version: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["version"] == version
    assert response.headers["etag"] == f'"{version}"'
    decode_token(body["token"])  # opaque, but one of ours
    return body


def assert_rejected(
    client: TestClient,
    settings: Settings,
    method: str,
    path: str,
    status: int,
    slug: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send a request that must fail with ``status`` and leave the database untouched."""
    before = snapshot(settings.database_url or "")
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"] == f"urn:orderdesk:problem:{slug}"
    assert snapshot(settings.database_url or "") == before
    return body


def test_product_commands(client: TestClient, settings: Settings, staff: dict[str, str]) -> None:
    created = client.post(
        "/products", json={"sku": "MUG-1", "name": "Mug", "price": 450}, headers=staff
    )
    body = assert_success(created, 201, 1)
    assert body["id"] == "MUG-1" and created.headers["location"] == "/products/MUG-1"
    updated = client.patch("/products/MUG-1", json={"price": 500}, headers=staff)
    assert assert_success(updated, 200, 2)["price"] == 500
    # Asking for the current values changes nothing: same version, no new event.
    events_before = snapshot(settings.database_url or "")[4]
    same = client.patch("/products/MUG-1", json={"price": 500}, headers=staff)
    assert assert_success(same, 200, 2)["token"] == updated.json()["token"]
    assert snapshot(settings.database_url or "")[4] == events_before
    gone = client.post("/products/MUG-1/discontinue", headers=staff)
    assert assert_success(gone, 200, 3)["status"] == "discontinued"


def test_stock_commands(client: TestClient, settings: Settings, staff: dict[str, str]) -> None:
    stock_up(client, settings, TEE=(1500, 0))
    received = client.post(
        "/stock/TEE/receipts", json={"quantity": 7, "reference": "PO-1"}, headers=staff
    )
    assert assert_success(received, 200, 1)["on_hand"] == 7
    adjusted = client.post(
        "/stock/TEE/adjustments", json={"delta": -2, "reason": "broken"}, headers=staff
    )
    body = assert_success(adjusted, 200, 2)
    assert (body["on_hand"], body["reserved"], body["available"]) == (5, 0, 5)


def test_order_lifecycle(
    client: TestClient, settings: Settings, staff: dict[str, str], alice: dict[str, str]
) -> None:
    stock_up(client, settings, MUG=(450, 10), TEE=(1500, 5))
    placed = client.post(
        "/orders",
        json={"lines": [{"sku": "MUG", "quantity": 2}, {"sku": "TEE", "quantity": 1}]},
        headers=alice,
    )
    body = assert_success(placed, 201, 1)
    order_id = body["id"]
    assert body["total"] == 2400 and placed.headers["location"] == f"/orders/{order_id}"
    assert stock_levels(settings.database_url or "", "MUG") == (10, 2)
    paid = client.post(
        f"/orders/{order_id}/payment", json={"amount": 2400}, headers={**alice, "If-Match": '"1"'}
    )
    assert assert_success(paid, 200, 2)["status"] == "paid"
    shipped = client.post(f"/orders/{order_id}/shipment", json={}, headers=staff)
    assert assert_success(shipped, 200, 3)["status"] == "shipped"
    assert stock_levels(settings.database_url or "", "MUG") == (8, 0)

    second = client.post(
        "/orders", json={"lines": [{"sku": "TEE", "quantity": 2}]}, headers=alice
    ).json()["id"]
    client.post(f"/orders/{second}/payment", json={"amount": 3000}, headers=alice)
    cancelled = client.post(
        f"/orders/{second}/cancellation", json={"reason": "late"}, headers=alice
    )
    body = assert_success(cancelled, 200, 3)
    assert (body["status"], body["refund"]) == ("cancelled", 3000)
    assert stock_levels(settings.database_url or "", "TEE") == (4, 0)


def test_staff_orders_for_a_customer(
    client: TestClient, settings: Settings, staff: dict[str, str], alice: dict[str, str]
) -> None:
    stock_up(client, settings, MUG=(450, 10))
    lines = [{"sku": "MUG", "quantity": 1}]
    for_bob = client.post("/orders", json={"lines": lines, "customer_id": "bob"}, headers=staff)
    assert assert_success(for_bob, 201, 1)["customer_id"] == "bob"
    assert_rejected(
        client,
        settings,
        "POST",
        "/orders",
        403,
        "forbidden",
        json={"lines": lines, "customer_id": "bob"},
        headers=alice,
    )


def _token_with(
    settings: Settings,
    *,
    secret: str | None = None,
    exp_offset: int = 3600,
    roles: list[str] | None = None,
) -> str:
    claims = {"sub": "alice", "roles": roles or ["staff"], "exp": int(time.time()) + exp_offset}
    return jwt.encode(claims, secret or settings.jwt_secret, algorithm="HS256")


def _alg_none_token() -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": "alice", "roles": ["staff"], "exp": int(time.time()) + 3600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_authentication_errors(client: TestClient, settings: Settings) -> None:
    body = {"sku": "X", "name": "x", "price": 1}
    assert_rejected(client, settings, "POST", "/products", 401, json=body)
    for token in (
        _token_with(settings, exp_offset=-60),
        _token_with(settings, secret="another-secret-of-sufficient-length-0123"),
        _alg_none_token(),
        "not.a.jwt",
    ):
        problem = assert_rejected(
            client,
            settings,
            "POST",
            "/products",
            401,
            "unauthorized",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert problem["detail"]
    assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        401,
        json=body,
        headers={"Authorization": "Basic YTpi"},
    )


def test_authorisation_errors(
    client: TestClient, settings: Settings, staff: dict[str, str], alice: dict[str, str]
) -> None:
    stock_up(client, settings, MUG=(450, 10))
    assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        403,
        "forbidden",
        json={"sku": "X", "name": "x", "price": 1},
        headers=alice,
    )
    assert_rejected(
        client, settings, "POST", "/stock/MUG/receipts", 403, json={"quantity": 1}, headers=alice
    )
    no_roles = bearer(settings, "carol")
    assert_rejected(
        client,
        settings,
        "POST",
        "/orders",
        403,
        json={"lines": [{"sku": "MUG", "quantity": 1}]},
        headers=no_roles,
    )
    order_id = client.post(
        "/orders", json={"lines": [{"sku": "MUG", "quantity": 1}]}, headers=alice
    ).json()["id"]
    assert_rejected(
        client, settings, "POST", f"/orders/{order_id}/shipment", 403, json={}, headers=alice
    )
    # Another customer's order does not exist, as far as that customer can tell.
    bob = bearer(settings, "bob", "customer")
    assert_rejected(
        client,
        settings,
        "POST",
        f"/orders/{order_id}/payment",
        404,
        "not-found",
        json={"amount": 450},
        headers=bob,
    )
    assert_rejected(
        client, settings, "POST", f"/orders/{order_id}/cancellation", 404, json={}, headers=bob
    )


def test_not_found_and_conflicts(
    client: TestClient, settings: Settings, staff: dict[str, str], alice: dict[str, str]
) -> None:
    stock_up(client, settings, MUG=(450, 3), TEE=(1500, 1))
    assert_rejected(
        client, settings, "PATCH", "/products/NOPE", 404, json={"name": "x"}, headers=staff
    )
    assert_rejected(
        client, settings, "POST", "/stock/NOPE/receipts", 404, json={"quantity": 1}, headers=staff
    )
    assert_rejected(
        client,
        settings,
        "POST",
        "/orders/not-a-uuid/payment",
        404,
        json={"amount": 1},
        headers=alice,
    )
    assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        409,
        "product-exists",
        json={"sku": "MUG", "name": "again", "price": 1},
        headers=staff,
    )
    assert_rejected(
        client,
        settings,
        "POST",
        "/stock/MUG/adjustments",
        409,
        json={"delta": -4, "reason": "count"},
        headers=staff,
    )
    short = assert_rejected(
        client,
        settings,
        "POST",
        "/orders",
        409,
        "insufficient-stock",
        json={"lines": [{"sku": "TEE", "quantity": 2}, {"sku": "MUG", "quantity": 4}]},
        headers=alice,
    )
    assert short["skus"] == ["MUG", "TEE"]
    order_id = client.post(
        "/orders", json={"lines": [{"sku": "MUG", "quantity": 1}]}, headers=alice
    ).json()["id"]
    assert_rejected(
        client,
        settings,
        "POST",
        f"/orders/{order_id}/shipment",
        409,
        "invalid-status",
        json={},
        headers=staff,
    )
    assert_rejected(
        client,
        settings,
        "POST",
        f"/orders/{order_id}/payment",
        422,
        "amount-mismatch",
        json={"amount": 1},
        headers=alice,
    )
    client.post("/products/TEE/discontinue", headers=staff)
    assert_rejected(
        client,
        settings,
        "POST",
        "/products/TEE/discontinue",
        409,
        "already-discontinued",
        headers=staff,
    )
    bad = assert_rejected(
        client,
        settings,
        "POST",
        "/orders",
        422,
        "discontinued-sku",
        json={"lines": [{"sku": "TEE", "quantity": 1}]},
        headers=alice,
    )
    assert bad["errors"][0]["loc"] == ["body", "lines", 0, "sku"]


def test_if_match(client: TestClient, settings: Settings, staff: dict[str, str]) -> None:
    stock_up(client, settings, MUG=(450, 3))
    problem = assert_rejected(
        client,
        settings,
        "PATCH",
        "/products/MUG",
        412,
        "version-mismatch",
        json={"name": "New"},
        headers={**staff, "If-Match": '"7"'},
    )
    assert "1" in problem["detail"]
    assert_rejected(
        client,
        settings,
        "POST",
        "/stock/MUG/receipts",
        412,
        json={"quantity": 1},
        headers={**staff, "If-Match": '"5"'},
    )
    for malformed in ("7", 'W/"1"', '"x"'):
        assert_rejected(
            client,
            settings,
            "PATCH",
            "/products/MUG",
            400,
            "invalid-if-match",
            json={"name": "New"},
            headers={**staff, "If-Match": malformed},
        )
    ok = client.post(
        "/stock/MUG/receipts", json={"quantity": 1}, headers={**staff, "If-Match": '"1"'}
    )
    assert_success(ok, 200, 2)


def test_body_errors(client: TestClient, settings: Settings, staff: dict[str, str]) -> None:
    assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        400,
        "malformed-json",
        content=b'{"sku": "A"',
        headers={**staff, "Content-Type": "application/json"},
    )
    assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        415,
        "unsupported-media-type",
        content=b"sku=A",
        headers={**staff, "Content-Type": "text/plain"},
    )
    huge = json.dumps({"sku": "A", "name": "x" * (70 * 1024), "price": 1}).encode()
    assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        413,
        "body-too-large",
        content=huge,
        headers={**staff, "Content-Type": "application/json"},
    )
    problem = assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        422,
        "validation",
        json={"sku": "lower", "name": "x", "price": 1},
        headers=staff,
    )
    assert problem["errors"][0]["loc"] == ["body", "sku"]
    # PostgreSQL text and jsonb cannot hold NUL: refused as invalid, never a 500.
    problem = assert_rejected(
        client,
        settings,
        "POST",
        "/products",
        422,
        "validation",
        json={"sku": "NUL-1", "name": "a\x00b", "price": 1},
        headers=staff,
    )
    assert problem["errors"][0]["loc"] == ["body", "name"]
    assert problem["errors"][0]["msg"] == "Must not contain NUL characters (U+0000)."
    problem = assert_rejected(
        client,
        settings,
        "POST",
        "/orders",
        422,
        "validation",
        json={"lines": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 1}]},
        headers=staff,
    )
    assert problem["errors"][0]["loc"] == ["body", "lines", 1, "sku"]
    assert_rejected(
        client,
        settings,
        "POST",
        "/orders",
        422,
        json={"lines": [{"sku": "GHOST", "quantity": 1}]},
        headers=staff,
    )


def test_request_id_is_echoed(client: TestClient, staff: dict[str, str]) -> None:
    response = client.post(
        "/products",
        json={"sku": "A", "name": "a", "price": 1},
        headers={**staff, "X-Request-ID": "trace-me-1"},
    )
    assert response.headers["x-request-id"] == "trace-me-1"
    assert client.get("/products").status_code == 405  # reads live on the query API
