"""Results of one benchmark run: figures, ratios to baselines, targets, JSON and Markdown.

Everything here is pure (no I/O except :func:`write_results`), so the arithmetic that
decides "target met" is unit-tested. A figure is one metric of one system measured over
several repetitions; the report quotes the median and the min-max, never a single run,
because the machine is shared and noisy.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ORDERDESK = "orderdesk"


@dataclasses.dataclass(frozen=True)
class Figure:
    """One metric of one system: every repetition's value, or why there is none."""

    key: str
    scenario: str
    metric: str
    system: str
    unit: str
    runs: tuple[float, ...] = ()
    missing: str = ""

    @property
    def available(self) -> bool:
        """True when at least one repetition produced a value."""
        return bool(self.runs)

    @property
    def median(self) -> float | None:
        """The median over repetitions (None when not measured)."""
        return statistics.median(self.runs) if self.runs else None


@dataclasses.dataclass(frozen=True)
class Ratio:
    """orderdesk's figure ``key`` divided by the baseline figure ``baseline``."""

    key: str
    baseline: str


@dataclasses.dataclass(frozen=True)
class Target:
    """A published target: a ratio ``key``/``baseline`` or an absolute ``key`` vs ``threshold``.

    ``at_most`` flips the comparison (latency and memory: lower is better).
    """

    label: str
    key: str
    threshold: float
    baseline: str | None = None
    at_most: bool = False


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The outcome of one target: the measured value and whether it meets the threshold."""

    target: Target
    value: float | None
    met: bool | None  # None: not measured in this run

    @property
    def text(self) -> str:
        """``yes``, ``no`` or ``n/a``."""
        return "n/a" if self.met is None else ("yes" if self.met else "no")


def ratio(figures: Mapping[str, Figure], key: str, baseline: str) -> float | None:
    """Median of ``key`` over median of ``baseline``; None when either is missing or zero."""
    top, bottom = figures.get(key), figures.get(baseline)
    if top is None or bottom is None or top.median is None or not bottom.median:
        return None
    return top.median / bottom.median


def evaluate(figures: Mapping[str, Figure], target: Target) -> Verdict:
    """Decide one target from the medians of this run."""
    if target.baseline is not None:
        value = ratio(figures, target.key, target.baseline)
    else:
        figure = figures.get(target.key)
        value = figure.median if figure is not None else None
    if value is None:
        return Verdict(target, None, None)
    met = value <= target.threshold if target.at_most else value >= target.threshold
    return Verdict(target, value, met)


def largest_size_key(figures: Mapping[str, Figure], pattern: str) -> str:
    """``pattern`` with ``{n}`` replaced by the largest log size measured (for size targets).

    Sizes are the suffix after ``@`` in keys like ``rebuild.eps@1000000``.
    """
    prefix = pattern.split("{n}")[0]
    sizes = [int(k[len(prefix) :]) for k in figures if k.startswith(prefix) and figures[k].runs]
    return pattern.format(n=max(sizes)) if sizes else pattern.format(n=0)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _range(figure: Figure) -> str:
    if not figure.runs:
        return "-"
    return f"{_number(min(figure.runs))}-{_number(max(figure.runs))}"


def render_markdown(
    figures: Sequence[Figure],
    ratios: Iterable[Ratio],
    verdicts: Iterable[Verdict],
    setup: Mapping[str, Any],
) -> str:
    """The results as Markdown: setup, one table of figures with ratios, one of targets."""
    by_key = {f.key: f for f in figures}
    ratios_by_key: dict[str, list[str]] = {}
    for r in ratios:
        value = ratio(by_key, r.key, r.baseline)
        if value is not None:
            name = by_key[r.baseline].system
            ratios_by_key.setdefault(r.key, []).append(f"{value:.2f}x {name}")
    lines = ["### Setup", ""]
    lines += [f"- {name}: {value}" for name, value in setup.items()]
    lines += [
        "",
        "### Figures (median of the repetitions; min-max in the next column)",
        "",
        "| scenario | metric | system | median | min-max | runs | vs baseline |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for f in figures:
        if f.available:
            cells = [_number(f.median), _range(f), str(len(f.runs))]
        else:
            cells = [f"not available: {f.missing or 'not measured'}", "-", "0"]
        unit = f" ({f.unit})" if f.unit else ""
        vs = "; ".join(ratios_by_key.get(f.key, [])) or ""
        lines.append(
            f"| {f.scenario} | {f.metric}{unit} | {f.system} | " + " | ".join(cells) + f" | {vs} |"
        )
    lines += [
        "",
        "### Targets",
        "",
        "| target | measured | threshold | met |",
        "|---|---:|---:|---|",
    ]
    for v in verdicts:
        sign = "≤" if v.target.at_most else "≥"
        suffix = "x" if v.target.baseline else ""
        lines.append(
            f"| {v.target.label} | {_number(v.value)}{suffix if v.value is not None else ''} "
            f"| {sign} {v.target.threshold:g}{suffix} | {v.text} |"
        )
    return "\n".join(lines) + "\n"


def results_document(
    figures: Sequence[Figure],
    ratios: Iterable[Ratio],
    verdicts: Iterable[Verdict],
    setup: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON document of one run (everything needed to redraw tables and charts)."""
    by_key = {f.key: f for f in figures}
    return {
        "setup": dict(setup),
        "figures": [
            {**dataclasses.asdict(f), "runs": list(f.runs), "median": f.median} for f in figures
        ],
        "ratios": [
            {"key": r.key, "baseline": r.baseline, "ratio": ratio(by_key, r.key, r.baseline)}
            for r in ratios
        ],
        "targets": [
            {
                "label": v.target.label,
                "value": v.value,
                "threshold": v.target.threshold,
                "at_most": v.target.at_most,
                "met": v.met,
            }
            for v in verdicts
        ],
    }


def figures_from_document(document: Mapping[str, Any]) -> list[Figure]:
    """Figures read back from :func:`results_document` output (for the chart)."""
    return [
        Figure(
            key=f["key"],
            scenario=f["scenario"],
            metric=f["metric"],
            system=f["system"],
            unit=f["unit"],
            runs=tuple(float(x) for x in f["runs"]),
            missing=f.get("missing", ""),
        )
        for f in document["figures"]
    ]


def write_results(out_dir: Path, stem: str, document: Mapping[str, Any], markdown: str) -> Path:
    """Write ``<stem>.json`` and ``<stem>.md`` under ``out_dir``; return the JSON path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown)
    return json_path


# What each orderdesk figure is compared with (every pair is printed as a ratio).
RATIOS: tuple[Ratio, ...] = (
    Ratio("orders.cps", "es.save_4t"),
    Ratio("orders.cps", "es.save_seq"),
    Ratio("orders.cps", "raw.cps"),
    Ratio("orders.cps", "pgbench.tps"),
    Ratio("orders.p99", "raw.p99"),
    Ratio("read.cached.rps", "bare.rps"),
    Ratio("read.uncached.rps", "bare.rps"),
    Ratio("read.list.rps", "bare.rps"),
    Ratio("read.cached.p99", "bare.p99"),
)

# The targets of issue 7 item 5, for a 2-core machine. Size-dependent ones use ``{n}``,
# resolved to the largest log size of the run (1M in a full run).
TARGETS: tuple[Target, ...] = (
    Target("POST /orders ≥ 2x eventsourcing 4-thread save rate", "orders.cps", 2.0, "es.save_4t"),
    Target("POST /orders ≥ 0.5x raw psycopg write endpoint", "orders.cps", 0.5, "raw.cps"),
    Target("cached GET /products/{sku} ≥ 0.6x bare endpoint", "read.cached.rps", 0.6, "bare.rps"),
    Target("rebuild ≥ 0.7x eventsourcing read+decode", "rebuild.eps@{n}", 0.7, "es.read"),
    Target("worker peak RSS ≤ 200 MiB (largest log)", "rss.mb@{n}", 200.0, at_most=True),
    Target("lag p99 ≤ 60 ms at 200 orders/s", "lag.p99@200", 60.0, at_most=True),
)


def ratios_for(figures: Mapping[str, Figure]) -> list[Ratio]:
    """The fixed ratios plus, per log size measured, catch-up and rebuild vs eventsourcing."""
    pairs = list(RATIOS)
    for key in figures:
        if key.startswith(("rebuild.eps@", "catchup.eps@")):
            pairs.append(Ratio(key, "es.read"))
    return pairs


def resolve_targets(figures: Mapping[str, Figure]) -> list[Target]:
    """:data:`TARGETS` with ``{n}`` replaced by the largest log size that was measured."""
    resolved = []
    for t in TARGETS:
        if "{n}" in t.key:
            key = largest_size_key(figures, t.key)
            size = int(key.rsplit("@", 1)[1])
            label = f"{t.label} [at {size:,} events]" if size else t.label
            t = dataclasses.replace(t, key=key, label=label)
        resolved.append(t)
    return resolved


_ORDERS = "POST /orders (32 clients)"
_READS = "GET, 32 clients"
# key (or key prefix before "@") -> (scenario, metric, system, unit)
FIGURE_INFO: dict[str, tuple[str, str, str, str]] = {
    "orders.cps": (_ORDERS, "throughput", ORDERDESK, "commands/s"),
    "orders.p50": (_ORDERS, "latency p50", ORDERDESK, "ms"),
    "orders.p99": (_ORDERS, "latency p99", ORDERDESK, "ms"),
    "raw.cps": (_ORDERS, "throughput", "raw psycopg endpoint", "commands/s"),
    "raw.p50": (_ORDERS, "latency p50", "raw psycopg endpoint", "ms"),
    "raw.p99": (_ORDERS, "latency p99", "raw psycopg endpoint", "ms"),
    "pgbench.tps": (_ORDERS, "throughput", "pgbench (2 rows/tx)", "tx/s"),
    "pgbench.lat": (_ORDERS, "latency avg", "pgbench (2 rows/tx)", "ms"),
    "es.save_seq": (
        "save 1 aggregate + 1 event",
        "throughput",
        "eventsourcing sequential",
        "events/s",
    ),
    "es.save_4t": (
        "save 1 aggregate + 1 event",
        "throughput",
        "eventsourcing 4 threads",
        "events/s",
    ),
    "es.read": ("read log + decode", "throughput", "eventsourcing", "events/s"),
    "lag.p50": ("commit → visible lag", "p50", ORDERDESK, "ms"),
    "lag.p99": ("commit → visible lag", "p99", ORDERDESK, "ms"),
    "lag.max_rate": ("commit → visible lag", "highest sustained rate", ORDERDESK, "orders/s"),
    "read.cached.rps": (
        f"GET /products/{{sku}} cached ({_READS})",
        "throughput",
        ORDERDESK,
        "req/s",
    ),
    "read.cached.p99": (f"GET /products/{{sku}} cached ({_READS})", "latency p99", ORDERDESK, "ms"),
    "read.uncached.rps": (
        f"GET /products/{{sku}} uncached ({_READS})",
        "throughput",
        ORDERDESK,
        "req/s",
    ),
    "read.uncached.p99": (
        f"GET /products/{{sku}} uncached ({_READS})",
        "latency p99",
        ORDERDESK,
        "ms",
    ),
    "read.list.rps": (f"GET /products paged ({_READS})", "throughput", ORDERDESK, "req/s"),
    "read.list.p99": (f"GET /products paged ({_READS})", "latency p99", ORDERDESK, "ms"),
    "bare.rps": (f"bare Starlette+msgspec ({_READS})", "throughput", "bare endpoint", "req/s"),
    "bare.p99": (f"bare Starlette+msgspec ({_READS})", "latency p99", "bare endpoint", "ms"),
    "catchup.eps": ("projection catch-up", "throughput", ORDERDESK, "events/s"),
    "rebuild.eps": ("projection rebuild", "throughput", ORDERDESK, "events/s"),
    "rebuild.s": ("projection rebuild", "time", ORDERDESK, "s"),
    "rss.mb": ("projection worker (catch-up)", "peak RSS", ORDERDESK, "MiB"),
}


def describe(key: str, runs: Sequence[float] = (), missing: str = "") -> Figure:
    """A :class:`Figure` for ``key`` with its labels; ``name@N`` keys carry N in the label."""
    base, _, at = key.partition("@")
    scenario, metric, system, unit = FIGURE_INFO.get(base, (base, base, ORDERDESK, ""))
    if at == "max":
        scenario = f"{scenario} at the highest sustained rate"
    elif at and base.startswith("lag."):
        scenario = f"{scenario} at {int(at)} orders/s"
    elif at:
        scenario = f"{scenario}, {int(at):,} events"
    return Figure(key, scenario, metric, system, unit, tuple(runs), missing)
