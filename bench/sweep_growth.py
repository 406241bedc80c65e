"""What one live sweep costs once the read tables have grown: a worker on a shop that has run
for a while.

    python -m bench.sweep_growth [--rows 200000] [--sweeps 40]

One pair of worker connections sweeps the projections as the worker does, first 30 times on
a fresh database (each sweep after one order placed and one paid, so every statement of a
sweep has been prepared and planned on nearly empty tables, as in the first minutes of a
deployment), then ``--rows`` orders and as many products are added to the read tables
(written directly: only their number matters), then ``--sweeps`` more sweeps of one order
placed and one paid each are timed. Prints one JSON object: the median and p90 of
milliseconds per sweep, and the rows of ``order_view`` and ``product_view`` read by
sequential scans per sweep. Uses ``ORDERDESK_DATABASE_URL`` / ``ORDERDESK_REDIS_URL`` when
set, else embedded servers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import psycopg
import redis

from bench.stack import configured_servers
from orderdesk import migrations
from orderdesk.database import connect, libpq_url, with_database
from projections.registry import PROJECTIONS
from projections.sweep import catch_up_all
from tests.eventlog import Shop, append

DB = "bench_sweeps"
WARM_UP = 30

_GROW_ORDERS = (
    "INSERT INTO read.order_view (order_id, customer_id, status, lines, total, placed_at,"
    " version) SELECT gen_random_uuid(), 'c' || i, 'placed', '[]', 100, now(), 1"
    " FROM generate_series(1, %s) AS i"
)
_GROW_PRODUCTS = (
    "INSERT INTO read.product_view (sku, name, price, status, on_hand, reserved, units_sold,"
    " revenue, version, updated_at) SELECT 'GROWN-' || i, 'p', 1, 'active', 0, 0, 0, 0, 1,"
    " now() FROM generate_series(1, %s) AS i"
)


def scanned_rows(conn: psycopg.Connection[Any]) -> int:
    """Rows of order_view and product_view read by sequential scans so far (this backend's
    counters flushed first, so the figure is exact)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    row = conn.execute(
        "SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables"
        " WHERE schemaname = 'read' AND relname IN ('order_view', 'product_view')"
    ).fetchone()
    return int(row[0]) if row else 0


def measure(url: str, redis_url: str, rows: int, sweeps: int) -> dict[str, float]:
    """Warm up on empty tables, grow them by ``rows``, time ``sweeps`` sweeps."""
    shop = Shop(seed=5)
    client = redis.Redis.from_url(redis_url)
    placed: list[str] = []
    with (
        connect(url, autocommit=True) as write,
        connect(url, autocommit=True) as read,
    ):

        def one_sweep() -> float:
            with write.transaction():
                append(write, shop.place(skus=["SKU-1", "SKU-2"]))
                placed.append(list(shop.orders)[-1])
                append(write, shop.pay(placed[len(placed) // 2]))
            started = time.perf_counter()
            catch_up_all(
                list(PROJECTIONS.values()),
                write,
                read,
                batch_size=100,
                max_retries=0,
                redis=client,
                max_seconds=60,
            )
            return time.perf_counter() - started

        with write.transaction():
            append(write, shop.add_product("SKU-1"))
            append(write, shop.add_product("SKU-2"))
        for _ in range(WARM_UP):
            one_sweep()
        read.execute(_GROW_ORDERS, (rows,))
        read.execute(_GROW_PRODUCTS, (rows,))
        before = scanned_rows(read)
        timings = sorted(one_sweep() for _ in range(sweeps))
        scanned = scanned_rows(read) - before
    client.close()
    return {
        "rows": rows,
        "sweeps": sweeps,
        "median_ms": round(statistics.median(timings) * 1000, 2),
        "p90_ms": round(timings[int(len(timings) * 0.9) - 1] * 1000, 2),
        "seq_rows_per_sweep": round(scanned / sweeps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--sweeps", type=int, default=40)
    args = parser.parse_args()
    with configured_servers() as resolved:
        assert resolved.database_url and resolved.redis_url
        with psycopg.connect(libpq_url(resolved.database_url), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DB}")
        url = with_database(resolved.database_url, DB)
        migrations.upgrade(url)
        print(json.dumps(measure(url, resolved.redis_url, args.rows, args.sweeps)))


if __name__ == "__main__":
    main()
