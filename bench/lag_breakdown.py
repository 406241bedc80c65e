"""Where commit → visible lag goes: one stage per hop, from the processes' own log lines.

    python -m bench.lag_breakdown --rate 50 --seconds 4

Brings up a fresh stack (``bench.stack``) logging at INFO, places orders at a fixed rate,
each with its own ``X-Request-ID``, and waits for each one through the query API with its
consistency token, as ``python -m bench``'s lag scenario does (but on a new connection per
order, so its figures are a little higher). Then it reads the relay's "relay woke
projectors" and the worker's "event applied" lines, which name the request ids they
carried, and prints p50/p90/p99 of each stage:

- ``post``: the command's round trip;
- ``to relay``: response → the relay's wakeup line (NOTIFY, coalescing gap, enqueue);
- ``to applied``: → the worker's ``order_view`` batch committed (broker, sweep);
- ``to visible``: → the GET answered (checkpoint NOTIFY to the query API, the read);
- ``lag``: response → GET answered, the sum of the last three.

Log times have millisecond resolution.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import tempfile
import time
import uuid
from pathlib import Path

from bench import loadgen, scenarios
from bench.stack import Stack, running_stack
from orderdesk.auth import mint_token

STAGES = ("post", "to relay", "to applied", "to visible", "lag")


async def place_and_wait(stack: Stack, rate: int, seconds: float) -> dict[str, tuple[float, ...]]:
    """request id → (sent, answered, visible) wall-clock times of each order."""
    staff = mint_token(stack.settings, "breakdown-staff", ["staff"], 3600)
    customer = mint_token(stack.settings, "breakdown-customer", ["customer"], 3600)
    host, port, _ = loadgen.split_url(stack.command_url)
    query_host, query_port, _ = loadgen.split_url(stack.query_url)
    skus = [f"LB-{i}" for i in range(5)]
    await scenarios.prepare_catalog(stack, skus)
    times: dict[str, tuple[float, ...]] = {}

    async def one(i: int) -> None:
        request_id = uuid.uuid4().hex
        body = json.dumps({"lines": [{"sku": skus[i % len(skus)], "quantity": 1}]}).encode()
        headers = (
            ("Authorization", f"Bearer {customer}"),
            ("Content-Type", "application/json"),
            ("X-Request-ID", request_id),
        )
        command, query = loadgen.Connection(host, port), loadgen.Connection(query_host, query_port)
        try:
            sent = time.time()
            placed = await command.send(loadgen.Request("POST", "/orders", body, headers))
            answered = time.time()
            if placed.status != 201:
                return
            wait = scenarios.visible_request(json.loads(placed.body), staff, wait_ms=5000)
            got = await query.send(wait)
            if got.status == 200:
                times[request_id] = (sent, answered, time.time())
        finally:
            command.close()
            query.close()

    tasks = []
    for i in range(int(rate * seconds)):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    return times


def _when(line: dict[str, object]) -> float:
    stamp = str(line["time"]).replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(stamp).timestamp()


def first_seen(log: Path, message: str, projection: str | None = None) -> dict[str, float]:
    """request id → time of the first ``message`` line (of ``projection``) naming it."""
    seen: dict[str, float] = {}
    for text in log.read_text().splitlines():
        line = json.loads(text)
        if line.get("message") != message:
            continue
        if projection is not None and line.get("projection") != projection:
            continue
        for request_id in line.get("request_ids") or []:
            seen.setdefault(request_id, _when(line))
    return seen


def stages(work_dir: Path, times: dict[str, tuple[float, ...]]) -> dict[str, list[float]]:
    """Each stage's durations (ms) over the orders that every log line names."""
    relay = first_seen(work_dir / "logs" / "relay.log", "relay woke projectors")
    applied = first_seen(work_dir / "logs" / "worker.log", "event applied", "order_view")
    out: dict[str, list[float]] = {name: [] for name in STAGES}
    for request_id, (sent, answered, visible) in times.items():
        if request_id not in relay or request_id not in applied:
            continue
        marks = (sent, answered, relay[request_id], applied[request_id], visible)
        for name, start, end in zip(STAGES, marks, marks[1:], strict=False):
            out[name].append((end - start) * 1000)
        out["lag"].append((visible - answered) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lag_breakdown", description=__doc__)
    parser.add_argument("--rate", type=int, default=50, help="orders per second")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="lag-breakdown-"))
    with running_stack(work_dir, log_level="INFO") as stack:
        times = asyncio.run(place_and_wait(stack, args.rate, args.seconds))
    # The processes have stopped: every log line is written.
    measured = stages(work_dir, times)
    print(f"{len(measured['lag'])} of {len(times)} orders at {args.rate}/s (ms)")
    for name in STAGES:
        values = measured[name]
        shown = " ".join(
            f"p{pct}={loadgen.percentile(values, pct) or 0:6.1f}" for pct in (50, 90, 99)
        )
        print(f"  {name:11s} {shown}")


if __name__ == "__main__":
    main()
