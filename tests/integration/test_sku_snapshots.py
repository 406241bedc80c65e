"""Orders decided from a process's sku snapshots, with a second process writing the same rows.

Two command API apps on one database play two replicas: replica A keeps snapshots of the
rows its orders read and wrote, replica B changes those rows behind its back. Whatever B
did, A's next order must come out as if A had read the database: no oversold stock, the
current price, no rejection the database would not make.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

import command_side.endpoint
from command_side.app import create_app
from command_side.postgres import PostgresUnitOfWork
from command_side.sku_snapshots import ProductRow, SkuSnapshot, SkuSnapshots, StockRow
from command_side.unit_of_work import EventMetadata
from orderdesk.database import libpq_url
from orderdesk.settings import Settings
from tests.integration.write_side import stock_levels, stock_up


@pytest.fixture
def replica_a(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def replica_b(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def snapshots_of(client: TestClient) -> SkuSnapshots:
    found: SkuSnapshots = client.app_state["sku_snapshots"]
    return found


def snapshot_counts(client: TestClient) -> dict[str, float]:
    """``orderdesk_sku_snapshots_total`` by result, from the app's /metrics."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "orderdesk_sku_snapshots_total":
                found[sample.labels["result"]] = sample.value
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
    assert snapshot_counts(replica_a) == {"hit": 5.0, "miss": 1.0, "stale": 0.0}


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
    assert snapshot_counts(replica_a)["stale"] == 1.0  # what an operator sees


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


def _lose_last_commit(database_url: str, order_id: str) -> None:
    """What a failover to an asynchronous standby, or a point-in-time restore, can do to
    the last commit: the order is gone and its stock row is back one version."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        conn.execute("DELETE FROM write.event_log WHERE stream_id = %s", (f"order:{order_id}",))
        conn.execute(
            "DELETE FROM write.event_log WHERE stream_id = 'stock:MUG' AND stream_version ="
            " (SELECT max(stream_version) FROM write.event_log WHERE stream_id = 'stock:MUG')"
        )
        conn.execute("DELETE FROM write.order_lines WHERE order_id = %s", (order_id,))
        conn.execute("DELETE FROM write.orders WHERE id = %s", (order_id,))
        conn.execute(
            "UPDATE write.stock_items SET reserved = reserved - 1, version = version - 1"
            " WHERE sku = 'MUG'"
        )


def test_a_version_that_came_back_with_other_values_is_not_trusted(
    replica_a: TestClient,
    replica_b: TestClient,
    settings: Settings,
    alice: dict[str, str],
) -> None:
    url = settings.database_url or ""
    stock_up(replica_a, settings, MUG=(450, 5))
    first = order(replica_a, alice, "MUG")
    assert first.status_code == 201  # A's snapshot: 5 on hand, 1 reserved, version 2
    _lose_last_commit(url, first.json()["id"])  # the database: 5, 0, version 1
    assert order(replica_b, alice, "MUG", 4).status_code == 201  # 5, 4: version 2 again
    refused = order(replica_a, alice, "MUG", 4)
    assert refused.status_code == 409, refused.text  # not 8 units sold of 5
    assert stock_levels(url, "MUG") == (5, 4)


def test_rejections_on_a_sold_out_sku_take_no_locks(
    replica_a: TestClient,
    settings: Settings,
    alice: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stock_up(replica_a, settings, MUG=(450, 1))
    assert order(replica_a, alice, "MUG").status_code == 201
    locking: list[bool] = []

    class Spy(PostgresUnitOfWork):
        async def __aenter__(self) -> Spy:
            locking.append(self.locking)
            await super().__aenter__()
            return self

    monkeypatch.setattr(command_side.endpoint, "PostgresUnitOfWork", Spy)
    assert [order(replica_a, alice, "MUG").status_code for _ in range(6)] == [409] * 6
    # Each rejection on a snapshot was checked by one more read, never under a row lock.
    assert not any(locking) and len(locking) <= 12


def test_a_lost_connection_forgets_every_snapshot(
    replica_a: TestClient, settings: Settings, alice: dict[str, str]
) -> None:
    stock_up(replica_a, settings, MUG=(450, 5), TEE=(1500, 5))
    assert order(replica_a, alice, "MUG").status_code == 201
    assert order(replica_a, alice, "TEE").status_code == 201
    snapshots = snapshots_of(replica_a)
    assert len(snapshots) == 2
    with psycopg.connect(libpq_url(settings.database_url or ""), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'orderdesk-command-api'"
        )
    # Whichever pooled connection the next save finds dead, nothing remembered survives it.
    statuses = [order(replica_a, alice, "MUG").status_code for _ in range(3)]
    assert 503 in statuses
    assert snapshots.get("TEE") is None
    assert stock_levels(settings.database_url or "", "MUG")[1] == 1 + statuses.count(201)


def test_a_deadlock_forgets_no_snapshot_of_another_sku(db_url: str) -> None:
    """A deadlock or a timeout is an operational error too, but the connection is fine
    and nothing was lost: the other skus' snapshots stay."""

    async def scenario() -> SkuSnapshots:
        snapshots = SkuSnapshots()
        snapshots.put("MUG", SkuSnapshot(ProductRow("Mug", 450, "active", 1), StockRow(5, 1, 2)))
        conn = await psycopg.AsyncConnection.connect(libpq_url(db_url))
        async with conn:
            meta = EventMetadata("req", "cause", "alice")
            with pytest.raises(psycopg.errors.DeadlockDetected):
                async with PostgresUnitOfWork(conn, meta, snapshots=snapshots):
                    await conn.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END $$"
                    )
        return snapshots

    assert asyncio.run(scenario()).get("MUG") is not None
