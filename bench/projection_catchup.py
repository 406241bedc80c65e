"""Projection benchmark: catch-up and rebuild throughput, worker RSS, end-to-end lag.

    python bench/projection_catchup.py [--events 1000000] [--runs 3] [--lag-seconds 20]

Uses ORDERDESK_DATABASE_URL / ORDERDESK_REDIS_URL when set, else the embedded servers.
Generates the events straight into a fresh database ``bench_projections`` with
INSERT ... SELECT generate_series (contract-shaped payloads: per order a StockReserved,
an OrderPlaced and an OrderPaid, 5 % also cancelled), then:

1. catch-up: a real ``orderdesk worker --threads 4`` from empty read tables to the head;
2. rebuild: ``orderdesk projections rebuild --all`` over the same log;
3. lag: relay + worker running, orders committed at 200/s; lag = commit -> the
   ``orderdesk_checkpoints`` notification of ``order_view`` covering that order's token.
Prints medians of ``--runs`` runs and peak RSS (psutil).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import configured_servers
from orderdesk import migrations
from orderdesk.database import libpq_url, with_database
from orderdesk.settings import Settings, settings_env

DB = "bench_projections"
SKUS = 1000

GENERATE = f"""
INSERT INTO write.event_log (event_id, stream_type, stream_id, stream_version, event_type,
                             schema_version, payload, metadata, recorded_at)
SELECT gen_random_uuid(), e.stream_type, e.stream_id, e.version, e.type, 1, e.payload,
       jsonb_build_object('actor', 'bench', 'correlation_id', 'bench-' || o.i),
       now() - make_interval(secs => (%(orders)s - o.i) * 2.0)
FROM (SELECT i, 'SKU-' || (i %% {SKUS}) AS sku, (i %% 5) + 1 AS qty, 100 + (i %% {SKUS}) AS price,
             md5(i::text)::uuid AS id
      FROM generate_series(%(lo)s::int, %(hi)s::int) AS i) AS o
CROSS JOIN LATERAL (VALUES
  (1, 'stock', 'stock:' || o.sku, o.i / {SKUS} + 2, 'StockReserved',
   jsonb_build_object('sku', o.sku, 'quantity', o.qty, 'order_id', o.id,
                      'on_hand', 100000000, 'reserved', o.qty)),
  (2, 'order', 'order:' || o.id, 1, 'OrderPlaced',
   jsonb_build_object('order_id', o.id, 'customer_id', 'c' || (o.i %% 5000),
     'lines', jsonb_build_array(jsonb_build_object('sku', o.sku, 'name', 'Product ' || o.sku,
              'quantity', o.qty, 'unit_price', o.price)), 'total', o.qty * o.price)),
  (3, 'order', 'order:' || o.id, 2, 'OrderPaid',
   jsonb_build_object('order_id', o.id, 'amount', o.qty * o.price)),
  (4, 'order', 'order:' || o.id, 3, 'OrderCancelled',
   jsonb_build_object('order_id', o.id, 'reason', 'bench', 'refund', o.qty * o.price,
     'previous_status', 'paid', 'lines', jsonb_build_array(jsonb_build_object('sku', o.sku,
     'name', 'Product ' || o.sku, 'quantity', o.qty, 'unit_price', o.price))))
) AS e(k, stream_type, stream_id, version, type, payload)
WHERE e.k < 4 OR o.i %% 20 = 0
ORDER BY o.i, e.k
"""

CATALOG = """
INSERT INTO write.event_log (event_id, stream_type, stream_id, stream_version, event_type,
                             schema_version, payload, metadata)
SELECT gen_random_uuid(), e.st, e.sid, 1, e.type, 1, e.payload, '{"actor": "bench"}'
FROM generate_series(0, %s - 1) AS i
CROSS JOIN LATERAL (VALUES
  (1, 'product', 'product:SKU-' || i, 'ProductAdded',
   jsonb_build_object('sku', 'SKU-' || i, 'name', 'Product SKU-' || i, 'price', 100 + i)),
  (2, 'stock', 'stock:SKU-' || i, 'StockReceived',
   jsonb_build_object('sku', 'SKU-' || i, 'quantity', 100000000, 'reference', null,
                      'on_hand', 100000000, 'reserved', 0))) AS e(k, st, sid, type, payload)
ORDER BY i, e.k
"""


def prepare(server_url: str, events: int) -> tuple[str, int]:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = with_database(server_url, DB)
    migrations.upgrade(url)
    orders = int(events / 3.05)
    started = time.monotonic()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(CATALOG, (SKUS,))
        chunk = 50_000
        for lo in range(1, orders + 1, chunk):
            with conn.transaction():
                conn.execute(
                    GENERATE, {"lo": lo, "hi": min(lo + chunk - 1, orders), "orders": orders}
                )
        conn.execute("VACUUM ANALYZE write.event_log")
        row = conn.execute("SELECT count(*) FROM write.event_log").fetchone()
    total = int(row[0]) if row else 0
    print(f"generated {total:,} events in {time.monotonic() - started:.1f}s", flush=True)
    return url, total


def reset_read(url: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(
            "TRUNCATE read.order_view, read.product_view, read.daily_sales, read.order_history,"
            " read.projection_state"
        )


def env_for(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    env.update(settings_env(settings))
    env["ORDERDESK_LOG_LEVEL"] = "WARNING"
    return env


def peak_rss(proc: subprocess.Popen[bytes], stop: threading.Event, out: list[int]) -> None:
    ps = psutil.Process(proc.pid)
    peak = 0
    while not stop.is_set() and proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.05)
    out.append(peak)


def caught_up(url: str) -> bool:
    with psycopg.connect(libpq_url(url)) as conn:
        head = conn.execute(
            "SELECT max(transaction_id)::text::bigint FROM write.event_log"
        ).fetchone()
        rows = conn.execute("SELECT checkpoint_tx FROM read.projection_state").fetchall()
    return len(rows) == 4 and head is not None and all(r[0] > head[0] for r in rows)


def run_catchup(settings: Settings, url: str) -> tuple[float, int]:
    reset_read(url)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderdesk.cli", "worker", "--threads", "4"],
        env=env_for(settings),
        stderr=subprocess.DEVNULL,
    )
    stop, rss = threading.Event(), list[int]()
    watcher = threading.Thread(target=peak_rss, args=(proc, stop, rss))
    watcher.start()
    try:
        while not caught_up(url):
            time.sleep(0.1)
        return time.monotonic() - started, 0
    finally:
        stop.set()
        watcher.join()
        proc.terminate()
        proc.wait(30)
        run_catchup.rss = rss[0] if rss else 0  # type: ignore[attr-defined]


def run_rebuild(settings: Settings) -> tuple[float, int, str]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orderdesk.cli", "projections", "rebuild", "--all"],
        env=env_for(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    stop, rss = threading.Event(), list[int]()
    watcher = threading.Thread(target=peak_rss, args=(proc, stop, rss))
    watcher.start()
    out, _ = proc.communicate()
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"rebuild failed with {proc.returncode}")
    return time.monotonic() - started, rss[0] if rss else 0, out.decode()


def run_lag(settings: Settings, url: str, seconds: float, rate: int) -> list[float]:
    """Commit orders at ``rate``/s with relay + worker running; lag to order_view's notify."""
    env = env_for(settings)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orderdesk.cli", name, *extra],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        for name, extra in (("relay", []), ("worker", ["--threads", "4"]))
    ]
    pending: list[tuple[int, int, float]] = []
    lags: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def observe() -> None:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("LISTEN orderdesk_checkpoints")
            while not done.is_set():
                # Collect first: the notifies() generator holds the connection's lock.
                notes = [n.payload for n in conn.notifies(timeout=0.2, stop_after=1)]
                if "order_view" in notes:
                    now = time.monotonic()
                    row = conn.execute(
                        "SELECT checkpoint_tx, checkpoint_pos FROM read.projection_state"
                        " WHERE name = 'order_view'"
                    ).fetchone()
                    assert row is not None
                    with lock:
                        keep = []
                        for tx, pos, at in pending:
                            if (row[0], row[1]) >= (tx, pos):
                                lags.append(now - at)
                            else:
                                keep.append((tx, pos, at))
                        pending[:] = keep

    observer = threading.Thread(target=observe)
    observer.start()
    try:
        time.sleep(3)  # let both processes start and catch up
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < seconds:
                n += 1
                oid = str(uuid.uuid4())
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO write.event_log (event_id, stream_type, stream_id,"
                        " stream_version, event_type, schema_version, payload, metadata)"
                        " VALUES (gen_random_uuid(), 'order', %s, 1, 'OrderPlaced', 1, %s, '{}')",
                        (
                            f"order:{oid}",
                            f'{{"order_id": "{oid}", "customer_id": "lag", "lines":'
                            ' [{"sku": "SKU-1", "name": "x", "quantity": 1, "unit_price": 101}],'
                            ' "total": 101}',
                        ),
                    )
                    row = conn.execute(
                        "SELECT transaction_id::text::bigint, position FROM write.event_log"
                        " WHERE stream_id = %s",
                        (f"order:{oid}",),
                    ).fetchone()
                committed = time.monotonic()
                assert row is not None
                with lock:
                    pending.append((row[0], row[1], committed))
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        observer.join()
        for proc in procs:
            proc.terminate()
            proc.wait(30)
    return lags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument(
        "--rebuild-only",
        action="store_true",
        help="measure only `rebuild --all` (no catch-up, lag)",
    )
    args = parser.parse_args()
    if args.rebuild_only:
        args.lag_seconds = 0
    with configured_servers() as resolved:
        assert resolved.database_url
        url, total = prepare(resolved.database_url, args.events)
        settings = dataclasses.replace(resolved, database_url=url, read_database_url=None)
        catchups, catch_rss = [], []
        for _ in range(0 if args.rebuild_only else args.runs):
            seconds, _ = run_catchup(settings, url)
            catchups.append(seconds)
            catch_rss.append(run_catchup.rss)  # type: ignore[attr-defined]
            print(
                f"catch-up: {seconds:.1f}s, worker peak RSS {catch_rss[-1] / 2**20:.0f} MiB",
                flush=True,
            )
        rebuilds, rebuild_rss = [], []
        for _ in range(args.runs):
            seconds, rss, out = run_rebuild(settings)
            rebuilds.append(seconds)
            rebuild_rss.append(rss)
            print(out.strip())
            print(f"rebuild --all: {seconds:.1f}s, peak RSS {rss / 2**20:.0f} MiB", flush=True)
        lags = run_lag(settings, url, args.lag_seconds, args.rate) if args.lag_seconds else []
    med_c = statistics.median(catchups) if catchups else float("nan")
    med_r = statistics.median(rebuilds)
    catch_rss = catch_rss or [0]
    print()
    print(f"events in log: {total:,}")
    print(
        f"catch-up (4 projections, worker --threads 4): median {med_c:.1f}s ="
        f" {total / med_c:,.0f} log events/s; worker peak RSS median"
        f" {statistics.median(catch_rss) / 2**20:.0f} MiB"
    )
    print(
        f"rebuild --all (4 projections, one pass over the log): median {med_r:.1f}s ="
        f" {total / med_r:,.0f} log events/s; peak RSS median"
        f" {statistics.median(rebuild_rss) / 2**20:.0f} MiB"
    )
    summary = {
        "catchup.eps": total / med_c,
        "rebuild.eps": total / med_r,
        "rebuild.s": med_r,
        "rss.mb": statistics.median(catch_rss) / 2**20,
        "rebuild.rss.mb": statistics.median(rebuild_rss) / 2**20,
    }
    if lags:
        lags.sort()
        p50 = lags[len(lags) // 2] * 1000
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000
        print(
            f"lag at {args.rate} orders/s over {args.lag_seconds:.0f}s: {len(lags)} orders,"
            f" p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        summary.update({"lag.p50.ms": p50, "lag.p99.ms": p99})
    # One JSON line last: bench/scenarios.py reads it.
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
