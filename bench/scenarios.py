"""The scenarios of one benchmark run; each call measures one repetition of one system.

Every function returns ``{figure key: value}`` for one repetition, or raises
:class:`Unavailable` with the reason (a script not written yet, a binary missing), which the
run reports instead of crashing. Scripts of their own (``bench/command_load.py``,
``bench/projection_catchup.py``, the baselines) run as subprocesses printing JSON.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.stack import BENCH_JWT_SECRET, Stack
from orderdesk.auth import mint_token
from orderdesk.database import connect
from orderdesk.settings import settings_env

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CLIENTS = 32


class Unavailable(RuntimeError):
    """This scenario cannot run here; the message says why."""


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How long and how big each scenario runs (``--quick`` shrinks all of it)."""

    repetitions: int = 3
    duration: float = 10.0
    lag_duration: float = 10.0
    lag_rates: tuple[int, ...] = (50, 200)
    search_rates: tuple[int, ...] = (100, 300, 400, 600, 800, 1200)
    es_events: int = 3000
    log_sizes: tuple[int, ...] = (250_000, 500_000, 1_000_000)
    products: int = 1000


QUICK = Sizes(
    repetitions=1,
    duration=3.0,
    lag_duration=3.0,
    lag_rates=(50, 200),
    search_rates=(),
    es_events=300,
    log_sizes=(2_000,),
    products=200,
)


def run_json(args: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> Any:
    """Run a script, return the JSON object on the last line of its stdout."""
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith("{")]
    if result.returncode != 0 or not lines:
        raise Unavailable(f"{args[0]} failed ({result.returncode}): {result.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


def stack_env(stack: Stack) -> dict[str, str]:
    """The environment that points a script at the stack's servers and secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    env.update(settings_env(stack.settings))
    return env


def _require(script: str) -> str:
    path = BENCH_DIR / script
    if not path.exists():
        raise Unavailable(f"bench/{script} is not there yet")
    return str(path)


# --- POST /orders -------------------------------------------------------------------------


def orders_orderdesk(stack: Stack, sizes: Sizes) -> dict[str, float]:
    """POST /orders, 32 clients, through bench/command_load.py."""
    out = run_json(
        [
            _require("command_load.py"),
            "--url",
            stack.command_url,
            "--seconds",
            str(sizes.duration),
            "--clients",
            str(CLIENTS),
            "--secret",
            BENCH_JWT_SECRET,
        ],
        env=stack_env(stack),
    )
    return {
        "orders.cps": out["commands_per_s"],
        "orders.p50": out["p50_ms"],
        "orders.p99": out["p99_ms"],
    }


def orders_raw(raw_url: str, sizes: Sizes) -> dict[str, float]:
    """The same POST /orders body against the raw psycopg endpoint, 32 clients."""
    bodies = [
        json.dumps({"lines": [{"sku": f"SKU-{i % 20}", "quantity": 1}]}).encode() for i in range(20)
    ]
    headers = (("Content-Type", "application/json"),)

    def request(i: int) -> loadgen.Request:
        return loadgen.Request("POST", "/orders", bodies[i % 20], headers)

    result = asyncio.run(
        loadgen.closed_loop(raw_url, request, concurrency=CLIENTS, duration=sizes.duration)
    )
    return {
        "raw.cps": result.rate,
        "raw.p50": loadgen.percentile(result.latencies_ms, 50) or 0.0,
        "raw.p99": loadgen.percentile(result.latencies_ms, 99) or 0.0,
    }


def _eventsourcing_baseline(stack: Stack, events: int, *extra: str) -> Any:
    """Run bench/baselines/eventsourcing_baseline.py on its database; its JSON answer."""
    return run_json(
        [
            "-m",
            "bench.baselines.eventsourcing_baseline",
            "--database-url",
            stack.database("bench_eventsourcing"),
            "--events",
            str(events),
            *extra,
        ]
    )


def eventsourcing(stack: Stack, sizes: Sizes) -> dict[str, float]:
    """The eventsourcing library: save (sequential, 4 threads) and read+decode rates."""
    out = _eventsourcing_baseline(stack, sizes.es_events)
    return {
        "es.save_seq": out["save_sequential_eps"],
        "es.save_4t": out["save_threads_eps"],
        "es.read": out["read_decode_eps"],
    }


def eventsourcing_read(stack: Stack, sizes: Sizes) -> dict[str, float]:
    """The eventsourcing library's read+decode rate alone (the rebuild's baseline)."""
    out = _eventsourcing_baseline(stack, 2 * sizes.es_events, "--read-only")
    return {"es.read": out["read_decode_eps"]}


def pgbench(stack: Stack, sizes: Sizes) -> dict[str, float]:
    """pgbench: one order row + one event row per transaction, 32 clients."""
    out = run_json(
        [
            "-m",
            "bench.baselines.pgbench",
            "--database-url",
            stack.database("bench_pgbench"),
            "--clients",
            str(CLIENTS),
            "--duration",
            str(max(2, int(sizes.duration))),
        ]
    )
    if "skipped" in out:
        raise Unavailable(out["skipped"])
    return {"pgbench.tps": out["tps"], "pgbench.lat": out["latency_avg_ms"]}


# --- end-to-end lag -----------------------------------------------------------------------


async def prepare_catalog(stack: Stack, skus: list[str]) -> None:
    """Create ``skus`` through the command API and stock each with a million units."""
    staff = mint_token(stack.settings, "bench-staff", ["staff"], 3600)
    host, port, _ = loadgen.split_url(stack.command_url)
    conn = loadgen.Connection(host, port)
    headers = (("Authorization", f"Bearer {staff}"), ("Content-Type", "application/json"))
    for sku in skus:
        body = json.dumps({"sku": sku, "name": f"Lag {sku}", "price": 999}).encode()
        created = await conn.send(loadgen.Request("POST", "/products", body, headers))
        if created.status != 201:
            raise Unavailable(f"could not add {sku}: {created.status} {created.body[:200]!r}")
        stocked = await conn.send(
            loadgen.Request("POST", f"/stock/{sku}/receipts", b'{"quantity": 1000000}', headers)
        )
        if stocked.status != 200:
            raise Unavailable(f"could not stock {sku}: {stocked.status} {stocked.body[:200]!r}")
    conn.close()


def visible_request(placed: dict[str, Any], token: str, *, wait_ms: int) -> loadgen.Request:
    """``GET /orders/{id}`` of a placed order, waiting up to ``wait_ms`` on its consistency
    token: answered once the order is visible to readers."""
    headers = (
        ("Authorization", f"Bearer {token}"),
        ("X-Consistency-Token", placed["token"]),
        ("X-Wait-Ms", str(wait_ms)),
    )
    return loadgen.Request("GET", f"/orders/{placed['id']}", b"", headers)


async def _lag(stack: Stack, rate: int, duration: float, tag: str) -> dict[str, float]:
    skus = [f"LAG-{tag}-{i}" for i in range(10)]
    await prepare_catalog(stack, skus)
    customers = [mint_token(stack.settings, f"lag-{i}", ["customer"], 3600) for i in range(32)]
    staff = mint_token(stack.settings, "lag-staff", ["staff"], 3600)
    host, port, _ = loadgen.split_url(stack.query_url)
    idle: list[loadgen.Connection] = []
    lags: list[float] = []
    failures = 0

    def place(i: int) -> loadgen.Request:
        body = json.dumps({"lines": [{"sku": skus[i % len(skus)], "quantity": 1}]}).encode()
        headers = (
            ("Authorization", f"Bearer {customers[i % 32]}"),
            ("Content-Type", "application/json"),
        )
        return loadgen.Request("POST", "/orders", body, headers)

    async def visible(response: loadgen.Response, committed: float) -> None:
        # The command has committed when its response arrives; the order is visible once
        # the query API answers a GET that waits on the command's consistency token.
        nonlocal failures
        if response.status != 201:
            return
        request = visible_request(json.loads(response.body), staff, wait_ms=10_000)
        conn = idle.pop() if idle else loadgen.Connection(host, port)
        try:
            try:
                got = await conn.send(request)
            except (OSError, asyncio.IncompleteReadError):
                # A kept-alive connection the server closed after its idle timeout (uvicorn:
                # 5 s) while it waited here after a burst: send reconnects; retry once, as
                # any HTTP client does for an idempotent GET.
                got = await conn.send(request)
        except (OSError, asyncio.IncompleteReadError):
            failures += 1
            return
        idle.append(conn)
        if got.status == 200:
            lags.append((loop.time() - committed) * 1000)
        else:
            failures += 1

    loop = asyncio.get_running_loop()
    # fixed_rate stamps arrival with perf_counter; convert to the loop clock via an offset.
    import time

    offset = loop.time() - time.perf_counter()

    async def on_response(response: loadgen.Response, arrived: float) -> None:
        await visible(response, arrived + offset)

    result = await loadgen.fixed_rate(
        stack.command_url, place, rate=rate, duration=duration, on_response=on_response
    )
    for conn in idle:
        conn.close()
    achieved = result.ok / result.seconds
    return {
        f"lag.p50@{rate}": loadgen.percentile(lags, 50) or 0.0,
        f"lag.p99@{rate}": loadgen.percentile(lags, 99) or 0.0,
        f"lag.achieved@{rate}": achieved,
        f"lag.failures@{rate}": float(
            failures + result.errors + len(result.latencies_ms) - result.ok
        ),
        f"lag.post_p99@{rate}": loadgen.percentile(result.latencies_ms, 99) or 0.0,
    }


def lag(stack: Stack, rate: int, duration: float, tag: str) -> dict[str, float]:
    """Commit → visible lag at a fixed ``rate`` of POST /orders for ``duration`` s."""
    return asyncio.run(_lag(stack, rate, duration, tag))


def sustained(figures: dict[str, float], rate: int) -> bool:
    """A rate is sustained when ≥ 95 % of orders were accepted on time and became visible
    with p99 lag and p99 command latency under one second, without failures."""
    return (
        figures[f"lag.achieved@{rate}"] >= 0.95 * rate
        and figures[f"lag.failures@{rate}"] == 0
        and figures[f"lag.p99@{rate}"] < 1000
        and figures[f"lag.post_p99@{rate}"] < 1000
    )


# --- reads ------------------------------------------------------------------------------


def seed_product_view(stack: Stack, products: int) -> list[str]:
    """Fill read.product_view with ``products`` rows (playing the projector); their skus."""
    assert stack.settings.database_url is not None
    with connect(stack.settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO read.product_view (sku, name, price, status, on_hand, reserved,"
            " units_sold, revenue, version, updated_at)"
            " SELECT 'RD-' || lpad(i::text, 5, '0'), 'Read product ' || i, 1000 + i, 'active',"
            " 100 + i %% 7, i %% 3, i %% 50, (i %% 50) * (1000 + i), 1, now()"
            " FROM generate_series(1, %s) AS i ON CONFLICT DO NOTHING",
            [products],
        )
    return [f"RD-{i:05d}" for i in range(1, products + 1)]


async def _page_paths(query_url: str, pages: int) -> list[str]:
    host, port, _ = loadgen.split_url(query_url)
    conn = loadgen.Connection(host, port)
    paths = ["/products?limit=20&sort=name"]
    while len(paths) < pages:
        page = await conn.send(loadgen.Request("GET", paths[-1]))
        cursor = json.loads(page.body).get("next_cursor")
        if cursor is None:
            break
        paths.append(f"/products?limit=20&sort=name&cursor={cursor}")
    conn.close()
    return paths


def page_paths(query_url: str, pages: int = 40) -> list[str]:
    """Paths of the first ``pages`` pages of the product list (keyset cursors)."""
    return asyncio.run(_page_paths(query_url, pages))


def get_load(base_url: str, paths: list[str], sizes: Sizes, prefix: str) -> dict[str, float]:
    """32 clients cycling through ``paths``: ``<prefix>.rps`` and ``<prefix>.p99``."""

    def request(i: int) -> loadgen.Request:
        return loadgen.Request("GET", paths[i % len(paths)])

    result = asyncio.run(
        loadgen.closed_loop(base_url, request, concurrency=CLIENTS, duration=sizes.duration)
    )
    if result.ok == 0:
        raise Unavailable(f"{base_url}{paths[0]}: no 2xx answer ({dict(result.statuses)})")
    return {
        f"{prefix}.rps": result.rate,
        f"{prefix}.p99": loadgen.percentile(result.latencies_ms, 99) or 0.0,
    }


# --- projections ------------------------------------------------------------------------


def parse_projection_output(text: str, events: int) -> dict[str, float]:
    """Figures from bench/projection_catchup.py's summary (JSON line, else its text lines).

    Rates are log events per second (each event read once), comparable with
    eventsourcing's read+decode rate.
    """
    for line in reversed(text.splitlines()):
        if line.strip().startswith("{"):
            out = json.loads(line)
            return {f"{k}@{events}": float(v) for k, v in out.items() if k in _PROJECTION_KEYS}
    total = re.search(r"events in log: ([\d,]+)", text)
    catchup = re.search(r"catch-up \(.*?\): median ([\d.]+)s .*?peak RSS median (\d+) MiB", text)
    rebuild = re.search(r"rebuild --all .*?: median ([\d.]+)s", text)
    if total is None or catchup is None or rebuild is None:
        raise Unavailable("bench/projection_catchup.py printed no summary")
    log_events = int(total.group(1).replace(",", ""))
    return {
        f"catchup.eps@{events}": log_events / float(catchup.group(1)),
        f"rss.mb@{events}": float(catchup.group(2)),
        f"rebuild.eps@{events}": log_events / float(rebuild.group(1)),
        f"rebuild.s@{events}": float(rebuild.group(1)),
    }


_PROJECTION_KEYS = ("catchup.eps", "rebuild.eps", "rebuild.s", "rss.mb")


def projection(stack: Stack, events: int) -> dict[str, float]:
    """Catch-up and rebuild over ``events`` generated events (bench/projection_catchup.py,
    one run, no lag phase: lag is measured through the HTTP APIs by :func:`lag`)."""
    script = _require("projection_catchup.py")
    result = subprocess.run(
        [sys.executable, script, "--events", str(events), "--runs", "1", "--lag-seconds", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=stack_env(stack),
        check=False,
    )
    if result.returncode != 0:
        raise Unavailable(f"projection_catchup.py failed: {result.stderr.strip()[-300:]}")
    return parse_projection_output(result.stdout, events)
