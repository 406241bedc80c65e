"""Concurrent orders against a real ``orderdesk command-api`` process and the real database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from orderdesk.settings import Settings
from tests.integration.write_side import command_api, snapshot, stock_levels
from tests.support import bearer


async def _setup(http: httpx.AsyncClient, settings: Settings, **units: int) -> None:
    staff = bearer(settings, "staff-1", "staff")
    for sku, quantity in units.items():
        created = await http.post(
            "/products", json={"sku": sku, "name": sku, "price": 100}, headers=staff
        )
        assert created.status_code == 201
        received = await http.post(
            f"/stock/{sku}/receipts", json={"quantity": quantity}, headers=staff
        )
        assert received.status_code == 200


def _run(
    settings: Settings, tmp_path: Path, units: dict[str, int], bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    with command_api(settings, tmp_path) as url:

        async def scenario() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=len(bodies))
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                await _setup(http, settings, **units)
                return await asyncio.gather(
                    *(
                        http.post(
                            "/orders",
                            json=body,
                            headers=bearer(settings, f"customer-{i}", "customer"),
                        )
                        for i, body in enumerate(bodies)
                    )
                )

        return asyncio.run(scenario())


def test_racing_orders_never_oversell(settings: Settings, tmp_path: Path) -> None:
    # 60 orders of 2 units race for 50 units: exactly 25 can succeed.
    bodies = [{"lines": [{"sku": "HOT", "quantity": 2}]} for _ in range(60)]
    responses = _run(settings, tmp_path, {"HOT": 50}, bodies)
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 25
    assert statuses.count(409) == 35
    assert all(r.json()["skus"] == ["HOT"] for r in responses if r.status_code == 409)
    assert stock_levels(settings.database_url or "", "HOT") == (50, 50)
    orders = snapshot(settings.database_url or "")[2]
    assert orders.count('"status":"placed"') == 25


def test_opposite_line_order_never_deadlocks(settings: Settings, tmp_path: Path) -> None:
    # Half the orders name A then B, half B then A: locking in arrival order would deadlock.
    forward = {"lines": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 1}]}
    backward = {"lines": [{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 1}]}
    bodies = [forward if i % 2 else backward for i in range(60)]
    responses = _run(settings, tmp_path, {"A": 40, "B": 1000}, bodies)
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 40 and statuses.count(409) == 20
    assert all(status < 500 for status in statuses)
    assert stock_levels(settings.database_url or "", "A") == (40, 40)
    assert stock_levels(settings.database_url or "", "B") == (1000, 40)
