"""A live projector's cost per batch must not grow with the size of its read tables.

A worker keeps its connections for days, and psycopg prepares a statement once it has run
a few times; PostgreSQL then settles on one generic plan for it. A plan settled while the
read tables were still small (every fresh deployment) is a full scan, and it stays one
until something invalidates it: the batch would read every order to refresh a hundred.
"""

from __future__ import annotations

from typing import Any

import psycopg
import redis

from orderdesk.database import connect
from orderdesk.settings import Settings
from projections.registry import PROJECTIONS
from projections.sweep import catch_up_all
from tests.eventlog import Shop, append

GROWN = 20_000


def scanned_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Rows each read table has had read by sequential scans, as of now.

    The backend's counters reach the statistics view when it flushes them; forcing the
    flush of this connection's own counters makes the figures exact."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    rows = conn.execute(
        "SELECT relname, coalesce(seq_tup_read, 0) FROM pg_stat_user_tables"
        " WHERE schemaname = 'read' AND relname IN ('order_view', 'product_view')"
    ).fetchall()
    return {name: int(n) for name, n in rows}


def test_a_sweep_reads_only_its_rows_however_large_the_tables_have_grown(
    settings: Settings,
) -> None:
    assert settings.database_url
    shop = Shop(seed=31)
    client = redis.Redis.from_url(settings.redis_url or "")
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):

        def sweep() -> None:
            results = catch_up_all(
                list(PROJECTIONS.values()),
                write,
                read,
                batch_size=100,
                max_retries=0,
                redis=client,
                max_seconds=60,
            )
            assert all(r.outcome in ("applied", "idle") for r in results), results

        with write.transaction():
            append(write, shop.add_product("SKU-1"))
            append(write, shop.add_product("SKU-2"))
        # Far past psycopg's prepare threshold (5) and PostgreSQL's five custom plans: every
        # statement a sweep runs has settled on its plan while the tables hold a few rows.
        placed: list[str] = []
        for _ in range(15):
            with write.transaction():
                append(write, shop.place(skus=["SKU-1", "SKU-2"]))
                placed.append(list(shop.orders)[-1])
                append(write, shop.pay(placed[-1]))
            sweep()
        # Then the shop grows: many orders and products projected since (written directly;
        # only their number matters here).
        read.execute(
            "INSERT INTO read.order_view (order_id, customer_id, status, lines, total,"
            " placed_at, version) SELECT gen_random_uuid(), 'c' || i, 'placed', '[]', 100,"
            " now(), 1 FROM generate_series(1, %s) AS i",
            (GROWN,),
        )
        read.execute(
            "INSERT INTO read.product_view (sku, name, price, status, on_hand, reserved,"
            " units_sold, revenue, version, updated_at) SELECT 'GROWN-' || i, 'p', 1,"
            " 'active', 0, 0, 0, 0, 1, now() FROM generate_series(1, %s) AS i",
            (GROWN,),
        )
        before = scanned_rows(read)
        with write.transaction():
            append(write, shop.place(skus=["SKU-1", "SKU-2"]))
            append(write, shop.pay(placed[0]))
        sweep()
        after = scanned_rows(read)
    client.close()
    scanned = {name: after[name] - before[name] for name in after}
    # The batch touched one new order, one paid order and two products.
    assert scanned == {"order_view": 0, "product_view": 0}
