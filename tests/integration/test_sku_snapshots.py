"""Orders decided from a process's sku snapshots, with a second process writing the same rows.

Two command API apps on one database play two replicas: replica A keeps snapshots of the
rows its orders read and wrote, replica B changes those rows behind its back. Whatever B
did, A's next order must come out as if A had read the database: no oversold stock, the
current price, no rejection the database would not make.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from command_side.app import create_app
from command_side.sku_snapshots import SkuSnapshots
from orderdesk.settings import Settings
from tests.integration.write_side import stock_levels, stock_up
from tests.support import bearer


@pytest.fixture
def replica_a(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def replica_b(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def staff(settings: Settings) -> dict[str, str]:
    return bearer(settings, "staff-1", "staff")


@pytest.fixture
def alice(settings: Settings) -> dict[str, str]:
    return bearer(settings, "alice", "customer")


def snapshots_of(client: TestClient) -> SkuSnapshots:
    found: SkuSnapshots = client.app_state["sku_snapshots"]
    return found


def order(client: TestClient, headers: dict[str, str], sku: str, quantity: int = 1) -> Any:
    return client.post(
        "/orders", json={"lines": [{"sku": sku, "quantity": quantity}]}, headers=headers
    )


def test_one_process_s_orders_decide_from_its_snapshot_and_stop_at_the_stock(
    replica_a: TestClient, settings: Settings, alice: dict[str, str]
) -> None:
    stock_up(replica_a, settings, MUG=(450, 5))
    statuses = [order(replica_a, alice, "MUG").status_code for _ in range(6)]
    assert statuses == [201] * 5 + [409]
    assert stock_levels(settings.database_url or "", "MUG") == (5, 5)
    snapshots = snapshots_of(replica_a)
    # The first order read the rows; the next ones (and the rejection) decided from the
    # snapshot its predecessor's save left, and none was found stale.
    assert snapshots.hits == 5 and snapshots.stale == 0


def test_stock_another_process_reserved_is_never_sold_twice(
    replica_a: TestClient,
    replica_b: TestClient,
    settings: Settings,
    alice: dict[str, str],
) -> None:
    stock_up(replica_a, settings, MUG=(450, 5))
    assert order(replica_a, alice, "MUG").status_code == 201  # A's snapshot: 4 available
    assert order(replica_b, alice, "MUG", 4).status_code == 201  # B takes them
    refused = order(replica_a, alice, "MUG")
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "urn:orderdesk:problem:insufficient-stock"
    assert stock_levels(settings.database_url or "", "MUG") == (5, 5)
    assert snapshots_of(replica_a).stale == 1  # found out at the save


def test_a_price_changed_by_another_process_is_the_price_charged(
    replica_a: TestClient,
    replica_b: TestClient,
    settings: Settings,
    staff: dict[str, str],
    alice: dict[str, str],
) -> None:
    stock_up(replica_a, settings, MUG=(450, 5))
    assert order(replica_a, alice, "MUG").json()["total"] == 450
    changed = replica_b.patch("/products/MUG", json={"price": 500}, headers=staff)
    assert changed.status_code == 200, changed.text
    second = order(replica_a, alice, "MUG", 2)
    assert second.status_code == 201, second.text
    assert second.json()["total"] == 1000
    assert stock_levels(settings.database_url or "", "MUG") == (5, 3)


def test_a_sku_discontinued_by_another_process_is_refused(
    replica_a: TestClient,
    replica_b: TestClient,
    settings: Settings,
    staff: dict[str, str],
    alice: dict[str, str],
) -> None:
    stock_up(replica_a, settings, MUG=(450, 5))
    assert order(replica_a, alice, "MUG").status_code == 201
    assert replica_b.post("/products/MUG/discontinue", headers=staff).status_code == 200
    refused = order(replica_a, alice, "MUG")
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"] == "urn:orderdesk:problem:discontinued-sku"
    assert stock_levels(settings.database_url or "", "MUG") == (5, 1)


def test_a_refusal_on_a_snapshot_is_checked_against_the_database(
    replica_a: TestClient,
    replica_b: TestClient,
    settings: Settings,
    staff: dict[str, str],
    alice: dict[str, str],
) -> None:
    stock_up(replica_a, settings, MUG=(450, 1))
    assert order(replica_a, alice, "MUG").status_code == 201  # A's snapshot: none left
    received = replica_b.post("/stock/MUG/receipts", json={"quantity": 3}, headers=staff)
    assert received.status_code == 200, received.text
    placed = order(replica_a, alice, "MUG", 2)
    assert placed.status_code == 201, placed.text
    assert stock_levels(settings.database_url or "", "MUG") == (4, 3)


def test_a_locking_command_leaves_no_snapshot_behind(
    replica_a: TestClient, settings: Settings, alice: dict[str, str]
) -> None:
    stock_up(replica_a, settings, MUG=(450, 5))
    assert order(replica_a, alice, "MUG").status_code == 201
    keyed = replica_a.post(
        "/orders",
        json={"lines": [{"sku": "MUG", "quantity": 1}]},
        headers={**alice, "Idempotency-Key": "k-1"},
    )
    assert keyed.status_code == 201, keyed.text  # locking: its transaction commits later
    assert order(replica_a, alice, "MUG").status_code == 201
    assert stock_levels(settings.database_url or "", "MUG") == (5, 3)
    # The order after the keyed one read the rows afresh instead of failing its save.
    assert snapshots_of(replica_a).stale == 0
