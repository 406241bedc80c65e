"""The library baseline: the PyPI ``eventsourcing`` package with its PostgreSQL persistence.

Measured on the same PostgreSQL server as orderdesk (its own database):

- save: one new aggregate with one event per ``Application.save``, sequential and from
  4 threads (a pool of 4 connections), events/s;
- read: the whole notification log, page by page, each notification decoded back into
  a domain event, events/s (what a projection rebuild must at least do).

Run: ``python -m bench.baselines.eventsourcing_baseline --database-url URL --events N``;
prints one JSON object. With ``--read-only`` only the read is measured (after saving
``N`` aggregates first if the log holds fewer events): ``python -m bench`` runs that
right beside each projection rebuild, so the two are compared in the same minutes.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from psycopg.conninfo import conninfo_to_dict

from orderdesk.database import libpq_url

PAGE = 1000


class BenchOrder(Aggregate):
    """A placed order, the shape of orderdesk's OrderPlaced: customer, lines and total."""

    def __init__(self, customer_id: str, lines: list[dict[str, Any]], total: int) -> None:
        self.customer_id = customer_id
        self.lines = lines
        self.total = total


class Orders(Application[Any]):
    """The eventsourcing application whose save and read rates are measured."""

    # The default section (page) of the notification log is 10; a reader catching up
    # pages with larger sections, as orderdesk's projector reads batches.
    log_section_size = PAGE


def application(database_url: str, pool_size: int) -> Orders:
    """An application on ``database_url`` (tables created on first use)."""
    params = conninfo_to_dict(libpq_url(database_url))
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname", "postgres")),
        "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(params.get("port", "5432")),
        "POSTGRES_USER": str(params.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(params.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
    }
    return Orders(env=env)


def _save(app: Orders, count: int) -> None:
    for i in range(count):
        lines = [{"sku": f"SKU-{i % 50}", "quantity": 1, "unit_price": 1999}]
        app.save(BenchOrder(customer_id=f"customer-{i % 32}", lines=lines, total=1999))


def save_rate(app: Orders, events: int, threads: int) -> float:
    """Events/s saving ``events`` new aggregates (one event each) from ``threads`` threads."""
    share = max(1, events // threads)
    workers = [threading.Thread(target=_save, args=(app, share)) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return share * threads / (time.perf_counter() - started)


def read_rate(app: Orders) -> tuple[float, int]:
    """Events/s reading the whole notification log and decoding each to a domain event."""
    count, start = 0, 1
    started = time.perf_counter()
    while True:
        page = app.notification_log.select(start, PAGE)
        for notification in page:
            app.mapper.to_domain_event(notification)
        count += len(page)
        if len(page) < PAGE:
            break
        start = page[-1].id + 1
    return count / (time.perf_counter() - started), count


def main() -> None:
    """Shell entry point: save sequentially, save with 4 threads, read back; JSON out."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--events", type=int, default=5000, help="aggregates saved per mode")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--read-only", action="store_true", help="measure the read only")
    args = parser.parse_args()
    app = application(args.database_url, pool_size=args.threads)
    if args.read_only:
        try:
            _, count = read_rate(app)
            if count < args.events:
                _save(app, args.events - count)
            read, count = read_rate(app)
        finally:
            app.close()
        print(json.dumps({"read_decode_eps": read, "events_read": count}))
        return
    try:
        _save(app, 50)  # warm-up: connections, tables, first-use costs
        sequential = save_rate(app, args.events, threads=1)
        threaded = save_rate(app, args.events, threads=args.threads)
        read, count = read_rate(app)
    finally:
        app.close()
    print(
        json.dumps(
            {
                "save_sequential_eps": sequential,
                "save_threads_eps": threaded,
                "threads": args.threads,
                "read_decode_eps": read,
                "events_read": count,
            }
        )
    )


if __name__ == "__main__":
    main()
