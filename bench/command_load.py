"""Load test for ``POST /orders`` against a running ``orderdesk command-api``.

    python bench/command_load.py --url http://127.0.0.1:8000 --seconds 10 --clients 32

Each client holds one keep-alive HTTP/1.1 connection and sends orders back to back (one
line, a random sku of ``--skus``, quantity 1, as a random one of 100 customers). Before the
run it creates the skus and stocks them through the API with a staff token minted from the
configured secret (``ORDERDESK_JWT_SECRET``, or ``--secret``). The client is a small raw
asyncio one rather than httpx, so the load generator steals as little CPU as possible from
the server on a small machine. Prints one JSON object: commands/s, p50/p99 latency, statuses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orderdesk.auth import mint_token
from orderdesk.settings import load_settings


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough protocol for JSON POSTs."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        return await self.send(request_bytes(self.host, path, body, token))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Send a prebuilt request; the status and body of the answer."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"content-length:")
        length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
        payload = await self.reader.readexactly(length)
        return int(head[9:12]), payload


def request_bytes(host: str, path: str, body: bytes, token: str) -> bytes:
    """A complete HTTP/1.1 POST (built ahead of the run so the client spends little CPU)."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def prepare(conn: Connection, staff: str, skus: list[str]) -> None:
    """Create and stock the benchmark skus (existing ones are only restocked)."""
    for sku in skus:
        await conn.post(
            "/products",
            json.dumps({"sku": sku, "name": f"Bench {sku}", "price": 999}).encode(),
            staff,
        )
        status, body = await conn.post(f"/stock/{sku}/receipts", b'{"quantity": 1000000}', staff)
        if status != 200:
            raise SystemExit(f"could not stock {sku}: {status} {body!r}")


async def client(
    conn: Connection,
    requests: list[bytes],
    deadline: float,
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    rng = random.Random()
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        status, _ = await conn.send(rng.choice(requests))
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1


async def main(args: argparse.Namespace) -> dict[str, object]:
    settings = load_settings()
    if args.secret:
        from dataclasses import replace

        settings = replace(settings, jwt_secret=args.secret)
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    staff = mint_token(settings, "bench-staff", ["staff"], 3600)
    tokens = [mint_token(settings, f"bench-customer-{i}", ["customer"], 3600) for i in range(100)]
    run = uuid.uuid4().hex[:6].upper()
    skus = [f"BENCH-{run}-{i}" for i in range(args.skus)]
    if not args.skip_setup:
        await prepare(Connection(host, port), staff, skus)

    rng = random.Random(7)
    requests = [
        request_bytes(
            host,
            "/orders",
            json.dumps({"lines": [{"sku": rng.choice(skus), "quantity": 1}]}).encode(),
            rng.choice(tokens),
        )
        for _ in range(500)
    ]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    started = time.perf_counter()
    deadline = started + args.seconds
    await asyncio.gather(
        *(
            client(Connection(host, port), requests, deadline, latencies, statuses)
            for _ in range(args.clients)
        )
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "commands": len(latencies),
        "commands_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--skus", type=int, default=20)
    parser.add_argument("--secret", help="JWT secret (default: the configured one)")
    parser.add_argument(
        "--skip-setup",
        action="store_true",
        help="do not create the skus first (for bench/baselines/raw_psycopg_app.py)",
    )
    try:
        import uvloop  # a faster event loop when installed (uvicorn[standard] brings it)

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
