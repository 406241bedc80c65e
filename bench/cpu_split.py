"""Where POST /orders spends the machine: CPU per order of every process, beside the raw
psycopg endpoint, and the WAL flushes each commit waits for.

    python -m bench.cpu_split [--seconds 8] [--repetitions 2] [--read-your-writes RATE]

Starts the stack (:func:`bench.stack.running_stack`) and the raw psycopg endpoint, then
alternately loads each with ``bench/command_load.py`` (32 clients, after a 3 s warm-up) and
reads every process's CPU time (user + system) before and after: the orderdesk processes,
the raw endpoint, the load generator, Redis, and each PostgreSQL backend, counted for the
process at the other end of its connection (``pg:command-api``, ``pg:worker``, ...). Also
the WAL flushes (``pg_stat_io``) per request and their mean duration. One JSON object per
load, figures in microseconds per request.

With ``--read-your-writes RATE`` it runs ``python -m bench``'s lag scenario instead: orders
placed at a fixed RATE, each read back through the query API with its consistency token
(``bench.scenarios.lag``), and gives the same split per order (one POST and one waiting GET).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]
import psycopg

from bench import scenarios
from bench.stack import BENCH_JWT_SECRET, Stack, http_baseline, running_stack
from orderdesk.database import libpq_url

LOAD = str(Path(__file__).with_name("command_load.py"))
_RAW = "bench.baselines.raw_psycopg_app"


def _owner_names() -> dict[int, str]:
    """pid -> short name of the processes a request passes through."""
    names = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "orderdesk.cli" in cmd:
            names[proc.info["pid"]] = cmd.split("orderdesk.cli", 1)[1].split()[0]
        elif _RAW in cmd:
            names[proc.info["pid"]] = "raw-endpoint"
        elif "valkey-server" in cmd or "redis-server" in cmd:
            names[proc.info["pid"]] = "redis"
    return names


def _backend_owners(server_url: str, names: dict[int, str]) -> dict[int, str]:
    """PostgreSQL backend pid -> ``pg:<name of the client process>``."""
    by_port = {
        c.laddr.port: c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.laddr and c.pid is not None
    }
    owners = {}
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        rows = conn.execute("SELECT pid, client_port, backend_type FROM pg_stat_activity")
        for pid, port, backend_type in rows:
            client = names.get(by_port.get(port, -1)) if port else None
            owners[pid] = f"pg:{client}" if client else f"pg:{backend_type}"
    return owners


def _cpu_seconds(owners: dict[int, str]) -> Counter[str]:
    spent: Counter[str] = Counter()
    for pid, name in owners.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        spent[name] += times.user + times.system
    return spent


def _wal_flushes(server_url: str) -> tuple[float, float]:
    """(WAL fsyncs, their total milliseconds) since the server started."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(fsyncs), 0), coalesce(sum(fsync_time), 0)"
            " FROM pg_stat_io WHERE object = 'wal'"
        ).fetchone()
    return (float(row[0]), float(row[1])) if row else (0.0, 0.0)


def measure(stack: Stack, url: str, name: str, seconds: float) -> dict[str, Any]:
    """Load ``url`` for ``seconds``; CPU microseconds per answered request by process."""
    args = [sys.executable, LOAD, "--url", url, "--secret", BENCH_JWT_SECRET]
    if name == "raw":
        args.append("--skip-setup")
    subprocess.run([*args, "--seconds", "3"], check=True, capture_output=True)
    names = _owner_names()
    owners = {**names, **_backend_owners(stack.server_url, names)}
    before, flushes_before = _cpu_seconds(owners), _wal_flushes(stack.server_url)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [*args, "--seconds", str(seconds)], check=True, capture_output=True, text=True
    ).stdout
    spent = _cpu_seconds(owners)
    spent.subtract(before)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent["load generator"] = (after.ru_utime + after.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    flushes_after = _wal_flushes(stack.server_url)
    result = json.loads(out)
    requests = result["commands"]
    fsyncs = flushes_after[0] - flushes_before[0]
    per_request = {k: round(v / requests * 1e6) for k, v in spent.most_common() if v > 0.001}
    return {
        "system": name,
        "requests_per_s": result["commands_per_s"],
        "p99_ms": result["p99_ms"],
        "cpu_us_per_request": per_request,
        "total_cpu_us_per_request": round(sum(spent.values()) / requests * 1e6),
        "wal_fsyncs_per_request": round(fsyncs / requests, 2),
        "wal_fsync_mean_us": (
            round((flushes_after[1] - flushes_before[1]) / fsyncs * 1000) if fsyncs else None
        ),
    }


def measure_read_your_writes(stack: Stack, rate: int, seconds: float, tag: str) -> dict[str, Any]:
    """The lag scenario at ``rate`` orders/s; CPU microseconds per order by process (the
    load generator is this process)."""
    scenarios.lag(stack, min(rate, 100), 2.0, f"{tag}W")  # warm-up: connections, plans
    names = _owner_names()
    owners = {**names, **_backend_owners(stack.server_url, names)}
    before = _cpu_seconds(owners)
    mine = resource.getrusage(resource.RUSAGE_SELF)
    figures = scenarios.lag(stack, rate, seconds, tag)
    spent = _cpu_seconds(owners)
    spent.subtract(before)
    now = resource.getrusage(resource.RUSAGE_SELF)
    spent["load generator"] = (now.ru_utime + now.ru_stime) - (mine.ru_utime + mine.ru_stime)
    orders = figures[f"lag.achieved@{rate}"] * seconds
    return {
        "system": f"orderdesk read-your-writes at {rate}/s",
        "orders_per_s": round(figures[f"lag.achieved@{rate}"], 1),
        "lag_p50_ms": round(figures[f"lag.p50@{rate}"], 1),
        "lag_p99_ms": round(figures[f"lag.p99@{rate}"], 1),
        "cpu_us_per_order": {
            k: round(v / orders * 1e6) for k, v in spent.most_common() if v > 0.001
        },
        "total_cpu_us_per_order": round(sum(spent.values()) / orders * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument(
        "--read-your-writes",
        type=int,
        metavar="RATE",
        help="orders/s of the lag scenario to split instead of the POST load",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp)) as stack:
        if args.read_your_writes:
            for rep in range(args.repetitions):
                figures = measure_read_your_writes(
                    stack, args.read_your_writes, args.seconds, f"RYW{rep}"
                )
                print(json.dumps(figures), flush=True)
            return
        if stack.embedded:  # a server of our own: time its WAL flushes too
            with psycopg.connect(libpq_url(stack.server_url), autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET track_wal_io_timing = on")
                conn.execute("SELECT pg_reload_conf()")
        env = {"BENCH_RAW_DATABASE_URL": stack.database("bench_raw")}
        with http_baseline("raw-psycopg", f"{_RAW}:create_app", env, stack.work_dir) as raw:
            for _ in range(args.repetitions):
                for name, url in (("orderdesk", stack.command_url), ("raw", raw)):
                    print(json.dumps(measure(stack, url, name, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
