"""What a rate-limit check costs the command API's process: CPU per check, through redis-py and
over the limiter's own connection (:mod:`orderdesk.redis_wire`), in the same run.

    python -m bench.rate_limit_cost [--concurrency 1] [--checks 500] [--repetitions 5]

``--concurrency`` callers each make ``--checks`` checks back to back (1: every check is its
own script call, as on a lightly loaded API; more: checks share calls). Prints one JSON
line per way with the median CPU microseconds per check over the repetitions (the two ways
alternate). Uses ``ORDERDESK_REDIS_URL`` when set, else an embedded Valkey.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from orderdesk.embedded import EmbeddedValkey, free_port
from orderdesk.ratelimit import TIMEOUT, RateLimiter
from orderdesk.redis_client import async_redis
from orderdesk.redis_wire import RedisWire, address_of
from orderdesk.settings import load_settings


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """The configured Redis, else a throwaway embedded Valkey."""
    configured = load_settings().redis_url
    if configured:
        yield configured
        return
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedValkey(Path(tmp) / "valkey", free_port(), persist=False)
        url = valkey.start()
        try:
            yield url
        finally:
            valkey.stop()


async def cpu_per_check(url: str, wired: bool, concurrency: int, checks: int) -> float:
    """CPU microseconds of this process per check (after one warm-up round)."""
    client = async_redis(url)
    address = address_of(url)
    wire = RedisWire(address, timeout=TIMEOUT) if wired and address is not None else None
    limiter = RateLimiter(client, limit=1_000_000_000, window=60, wire=wire)

    async def caller(n: int) -> None:
        for i in range(checks):
            await limiter.check(f"sub:{(n * 7 + i) % 100}")

    try:
        await asyncio.gather(*(caller(n) for n in range(concurrency)))
        started = time.process_time()
        await asyncio.gather(*(caller(n) for n in range(concurrency)))
        return (time.process_time() - started) / (concurrency * checks) * 1e6
    finally:
        limiter.close()
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    try:
        import uvloop  # the event loop the APIs run on under uvicorn[standard]

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of uvicorn[standard]
        run = asyncio.run
    samples: dict[str, list[float]] = {"redis-py": [], "wire": []}
    with redis_server() as url:
        for _ in range(args.repetitions):
            for way in samples:
                cost = run(cpu_per_check(url, way == "wire", args.concurrency, args.checks))
                samples[way].append(cost)
    for way, costs in samples.items():
        print(
            json.dumps(
                {
                    "way": way,
                    "concurrency": args.concurrency,
                    "cpu_us_per_check_median": round(statistics.median(costs), 1),
                    "min": round(min(costs), 1),
                    "max": round(max(costs), 1),
                }
            )
        )


if __name__ == "__main__":
    main()
