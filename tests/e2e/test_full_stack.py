"""Write API → relay → worker → read API through real processes (``orderdesk dev``)."""

from __future__ import annotations

import signal
from typing import Any

import httpx

from tests.e2e.conftest import Stack
from tests.support import bearer, poll_until


def _command(
    client: httpx.Client,
    method: str,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    expected: int = 200,
) -> dict[str, Any]:
    response = client.request(method, url, json=body, headers=headers)
    assert response.status_code == expected, response.text
    result: dict[str, Any] = response.json()
    return result


def _read(client: httpx.Client, url: str, headers: dict[str, str], token: str) -> dict[str, Any]:
    response = client.get(
        url, headers={**headers, "X-Consistency-Token": token, "X-Wait-Ms": "10000"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_order_life_cycle_as_the_read_api_reports_it(stack: Stack) -> None:
    staff = bearer(stack.settings, "staff-1", "staff")
    admin = bearer(stack.settings, "admin-1", "admin")
    alice = bearer(stack.settings, "alice", "customer")
    cmd = httpx.Client(base_url=stack.command_url, timeout=15)
    qry = httpx.Client(base_url=stack.query_url, timeout=15)

    _command(cmd, "POST", "/products", staff, {"sku": "MUG-1", "name": "Mug", "price": 1200}, 201)
    _command(cmd, "POST", "/products", staff, {"sku": "TEA-1", "name": "Tea", "price": 450}, 201)
    _command(cmd, "POST", "/stock/MUG-1/receipts", staff, {"quantity": 10})
    _command(cmd, "POST", "/stock/TEA-1/receipts", staff, {"quantity": 5})

    placed = _command(
        cmd,
        "POST",
        "/orders",
        alice,
        {"lines": [{"sku": "MUG-1", "quantity": 2}, {"sku": "TEA-1", "quantity": 1}]},
        201,
    )
    assert placed["total"] == 2 * 1200 + 450
    order_id = placed["id"]
    # The product is renamed after the order: the order keeps the name it was placed with.
    _command(cmd, "PATCH", "/products/MUG-1", staff, {"name": "Big mug"})
    paid = _command(cmd, "POST", f"/orders/{order_id}/payment", alice, {"amount": placed["total"]})
    shipped = _command(cmd, "POST", f"/orders/{order_id}/shipment", staff, {})

    other = _command(
        cmd, "POST", "/orders", alice, {"lines": [{"sku": "TEA-1", "quantity": 3}]}, 201
    )
    cancelled = _command(
        cmd, "POST", f"/orders/{other['id']}/cancellation", alice, {"reason": "changed my mind"}
    )
    assert cancelled["refund"] == 0

    order = _read(qry, f"/orders/{order_id}", alice, shipped["token"])
    assert order["status"] == "shipped"
    assert order["paid_amount"] == placed["total"]
    assert order["lines"][0] == {
        "sku": "MUG-1",
        "name": "Mug",
        "quantity": 2,
        "unit_price": 1200,
        "line_total": 2400,
    }
    assert order["placed_at"] and order["paid_at"] and order["shipped_at"]
    assert order["version"] == shipped["version"] > paid["version"]

    mug = _read(qry, "/products/MUG-1", {}, cancelled["token"])
    assert (mug["name"], mug["on_hand"], mug["reserved"], mug["available"]) == ("Big mug", 8, 0, 8)
    assert (mug["units_sold"], mug["revenue"]) == (2, 2400)
    tea = _read(qry, "/products/TEA-1", {}, cancelled["token"])
    # The cancelled order released its 3 units and does not count as sold.
    assert (tea["on_hand"], tea["reserved"], tea["units_sold"], tea["revenue"]) == (4, 0, 1, 450)

    cancelled_view = _read(qry, f"/orders/{other['id']}", staff, cancelled["token"])
    assert cancelled_view["status"] == "cancelled" and cancelled_view["cancelled_at"]

    history = qry.get(
        f"/orders/{order_id}/history",
        headers={**alice, "X-Consistency-Token": shipped["token"], "X-Wait-Ms": "10000"},
    )
    assert history.status_code == 200, history.text
    assert [h["event_type"] for h in history.json()] == ["OrderPlaced", "OrderPaid", "OrderShipped"]
    assert all(h["actor"] for h in history.json())

    mine = _read(qry, "/customers/alice/orders", alice, cancelled["token"])
    assert [o["id"] for o in mine["items"]] == [other["id"], order_id]

    top = _read(qry, "/stats/top-products?by=units", staff, cancelled["token"])
    assert [(t["sku"], t["units_sold"]) for t in top][:2] == [("MUG-1", 2), ("TEA-1", 1)]

    def all_live() -> list[dict[str, Any]] | None:
        response = qry.get("/projections", headers=admin)
        rows: list[dict[str, Any]] = response.json()
        return rows if rows and all(r["state"] == "live" for r in rows) else None

    names = {row["name"] for row in poll_until(all_live, timeout=10)}
    assert names == {"order_view", "product_view", "daily_sales", "order_history"}


def test_dev_stops_every_process_on_ctrl_c(stack: Stack) -> None:
    import psutil

    children = psutil.Process(stack.process.proc.pid).children(recursive=True)
    assert len(children) >= 4
    stack.process.signal(signal.SIGINT)
    assert stack.process.proc.wait(30) == 0
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"still running after Ctrl-C: {[p.pid for p in alive]}"
