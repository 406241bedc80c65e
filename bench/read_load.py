"""Read-side load test: GET /products/{sku} (cache hit and miss), a paged list, and a bare
Starlette + msgspec endpoint, each with 32 keep-alive clients, in one run.

    python bench/read_load.py [--clients 32] [--seconds 5] [--repeats 3] [--products 1000]

Servers: ORDERDESK_DATABASE_URL / ORDERDESK_REDIS_URL when set, else embedded ones in a
temporary directory. The bench plays the projector: it fills ``read.product_view`` with
plain SQL. Three query API processes run side by side on the same uvicorn settings: the
normal one (cache on), one with ``ORDERDESK_CACHE_TTL=0`` (read-through cache off, so every
GET is a miss served from PostgreSQL) and the bare baseline. Scenarios are interleaved per
repetition so drift on a shared machine hits them all alike; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orderdesk import migrations  # noqa: E402
from orderdesk.database import connect  # noqa: E402
from orderdesk.servers import runtime_servers  # noqa: E402
from orderdesk.settings import Settings, load_settings, settings_env  # noqa: E402


@dataclasses.dataclass
class Result:
    scenario: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _client(
    port: int, paths: list[str], stop_at: float, latencies: list[float], errors: list[int]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    rng = random.Random()
    try:
        while time.perf_counter() < stop_at:
            path = paths[rng.randrange(len(paths))]
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(1)
            done += 1
    finally:
        writer.close()
    return done


async def _load(
    port: int, paths: list[str], clients: int, seconds: float
) -> tuple[int, list[float], int]:
    latencies: list[float] = []
    errors: list[int] = []
    stop_at = time.perf_counter() + seconds
    counts = await asyncio.gather(
        *(_client(port, paths, stop_at, latencies, errors) for _ in range(clients))
    )
    return sum(counts), latencies, len(errors)


def _run(coro: Any) -> Any:
    try:  # the load generator shares the machine: keep its own CPU use low
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def run_load(scenario: str, port: int, paths: list[str], clients: int, seconds: float) -> Result:
    _run(_load(port, paths, clients, 0.5))  # warm-up: connections, caches
    started = time.perf_counter()
    total, latencies, errors = _run(_load(port, paths, clients, seconds))
    return Result(scenario, total, time.perf_counter() - started, latencies, errors)


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"server on port {port} exited with {proc.returncode}; see its log (--keep-logs)"
            )
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[int]:
    port = _free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_port(port, proc)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _seed(settings: Settings, products: int) -> None:
    assert settings.database_url is not None
    migrations.upgrade(settings.database_url)
    with connect(settings.database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE read.product_view")
        conn.execute(
            "INSERT INTO read.product_view (sku, name, price, status, on_hand, reserved,"
            " units_sold, revenue, version, updated_at)"
            " SELECT 'SKU-' || lpad(i::text, 5, '0'), 'Product ' || i, 1000 + i, 'active',"
            " 100 + i %% 7, i %% 3, i %% 50, (i %% 50) * (1000 + i), 1 + i %% 9, now()"
            " FROM generate_series(1, %s) AS i",
            [products],
        )


def _page_paths(port: int, pages: int) -> list[str]:
    import json
    import urllib.request

    paths = ["/products?limit=20&sort=name"]
    while len(paths) < pages:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{paths[-1]}") as response:
            cursor = json.load(response)["next_cursor"]
        if cursor is None:
            break
        paths.append(f"/products?limit=20&sort=name&cursor={cursor}")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--products", type=int, default=1000)
    args = parser.parse_args()

    base = load_settings()
    with tempfile.TemporaryDirectory(prefix="orderdesk-bench-", ignore_cleanup_errors=True) as tmp:
        base = dataclasses.replace(
            base,
            data_dir=Path(tmp),
            embedded_pg_port=_free_port(),
            embedded_redis_port=_free_port(),
            log_level="WARNING",
        )
        with runtime_servers(base) as settings:
            _seed(settings, args.products)
            env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
            env.update(settings_env(settings))
            env_off = {**env, "ORDERDESK_CACHE_TTL": "0"}
            logs = Path(tmp)
            skus = [f"/products/SKU-{i:05d}" for i in range(1, args.products + 1)]
            with (
                _server(["-m", "orderdesk.cli", "query-api"], env, logs / "q.log") as cached,
                _server(["-m", "orderdesk.cli", "query-api"], env_off, logs / "q0.log") as nocache,
                _server(["-m", "bench.bare_app"], env, logs / "bare.log") as bare,
            ):
                _run(_load(cached, skus, 8, 1.0))  # fill the cache: later GETs are hits
                pages = _page_paths(cached, 50)
                scenarios = [
                    ("bare Starlette+msgspec", bare, skus),
                    ("GET /products/{sku} cache hit", cached, skus),
                    ("GET /products/{sku} cache miss", nocache, skus),
                    ("GET /products?sort=name (20/page, keyset)", cached, pages),
                ]
                results: dict[str, list[Result]] = {name: [] for name, _, _ in scenarios}
                for repeat in range(args.repeats):
                    for name, port, paths in scenarios:
                        result = run_load(name, port, paths, args.clients, args.seconds)
                        results[name].append(result)
                        print(
                            f"run {repeat + 1} {name}: {result.rps:.0f} req/s, "
                            f"p50 {result.pct(0.5):.2f} ms, p99 {result.pct(0.99):.2f} ms, "
                            f"errors {result.errors}",
                            flush=True,
                        )
    bare_rps = statistics.median(r.rps for r in results[scenarios[0][0]])
    print(f"\n{args.clients} clients, {args.seconds:g} s per run, medians of {args.repeats} runs")
    print("| scenario | req/s | p50 ms | p99 ms | vs bare |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        rps = statistics.median(r.rps for r in runs)
        p50 = statistics.median(r.pct(0.5) for r in runs)
        p99 = statistics.median(r.pct(0.99) for r in runs)
        print(f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {rps / bare_rps:.2f}x |")


if __name__ == "__main__":
    main()
