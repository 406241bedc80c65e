"""What one optimistic order of one line costs the command side, with and without its sku
snapshot: client CPU, PostgreSQL backend CPU and wall time per order.

    python -m bench.order_path [--orders 1000] [--rounds 5]

One connection places orders back to back through :class:`PostgresUnitOfWork` the way the
command endpoint's first attempt does (``locking=False``: read or snapshot, decide, one
save statement). The two ways alternate ``--rounds`` times in the same process, so drift on
a shared machine hits both alike; "reading" reads the rows from PostgreSQL every time (the
endpoint's ``fresh`` attempt). Prints one JSON line per way with every round's figures and
their medians. Uses ``ORDERDESK_DATABASE_URL`` when set (a scratch database: it adds a
product), else an embedded PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

from command_side.domain.catalog import Product
from command_side.domain.orders import place_order
from command_side.postgres import PostgresUnitOfWork
from command_side.sku_snapshots import SkuSnapshots
from command_side.unit_of_work import EventMetadata
from orderdesk import migrations
from orderdesk.database import libpq_url
from orderdesk.settings import load_settings

META = EventMetadata("bench", "bench", "bench-customer")
SKU = "BENCH-ORDER-PATH"
_TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def database() -> Iterator[str]:
    """The configured database, else a throwaway embedded PostgreSQL, migrated."""
    configured = load_settings().database_url
    if configured:
        yield configured
        return
    from orderdesk.embedded import EmbeddedPostgres, free_port

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", free_port())
        url = server.start()
        try:
            migrations.upgrade(url, "head")
            yield url
        finally:
            server.stop()


def _backend_cpu(pid: int) -> float:
    """User + system seconds of a PostgreSQL backend (``/proc``, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


async def _setup(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        async with PostgresUnitOfWork(conn, META) as uow:
            if await uow.get_product(SKU) is None:
                uow.add_product(Product.add(SKU, "Order path", 450))
                await uow.save()
        async with PostgresUnitOfWork(conn, META) as uow:
            item = await uow.get_stock_item(SKU)
            assert item is not None
            item.receive(10**9)
            await uow.save()


async def measure(url: str, orders: int, rounds: int) -> dict[str, list[dict[str, float]]]:
    """Per way ("snapshot", "reading"), one ``{client_us, backend_us, wall_us}`` per round."""
    await _setup(url)
    snapshots = SkuSnapshots()
    results: dict[str, list[dict[str, float]]] = {"snapshot": [], "reading": []}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        pid = int(row[0])

        async def one(fresh: bool) -> None:
            async with PostgresUnitOfWork(
                conn, META, locking=False, snapshots=snapshots, fresh=fresh
            ) as uow:
                products, stock = await uow.get_for_order([SKU])
                order_id = str(uuid.uuid4())
                uow.add_order(place_order(order_id, "bench", [(SKU, 1)], products, stock))
                await uow.save()

        for way in results:  # warm-up: prepared statements, caches
            for _ in range(min(orders, 200)):
                await one(way == "reading")
        for _ in range(rounds):
            for way in results:
                cpu, backend, wall = time.process_time(), _backend_cpu(pid), time.perf_counter()
                for _ in range(orders):
                    await one(way == "reading")
                results[way].append(
                    {
                        "client_us": (time.process_time() - cpu) / orders * 1e6,
                        "backend_us": (_backend_cpu(pid) - backend) / orders * 1e6,
                        "wall_us": (time.perf_counter() - wall) / orders * 1e6,
                    }
                )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with database() as url:
        results = asyncio.run(measure(libpq_url(url), args.orders, args.rounds))
    for way, rounds in results.items():
        medians = {f"{k}_median": statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(json.dumps({"way": way, "orders": args.orders, **medians, "rounds": rounds}))


if __name__ == "__main__":
    main()
