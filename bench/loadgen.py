"""A small, cheap HTTP/1.1 load client: fixed concurrency (closed loop) or fixed rate (open loop).

It speaks HTTP/1.1 over raw asyncio streams with keep-alive instead of using a full client
library: on a 2-core machine the load generator shares the CPU with the servers it
measures, and a lean client leaves more of it to them. Every system under test (orderdesk
and its baselines) is driven by the same client, so the ratios stay fair.

Usable as a library (:func:`closed_loop`, :func:`fixed_rate`) and from the shell::

    python -m bench.loadgen --url http://127.0.0.1:8001/products/SKU-1 --concurrency 32 \
        --duration 10

which prints one JSON object: requests/s, p50/p99 in ms, status counts.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit


@dataclasses.dataclass(frozen=True)
class Request:
    """One HTTP request to send (path relative to the connection's host)."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Response:
    """Status, headers (lower-case names) and body of one response."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass
class LoadResult:
    """What one load phase measured."""

    seconds: float
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    errors: int = 0

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        """2xx answers per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, object]:
        """The JSON-friendly summary: rate of 2xx answers, latency percentiles, statuses."""
        return {
            "requests_per_s": self.rate,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "count": len(self.latencies_ms),
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def percentile(values: list[float], pct: float) -> float | None:
    """The ``pct`` percentile (inclusive method); None for no values."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self, request: Request) -> Response:
        """Send ``request`` and read its whole response (reconnecting if the server closed)."""
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None and self._writer is not None
        head = [f"{request.method} {request.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{name}: {value}" for name, value in request.headers]
        if request.body or request.method in {"POST", "PUT", "PATCH"}:
            head.append(f"Content-Length: {len(request.body)}")
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + request.body)
        try:
            return await self._read_response(self._reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise

    async def _read_response(self, reader: asyncio.StreamReader) -> Response:
        raw = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)

    def close(self) -> None:
        """Drop the connection (the next send reconnects)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def split_url(url: str) -> tuple[str, int, str]:
    """``(host, port, path)`` of an ``http://`` URL."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname or "127.0.0.1", parts.port or 80, path


async def closed_loop(
    base_url: str,
    make_request: Callable[[int], Request],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
) -> LoadResult:
    """``concurrency`` clients each send the next request as soon as the last one answered.

    Requests during the first ``warmup`` seconds are sent but not counted.
    """
    host, port, _ = split_url(base_url)
    started = time.perf_counter()
    measure_from = started + warmup
    stop_at = measure_from + duration
    result = LoadResult(seconds=duration)
    counter = iter(range(1 << 62))

    async def client() -> None:
        conn = Connection(host, port)
        while (now := time.perf_counter()) < stop_at:
            request = make_request(next(counter))
            try:
                response = await conn.send(request)
            except (OSError, asyncio.IncompleteReadError):
                if now >= measure_from:
                    result.errors += 1
                continue
            if now >= measure_from:
                result.latencies_ms.append((time.perf_counter() - now) * 1000)
                result.statuses[response.status] += 1
        conn.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return result


async def fixed_rate(
    base_url: str,
    make_request: Callable[[int], Request],
    *,
    rate: float,
    duration: float,
    on_response: Callable[[Response, float], Coroutine[Any, Any, None]] | None = None,
    max_in_flight: int = 256,
) -> LoadResult:
    """Send ``rate`` requests per second for ``duration`` s, whatever the server's pace.

    Open loop: request i is due at ``i / rate``; latency counts from when it was due, so a
    slow server cannot hide its queueing (no coordinated omission). ``on_response`` gets
    each response and the monotonic time it arrived (used to measure end-to-end lag).
    """
    host, port, _ = split_url(base_url)
    idle: list[Connection] = []
    in_flight = asyncio.Semaphore(max_in_flight)
    result = LoadResult(seconds=duration)
    follow_ups: list[asyncio.Task[None]] = []
    start = time.perf_counter()

    async def one(i: int, due: float) -> None:
        async with in_flight:
            conn = idle.pop() if idle else Connection(host, port)
            try:
                response = await conn.send(make_request(i))
            except (OSError, asyncio.IncompleteReadError):
                result.errors += 1
                return
            arrived = time.perf_counter()
            idle.append(conn)
            result.latencies_ms.append((arrived - due) * 1000)
            result.statuses[response.status] += 1
            if on_response is not None:
                follow_ups.append(asyncio.create_task(on_response(response, arrived)))

    tasks = []
    total = int(rate * duration)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    await asyncio.gather(*follow_ups)
    result.seconds = max(time.perf_counter() - start, duration)
    for conn in idle:
        conn.close()
    return result


def main() -> None:
    """Shell entry point: a closed-loop run against one URL, JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="", help="request body (JSON text)")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    _, _, path = split_url(args.url)
    headers = tuple((n.strip(), v.strip()) for n, _, v in (h.partition(":") for h in args.header))
    if args.body:
        headers += (("Content-Type", "application/json"),)
    request = Request(args.method.upper(), path, args.body.encode(), headers)
    result = asyncio.run(
        closed_loop(
            args.url,
            lambda _i: request,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
        )
    )
    print(json.dumps(result.summary()))


if __name__ == "__main__":
    main()
