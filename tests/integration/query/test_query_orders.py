"""Order reads: who may see what, newest-first pages, the audit trail, ETag/304."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from orderdesk.settings import Settings
from tests.integration.query_rows import BASE_TIME, add_history, add_order
from tests.support import bearer, poll_until


def test_owner_and_staff_read_an_order_with_every_field(
    client: Any, conn: Any, settings: Settings
) -> None:
    order_id = add_order(
        conn,
        "alice",
        status="paid",
        version=2,
        paid_at=BASE_TIME + timedelta(minutes=5),
        lines=[
            {"sku": "A-1", "name": "Apple", "quantity": 2, "unit_price": 150, "line_total": 300},
            {"sku": "B-1", "name": "Bread", "quantity": 1, "unit_price": 400, "line_total": 400},
        ],
    )
    expected = {
        "id": order_id,
        "customer_id": "alice",
        "status": "paid",
        "lines": [
            {"sku": "A-1", "name": "Apple", "quantity": 2, "unit_price": 150, "line_total": 300},
            {"sku": "B-1", "name": "Bread", "quantity": 1, "unit_price": 400, "line_total": 400},
        ],
        "total": 700,
        "paid_amount": 700,
        "refund": 0,
        "placed_at": "2026-03-01T12:00:00.000000Z",
        "paid_at": "2026-03-01T12:05:00.000000Z",
        "shipped_at": None,
        "cancelled_at": None,
        "version": 2,
    }
    for headers in (
        bearer(settings, "alice", "customer"),
        bearer(settings, "sam", "staff"),
        bearer(settings, "root", "admin"),
    ):
        # Twice: the second answer comes from the cache and must be the same.
        for _ in range(2):
            response = client.get(f"/orders/{order_id}", headers=headers)
            assert response.status_code == 200
            assert response.json() == expected
            assert response.headers["etag"] == '"2"'
    again = client.get(
        f"/orders/{order_id}",
        headers={**bearer(settings, "alice", "customer"), "If-None-Match": '"2"'},
    )
    assert again.status_code == 304


def test_another_customers_order_is_404_exactly_like_a_missing_one(
    client: Any, conn: Any, settings: Settings
) -> None:
    order_id = add_order(conn, "alice")
    bob = bearer(settings, "bob", "customer")
    # Cold and warm cache, and with If-None-Match: never a hint that the order exists.
    client.get(f"/orders/{order_id}", headers=bearer(settings, "sam", "staff"))
    for headers in (bob, {**bob, "If-None-Match": '"1"'}):
        theirs = client.get(f"/orders/{order_id}", headers=headers)
        missing = client.get(f"/orders/{uuid.uuid4()}", headers=headers)
        assert theirs.status_code == missing.status_code == 404
        assert theirs.json() == missing.json()
    assert client.get(f"/orders/{order_id}/history", headers=bob).status_code == 404
    assert client.get("/orders/not-a-uuid", headers=bob).status_code == 404


def test_orders_need_a_token_and_a_role(client: Any, conn: Any, settings: Settings) -> None:
    order_id = add_order(conn, "alice")
    assert client.get(f"/orders/{order_id}").status_code == 401
    assert (
        client.get(f"/orders/{order_id}", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    assert (
        client.get(
            f"/orders/{order_id}", headers=bearer(settings, "alice", "customer", ttl=-10)
        ).status_code
        == 401
    )
    assert client.get(f"/orders/{order_id}", headers=bearer(settings, "alice")).status_code == 403
    alice = bearer(settings, "alice", "customer")
    assert client.get("/orders", headers=alice).status_code == 403
    assert client.get("/orders").status_code == 401
    assert client.get("/customers/bob/orders", headers=alice).status_code == 403
    assert client.get("/customers/alice/orders").status_code == 401


def test_a_token_is_verified_once_and_refused_once_it_expires(
    client: Any, conn: Any, settings: Settings
) -> None:
    order_id = add_order(conn, "alice")
    alice = bearer(settings, "alice", "customer", ttl=2)
    verified = client.app.state.resources.verifier
    for _ in range(3):
        assert client.get(f"/orders/{order_id}", headers=alice).status_code == 200
    assert len(verified) == 1  # one verification for the token's three reads
    # The remembered token is refused from its exp on, as an unremembered one would be.
    poll_until(
        lambda: client.get(f"/orders/{order_id}", headers=alice).status_code == 401,
        timeout=5.0,
        interval=0.1,
        message="an expired token was still accepted",
    )


def _walk(
    client: Any, path: str, headers: dict[str, str], conn: Any, between: Any = None
) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        sep = "&" if "?" in path else "?"
        response = client.get(path + (f"{sep}cursor={cursor}" if cursor else ""), headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        if between is not None:
            between()
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_pages_are_newest_first_and_survive_inserts(
    client: Any, conn: Any, settings: Settings
) -> None:
    # Several orders share one placed_at: the order id breaks the tie.
    original = [
        add_order(
            conn, "alice" if i % 2 else "bob", placed_at=BASE_TIME + timedelta(seconds=i // 3)
        )
        for i in range(25)
    ]
    expected = [
        oid
        for _, oid in sorted(
            ((BASE_TIME + timedelta(seconds=i // 3), oid) for i, oid in enumerate(original)),
            reverse=True,
        )
    ]
    offsets = iter(range(100))

    def insert_some() -> None:  # newer, older and tied rows appear between page reads
        n = next(offsets)
        for seconds in (-5 - n, 3, 100 + n):
            add_order(conn, "alice", placed_at=BASE_TIME + timedelta(seconds=seconds))

    staff = bearer(settings, "sam", "staff")
    seen = _walk(client, "/orders?limit=4", staff, conn, insert_some)
    assert len(seen) == len(set(seen))
    assert [oid for oid in seen if oid in set(original)] == expected


def test_customer_pages_and_status_filter(client: Any, conn: Any, settings: Settings) -> None:
    mine = [
        add_order(conn, "alice", status=status, placed_at=BASE_TIME + timedelta(hours=i))
        for i, status in enumerate(["placed", "paid", "cancelled", "paid"])
    ]
    add_order(conn, "bob", status="paid")
    alice = bearer(settings, "alice", "customer")
    assert _walk(client, "/customers/alice/orders?limit=3", alice, conn) == mine[::-1]
    assert _walk(client, "/customers/alice/orders?status=paid", alice, conn) == [mine[3], mine[1]]
    staff = bearer(settings, "sam", "staff")
    assert _walk(client, "/customers/alice/orders?limit=2", staff, conn) == mine[::-1]
    assert len(_walk(client, "/orders?status=paid", staff, conn)) == 3
    for query in ("status=lost", "limit=0", "limit=1000"):
        response = client.get(f"/orders?{query}", headers=staff)
        assert response.status_code == 422, query
    cursor = client.get("/orders?limit=1", headers=staff).json()["next_cursor"]
    other = client.get(f"/orders?status=paid&cursor={cursor}", headers=staff)
    assert other.status_code == 400
    foreign = client.get(f"/customers/alice/orders?cursor={cursor}", headers=alice)
    assert foreign.status_code == 400


def test_history_is_the_audit_trail_oldest_first(
    client: Any, conn: Any, settings: Settings
) -> None:
    order_id = add_order(conn, "alice", status="paid", version=2)
    add_history(
        conn,
        order_id,
        2,
        "OrderPaid",
        {"order_id": order_id, "amount": 300},
        actor="alice",
        request_id="req-2",
    )
    add_history(
        conn,
        order_id,
        1,
        "OrderPlaced",
        {"order_id": order_id, "customer_id": "alice", "total": 300},
        actor="alice",
        request_id="req-1",
    )
    response = client.get(
        f"/orders/{order_id}/history", headers=bearer(settings, "alice", "customer")
    )
    assert response.status_code == 200
    assert response.json() == [
        {
            "event_type": "OrderPlaced",
            "version": 1,
            "at": "2026-03-01T12:00:01.000000Z",
            "actor": "alice",
            "request_id": "req-1",
            "data": {"order_id": order_id, "customer_id": "alice", "total": 300},
        },
        {
            "event_type": "OrderPaid",
            "version": 2,
            "at": "2026-03-01T12:00:02.000000Z",
            "actor": "alice",
            "request_id": "req-2",
            "data": {"order_id": order_id, "amount": 300},
        },
    ]
    staff = bearer(settings, "sam", "staff")
    assert client.get(f"/orders/{order_id}/history", headers=staff).status_code == 200
    assert client.get(f"/orders/{uuid.uuid4()}/history", headers=staff).status_code == 404


def test_history_owner_is_known_before_order_view_catches_up(
    client: Any, conn: Any, settings: Settings
) -> None:
    order_id = str(uuid.uuid4())
    add_history(conn, order_id, 1, "OrderPlaced", {"order_id": order_id, "customer_id": "alice"})
    ok = client.get(f"/orders/{order_id}/history", headers=bearer(settings, "alice", "customer"))
    assert ok.status_code == 200 and len(ok.json()) == 1
    other = client.get(f"/orders/{order_id}/history", headers=bearer(settings, "bob", "customer"))
    assert other.status_code == 404


def test_a_customer_id_with_a_nul_byte_is_a_404_not_a_server_error(
    client: Any, settings: Settings
) -> None:
    staff = bearer(settings, "sam", "staff")
    response = client.get("/customers/al%00ice/orders", headers=staff)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
