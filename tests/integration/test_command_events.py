"""What a command leaves in ``write.event_log``: metadata, token, one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from command_side.app import create_app
from orderdesk.database import libpq_url
from orderdesk.settings import Settings
from shared_contracts.events import decode_payload
from shared_contracts.tokens import LogPoint, decode_token
from tests.integration.write_side import stock_up
from tests.support import bearer

EVENTS = """
SELECT transaction_id::text::bigint, position, stream_id, stream_version, event_type,
       schema_version, payload::text, metadata
FROM write.event_log ORDER BY transaction_id, position
"""


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        stock_up(test_client, settings, MUG=(450, 10), TEE=(1500, 5))
        yield test_client


def _events(settings: Settings) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(settings.database_url or "")) as conn:
        return [tuple(row) for row in conn.execute(EVENTS).fetchall()]


def test_order_events_carry_metadata_and_token(client: TestClient, settings: Settings) -> None:
    before = len(_events(settings))
    response = client.post(
        "/orders",
        json={"lines": [{"sku": "TEE", "quantity": 1}, {"sku": "MUG", "quantity": 2}]},
        headers={
            **bearer(settings, "alice", "customer"),
            "X-Request-ID": "req-42",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        },
    )
    assert response.status_code == 201
    new = _events(settings)[before:]
    assert [(row[2], row[4]) for row in new] == [
        ("stock:MUG", "StockReserved"),
        ("stock:TEE", "StockReserved"),
        (f"order:{response.json()['id']}", "OrderPlaced"),
    ]
    # One command, one transaction: every event has the same transaction id.
    assert len({row[0] for row in new}) == 1
    metadata = [row[7] for row in new]
    assert all(m["correlation_id"] == "req-42" and m["actor"] == "alice" for m in metadata)
    assert all(m["traceparent"].startswith("00-0af76519") for m in metadata)
    assert len({m["causation_id"] for m in metadata}) == 1  # one cause: this command
    # The token names the command's last event in reading order.
    assert decode_token(response.json()["token"]) == LogPoint(new[-1][0], new[-1][1])
    placed = decode_payload(new[-1][4], new[-1][5], new[-1][6])
    assert placed.total == 2400  # type: ignore[union-attr]


def test_each_command_has_its_own_causation(client: TestClient, settings: Settings) -> None:
    staff = bearer(settings, "staff-1", "staff")
    client.post("/stock/MUG/receipts", json={"quantity": 1}, headers=staff)
    client.post("/stock/MUG/receipts", json={"quantity": 1}, headers=staff)
    last_two = _events(settings)[-2:]
    assert last_two[0][7]["causation_id"] != last_two[1][7]["causation_id"]
    assert all(row[7]["actor"] == "staff-1" for row in last_two)
    # Without X-Request-ID the generated id is still recorded (and echoed).
    assert all(row[7]["correlation_id"] for row in last_two)


def test_rows_and_events_agree(client: TestClient, settings: Settings) -> None:
    alice = bearer(settings, "alice", "customer")
    order_id = client.post(
        "/orders", json={"lines": [{"sku": "MUG", "quantity": 1}]}, headers=alice
    ).json()["id"]
    paid = client.post(f"/orders/{order_id}/payment", json={"amount": 450}, headers=alice)
    with psycopg.connect(libpq_url(settings.database_url or "")) as conn:
        rows = conn.execute(
            "SELECT o.version, (SELECT max(stream_version) FROM write.event_log"
            " WHERE stream_id = 'order:' || o.id::text) FROM write.orders o"
        ).fetchall()
        stock = conn.execute(
            "SELECT s.version, (SELECT max(stream_version) FROM write.event_log"
            " WHERE stream_id = 'stock:' || s.sku) FROM write.stock_items s"
        ).fetchall()
    assert rows == [(2, 2)] and paid.json()["version"] == 2
    assert all(version == latest for version, latest in stock)


def test_seed_fills_through_the_handlers(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from command_side.seed import seed

    assert seed(settings, orders=20) == 0
    assert "12 products added" in capsys.readouterr().out
    assert seed(settings, orders=5) == 0
    assert "12 products skipped" in capsys.readouterr().out
    with psycopg.connect(libpq_url(settings.database_url or "")) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'shipped') FROM write.orders"
        ).fetchone()
        bad = conn.execute(
            "SELECT count(*) FROM write.stock_items WHERE reserved < 0 OR reserved > on_hand"
        ).fetchone()
    assert row is not None and row[0] == 25 and row[1] > 0
    assert bad == (0,)
