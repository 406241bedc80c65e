"""Helpers for the command API tests: the write database's whole state, staff setup calls."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from starlette.testclient import TestClient

from orderdesk.database import libpq_url
from orderdesk.settings import Settings
from tests.support import Process, bearer, free_port, wait_for_port

SNAPSHOT = """
SELECT (SELECT coalesce(json_agg(p ORDER BY sku), '[]') FROM write.products p)::text,
       (SELECT coalesce(json_agg(s ORDER BY sku), '[]') FROM write.stock_items s)::text,
       (SELECT coalesce(json_agg(o ORDER BY id), '[]') FROM write.orders o)::text,
       (SELECT coalesce(json_agg(l ORDER BY order_id, line_no), '[]')
          FROM write.order_lines l)::text,
       (SELECT count(*) FROM write.event_log),
       (SELECT count(*) FROM write.idempotency_keys)
"""


def snapshot(database_url: str) -> tuple[Any, ...]:
    """Every aggregate row and the event count: equal snapshots mean nothing changed."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(SNAPSHOT).fetchone()
    assert row is not None
    return tuple(row)


def stock_levels(database_url: str, sku: str) -> tuple[int, int]:
    """``(on_hand, reserved)`` of ``sku`` in the write database."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT on_hand, reserved FROM write.stock_items WHERE sku = %s", (sku,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def stock_up(client: TestClient, settings: Settings, **levels: tuple[int, int]) -> None:
    """Create products ``sku=(price, units)`` through the API, as staff."""
    staff = bearer(settings, "staff-1", "staff")
    for sku, (price, units) in levels.items():
        created = client.post(
            "/products", json={"sku": sku, "name": f"Product {sku}", "price": price}, headers=staff
        )
        assert created.status_code == 201, created.text
        if units:
            received = client.post(
                f"/stock/{sku}/receipts", json={"quantity": units}, headers=staff
            )
            assert received.status_code == 200, received.text


@contextlib.contextmanager
def command_api(settings: Settings, log_dir: Path) -> Iterator[str]:
    """A real ``orderdesk command-api`` process on a free port; yields its base URL."""
    port = free_port()
    process = Process(["command-api", "--port", str(port)], settings, log_dir / "command-api.log")
    try:
        wait_for_port(port, process.proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
