"""Rows for the query-side tests, written straight into ``read.*`` with plain SQL.

The query side must not import the projections, so its tests play the projector: they
insert read rows and move ``projection_state`` checkpoints themselves.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from orderdesk.database import libpq_url

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection to the (read) database."""
    return psycopg.connect(libpq_url(url), autocommit=True)


def add_product(
    conn: psycopg.Connection[Any],
    sku: str,
    *,
    name: str | None = None,
    price: int = 1000,
    status: str = "active",
    on_hand: int = 10,
    reserved: int = 0,
    units_sold: int = 0,
    revenue: int = 0,
    version: int = 1,
    updated_at: datetime = BASE_TIME,
) -> None:
    conn.execute(
        "INSERT INTO read.product_view (sku, name, price, status, on_hand, reserved,"
        " units_sold, revenue, version, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        " ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, price = EXCLUDED.price,"
        " status = EXCLUDED.status, on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved,"
        " units_sold = EXCLUDED.units_sold, revenue = EXCLUDED.revenue,"
        " version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
        [
            sku,
            name or f"Product {sku}",
            price,
            status,
            on_hand,
            reserved,
            units_sold,
            revenue,
            version,
            updated_at,
        ],
    )


def add_order(
    conn: psycopg.Connection[Any],
    customer_id: str,
    *,
    order_id: str | None = None,
    status: str = "placed",
    placed_at: datetime = BASE_TIME,
    lines: list[dict[str, Any]] | None = None,
    version: int = 1,
    paid_at: datetime | None = None,
) -> str:
    order_id = order_id or str(uuid.uuid4())
    lines = lines or [
        {"sku": "A-1", "name": "Apple", "quantity": 2, "unit_price": 150, "line_total": 300}
    ]
    total = sum(line["line_total"] for line in lines)
    conn.execute(
        "INSERT INTO read.order_view (order_id, customer_id, status, lines, total, paid_amount,"
        " placed_at, paid_at, version) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        [
            order_id,
            customer_id,
            status,
            json.dumps(lines),
            total,
            total if paid_at else 0,
            placed_at,
            paid_at,
            version,
        ],
    )
    return order_id


def add_history(
    conn: psycopg.Connection[Any],
    order_id: str,
    version: int,
    event_type: str,
    data: dict[str, Any],
    *,
    at: datetime = BASE_TIME,
    actor: str | None = None,
    request_id: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO read.order_history (order_id, version, event_type, at, actor, request_id,"
        " data) VALUES (%s,%s,%s,%s,%s,%s,%s)",
        [
            order_id,
            version,
            event_type,
            at + timedelta(seconds=version),
            actor,
            request_id,
            json.dumps(data),
        ],
    )


def set_checkpoint(
    conn: psycopg.Connection[Any],
    name: str,
    tx: int,
    pos: int,
    *,
    notify: bool = True,
    state: str = "live",
    events_behind: int = 0,
    seconds_behind: float = 0.0,
    last_error: str | None = None,
) -> None:
    """Move a projection's checkpoint and NOTIFY, in one transaction, like the projector."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO read.projection_state (name, version, state, checkpoint_tx,"
            " checkpoint_pos, events_behind, seconds_behind, last_error)"
            " VALUES (%s, 1, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET"
            " state = EXCLUDED.state, checkpoint_tx = EXCLUDED.checkpoint_tx,"
            " checkpoint_pos = EXCLUDED.checkpoint_pos,"
            " events_behind = EXCLUDED.events_behind,"
            " seconds_behind = EXCLUDED.seconds_behind, last_error = EXCLUDED.last_error",
            [name, state, tx, pos, events_behind, seconds_behind, last_error],
        )
        if notify:
            conn.execute("SELECT pg_notify('orderdesk_checkpoints', %s)", [name])


def query_client(settings: Any) -> Any:
    """A TestClient on the query API (use as a context manager: it runs the lifespan)."""
    from starlette.testclient import TestClient

    from query_side.app import create_app

    return TestClient(create_app(settings))
