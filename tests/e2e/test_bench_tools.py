"""The measuring tools of docs/benchmarks.md "How to run" run and answer (nothing about speed):
each on its own embedded servers, with the smallest useful workload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _json_lines(*args: str, timeout: float = 180) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_cpu_split_names_the_processes_of_each_system() -> None:
    runs = _json_lines("bench.cpu_split", "--seconds", "1", "--repetitions", "1")
    assert [r["system"] for r in runs] == ["orderdesk", "raw"]
    orderdesk, raw = runs
    assert orderdesk["requests_per_s"] > 0 and raw["requests_per_s"] > 0
    # Each request's CPU is found in the process that served it and in its database backend.
    assert {"command-api", "pg:command-api", "load generator"} <= set(
        orderdesk["cpu_us_per_request"]
    )
    assert {"raw-endpoint", "pg:raw-endpoint"} <= set(raw["cpu_us_per_request"])
    assert orderdesk["wal_fsyncs_per_request"] > 0


def test_cpu_split_of_read_your_writes_counts_the_query_api() -> None:
    (run,) = _json_lines(
        "bench.cpu_split", "--seconds", "2", "--repetitions", "1", "--read-your-writes", "100"
    )
    assert run["orders_per_s"] > 0 and run["lag_p99_ms"] > 0
    # Each order is a POST and a GET waiting on its token. (Only processes that surely pass
    # a clock tick, 10 ms, in a run this short: a backend may not.)
    assert {"command-api", "query-api", "load generator"} <= set(run["cpu_us_per_order"])


def test_sweep_growth_reports_no_scans_on_grown_tables() -> None:
    (result,) = _json_lines("bench.sweep_growth", "--rows", "20000", "--sweeps", "3")
    assert result["sweeps"] == 3 and result["median_ms"] > 0
    assert result["seq_rows_per_sweep"] == 0


def test_rate_limit_cost_measures_both_ways() -> None:
    lines = _json_lines("bench.rate_limit_cost", "--checks", "20", "--repetitions", "1")
    assert [line["way"] for line in lines] == ["redis-py", "wire"]
    assert all(line["cpu_us_per_check_median"] > 0 for line in lines)


def test_order_path_measures_snapshots_and_reads() -> None:
    lines = _json_lines("bench.order_path", "--orders", "30", "--rounds", "1")
    assert [line["way"] for line in lines] == ["snapshot", "reading"]
    assert all(line["client_us_median"] > 0 and line["wall_us_median"] > 0 for line in lines)
