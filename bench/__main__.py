"""``python -m bench [--quick] [--out bench/results]``: every scenario beside its baselines.

Starts the stack (embedded servers unless ``ORDERDESK_DATABASE_URL``/``ORDERDESK_REDIS_URL``
are set), runs each scenario group with its baselines interleaved per repetition
(A B A B A B, so drift on a shared machine hits both alike), and writes
``<out>/<date>.json``, ``<date>.md`` and ``<date>.png``. A scenario that cannot run here
is reported as not available, with the reason, instead of stopping the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import report, scenarios
from bench.scenarios import QUICK, Sizes, Unavailable
from bench.stack import Stack, free_port, http_baseline, running_stack, spawn, wait_for_port

Runs = dict[str, list[float]]


class Recorder:
    """Collects every repetition's values, and why a figure is missing."""

    def __init__(self) -> None:
        self.runs: Runs = defaultdict(list)
        self.missing: dict[str, str] = {}

    def __call__(
        self, keys: tuple[str, ...], measure: Callable[[], dict[str, float]]
    ) -> dict[str, float]:
        """Run one repetition; on failure mark ``keys`` not available (first reason wins)."""
        started = time.monotonic()
        try:
            values = measure()
        except (Unavailable, OSError, KeyError, ValueError, subprocess.SubprocessError) as exc:
            reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else repr(exc)
            for key in keys:
                self.missing.setdefault(key, reason)
            print(f"  {', '.join(keys)}: not available: {reason}", flush=True)
            return {}
        # Only the figures this step is for; helpers' extra values are printed, not kept.
        for key, value in values.items():
            if key not in keys:
                continue
            self.runs[key].append(value)
        shown = ", ".join(f"{k}={v:,.1f}" for k, v in values.items())
        print(f"  {shown}  ({time.monotonic() - started:.0f} s)", flush=True)
        return values

    def figures(self) -> list[report.Figure]:
        """Every figure, in the order of the catalogue, then by log size."""
        keys = set(self.runs) | set(self.missing)

        def order(key: str) -> tuple[int, int, str]:
            base, _, at = key.partition("@")
            names = list(report.FIGURE_INFO)
            rank = int(at) if at.isdigit() else (0 if not at else 1 << 62)  # "max" last
            return (names.index(base) if base in names else len(names), rank, key)

        return [
            report.describe(k, self.runs.get(k, []), self.missing.get(k, ""))
            for k in sorted(keys, key=order)
        ]


def write_group(stack: Stack, sizes: Sizes, record: Recorder) -> None:
    """POST /orders vs eventsourcing saves, the raw psycopg endpoint and pgbench."""
    env = {"BENCH_RAW_DATABASE_URL": stack.database("bench_raw")}
    factory = "bench.baselines.raw_psycopg_app:create_app"
    with http_baseline("raw-psycopg", factory, env, stack.work_dir / "logs") as raw_url:
        for rep in range(sizes.repetitions):
            print(f"writes, repetition {rep + 1}/{sizes.repetitions}", flush=True)
            record(
                ("orders.cps", "orders.p50", "orders.p99"),
                lambda: scenarios.orders_orderdesk(stack, sizes),
            )
            record(
                ("es.save_seq", "es.save_4t", "es.read"),
                lambda: scenarios.eventsourcing(stack, sizes),
            )
            record(("raw.cps", "raw.p50", "raw.p99"), lambda: scenarios.orders_raw(raw_url, sizes))
            record(("pgbench.tps", "pgbench.lat"), lambda: scenarios.pgbench(stack, sizes))


@contextlib.contextmanager
def read_servers(stack: Stack) -> Iterator[tuple[str, str]]:
    """A query API with the read cache off (every GET a miss) and the bare endpoint."""
    env = scenarios.stack_env(stack)
    uncached_port, bare_port = free_port(), free_port()
    log_dir = stack.work_dir / "logs"
    uncached = spawn(
        "query-api-uncached",
        [sys.executable, "-m", "orderdesk.cli", "query-api", "--port", str(uncached_port)],
        {**env, "ORDERDESK_CACHE_TTL": "0"},
        log_dir,
    )
    bare = spawn(
        "bare", [sys.executable, "-m", "bench.bare_app", "--port", str(bare_port)], env, log_dir
    )
    try:
        wait_for_port(uncached, uncached_port)
        wait_for_port(bare, bare_port)
        yield f"http://127.0.0.1:{uncached_port}", f"http://127.0.0.1:{bare_port}"
    finally:
        uncached.stop()
        bare.stop()


def read_group(stack: Stack, sizes: Sizes, record: Recorder) -> None:
    """GET /products/{sku} cached and uncached, a paged list, vs the bare endpoint."""
    try:
        skus = scenarios.seed_product_view(stack, sizes.products)
    except Exception as exc:  # the read schema belongs to others; report, don't crash
        for key in ("read.cached.rps", "read.uncached.rps", "read.list.rps", "bare.rps"):
            record.missing[key] = f"could not seed read.product_view: {exc}"
        return
    singles = [f"/products/{sku}" for sku in skus[:200]]
    with read_servers(stack) as (uncached_url, bare_url):
        pages = scenarios.page_paths(stack.query_url)
        for rep in range(sizes.repetitions):
            print(f"reads, repetition {rep + 1}/{sizes.repetitions}", flush=True)
            for prefix, url, paths in (
                ("bare", bare_url, singles),
                ("read.cached", stack.query_url, singles),
                ("read.uncached", uncached_url, singles),
                ("read.list", stack.query_url, pages),
            ):
                record(
                    (f"{prefix}.rps", f"{prefix}.p99"),
                    functools.partial(scenarios.get_load, url, paths, sizes, prefix),
                )


def lag_group(stack: Stack, sizes: Sizes, record: Recorder) -> None:
    """Lag at fixed rates, then the highest rate sustained (stepping up until one fails)."""
    for rep in range(sizes.repetitions):
        print(f"lag, repetition {rep + 1}/{sizes.repetitions}", flush=True)
        best, measured = 0, False
        at_best: dict[str, float] = {}  # the lag figures of the highest rate sustained
        for rate in sizes.lag_rates:
            got = record(
                (f"lag.p50@{rate}", f"lag.p99@{rate}"),
                functools.partial(scenarios.lag, stack, rate, sizes.lag_duration, f"{rep}X{rate}"),
            )
            measured = measured or bool(got)
            if got and scenarios.sustained(got, rate) and rate > best:
                best, at_best = rate, got
        for rate in (r for r in sizes.search_rates if r > best):
            try:
                got = scenarios.lag(stack, rate, sizes.lag_duration, f"{rep}S{rate}")
            except (Unavailable, OSError) as exc:
                print(f"  rate search stopped: {exc}", flush=True)
                break
            ok = scenarios.sustained(got, rate)
            print(f"  {rate}/s: sustained={ok} ({got})", flush=True)
            if not ok:
                break
            best, at_best = rate, got
        if measured:  # 0 is a real answer only when some rate was tried
            record(("lag.max_rate",), functools.partial(dict, {"lag.max_rate": float(best)}))
        else:
            record.missing.setdefault("lag.max_rate", "no lag rate could be measured")
        if at_best:
            record(("lag.p50@max", "lag.p99@max"), functools.partial(at_highest, at_best, best))


def at_highest(figures: dict[str, float], rate: int) -> dict[str, float]:
    """The lag percentiles measured at ``rate``, the highest rate sustained, as ``@max``."""
    return {
        "lag.p50@max": figures[f"lag.p50@{rate}"],
        "lag.p99@max": figures[f"lag.p99@{rate}"],
    }


def projection_group(stack: Stack, sizes: Sizes, record: Recorder) -> None:
    """Catch-up and rebuild at each log size, each followed by the eventsourcing read+decode
    rate, their baseline (one more ``es.read`` sample beside every rebuild: the rate is
    compared with the median of all of them, not with a few taken minutes earlier)."""
    for rep in range(sizes.repetitions):
        for events in sizes.log_sizes:
            print(f"projections, {events:,} events, repetition {rep + 1}", flush=True)
            keys = tuple(
                f"{k}@{events}" for k in ("catchup.eps", "rebuild.eps", "rebuild.s", "rss.mb")
            )
            record(keys, functools.partial(scenarios.projection, stack, events))
            record(("es.read",), lambda: scenarios.eventsourcing_read(stack, sizes))


def setup_facts(stack: Stack, sizes: Sizes, argv: list[str]) -> dict[str, object]:
    """What a reader needs to reproduce the run."""
    import psycopg

    from orderdesk.database import libpq_url

    with psycopg.connect(libpq_url(stack.server_url)) as conn:
        row = conn.execute(
            "SELECT version(), current_setting('fsync'), current_setting('synchronous_commit')"
        ).fetchone()
    assert row is not None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "command": "python -m bench " + shlex.join(argv),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": f"{row[0].split(',')[0]} (fsync={row[1]}, synchronous_commit={row[2]})",
        "servers": "embedded wheels, fresh" if stack.embedded else "given by ORDERDESK_*_URL",
        "load": "32 keep-alive HTTP/1.1 clients on the same machine (bench/loadgen.py or "
        "bench/command_load.py); 1 uvicorn process per API and per baseline",
        "repetitions": f"{sizes.repetitions}, interleaved with the baselines",
        "durations": f"{sizes.duration:g} s per throughput run, "
        f"{sizes.lag_duration:g} s per lag rate",
        "log sizes": ", ".join(f"{n:,}" for n in sizes.log_sizes),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny, 1 repetition")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--repetitions", type=int, help="override repetitions")
    parser.add_argument("--duration", type=float, help="override seconds per throughput run")
    parser.add_argument("--sizes", help="override log sizes, comma-separated (e.g. 250000,500000)")
    parser.add_argument("--only", help="comma-separated groups: writes,reads,lag,projections")
    parser.add_argument("--work-dir", type=Path, help="keep servers' data and logs here")
    return parser.parse_args(argv)


def _stop(signum: int, frame: object) -> None:
    # SIGTERM (a CI timeout, ``kill``) unwinds like Ctrl-C, so the stack and the servers
    # it started are stopped rather than left running.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the Markdown table; return 0."""
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _stop)
    args = parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.repetitions:
        sizes = dataclasses.replace(sizes, repetitions=args.repetitions)
    if args.duration:
        sizes = dataclasses.replace(sizes, duration=args.duration, lag_duration=args.duration)
    if args.sizes:
        sizes = dataclasses.replace(sizes, log_sizes=tuple(int(n) for n in args.sizes.split(",")))
    groups = {
        "writes": write_group,
        "reads": read_group,
        "lag": lag_group,
        "projections": projection_group,
    }
    chosen = args.only.split(",") if args.only else list(groups)
    record = Recorder()
    with contextlib.ExitStack() as cleanup:
        work_dir = args.work_dir or Path(
            cleanup.enter_context(
                tempfile.TemporaryDirectory(prefix="orderdesk-bench-", ignore_cleanup_errors=True)
            )
        )
        stack = cleanup.enter_context(running_stack(work_dir))
        setup = setup_facts(stack, sizes, argv)
        for name in chosen:
            groups[name](stack, sizes, record)
    figures = record.figures()
    by_key = {f.key: f for f in figures}
    ratios = report.ratios_for(by_key)
    verdicts = [report.evaluate(by_key, t) for t in report.resolve_targets(by_key)]
    markdown = report.render_markdown(figures, ratios, verdicts, setup)
    stem = datetime.date.today().isoformat() + ("-quick" if args.quick else "")
    document = report.results_document(figures, ratios, verdicts, setup)
    json_path = report.write_results(args.out, stem, document, markdown)
    try:
        from bench import chart

        chart.draw(figures, args.out / f"{stem}.png")
    except ImportError as exc:
        print(f"no chart: {exc} (install matplotlib)", file=sys.stderr)
    print(markdown)
    print(f"results: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
