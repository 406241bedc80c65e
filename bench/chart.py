"""PNG charts of one run: throughput and latency per scenario against the baselines, and
rebuild time against log size. Bars are medians; whiskers span min-max of the repetitions.

``python -m bench.chart bench/results/<date>.json`` redraws the chart of a saved run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.report import Figure, figures_from_document

THROUGHPUT = (
    "orders.cps",
    "raw.cps",
    "pgbench.tps",
    "es.save_4t",
    "es.save_seq",
    "read.cached.rps",
    "read.uncached.rps",
    "read.list.rps",
    "bare.rps",
)
LATENCY = (
    "orders.p50",
    "orders.p99",
    "raw.p50",
    "raw.p99",
    "read.cached.p99",
    "read.uncached.p99",
    "read.list.p99",
    "bare.p99",
    "lag.p50@50",
    "lag.p99@50",
    "lag.p50@200",
    "lag.p99@200",
    "lag.p50@max",
    "lag.p99@max",
)


def _label(f: Figure) -> str:
    who = "" if f.system == "orderdesk" else f"{f.system}, "
    return f"{f.scenario}: {who}{f.metric}"


def _bars(ax: object, figures: Sequence[Figure], unit: str, title: str) -> None:
    shown = [f for f in figures if f.available]
    labels = [_label(f) for f in shown]
    medians = [f.median or 0.0 for f in shown]
    low = [m - min(f.runs) for m, f in zip(medians, shown, strict=True)]
    high = [max(f.runs) - m for m, f in zip(medians, shown, strict=True)]
    colours = ["tab:blue" if f.system == "orderdesk" else "tab:grey" for f in shown]
    positions = list(range(len(shown)))
    ax.barh(positions, medians, xerr=[low, high], color=colours, capsize=3)  # type: ignore[attr-defined]
    ax.set_yticks(positions, labels, fontsize=7)  # type: ignore[attr-defined]
    ax.invert_yaxis()  # type: ignore[attr-defined]
    ax.set_xlabel(unit)  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9)  # type: ignore[attr-defined]
    positive = [m for m in medians if m > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_xscale("log")  # type: ignore[attr-defined]


def _pick(by_key: Mapping[str, Figure], keys: Sequence[str]) -> list[Figure]:
    return [by_key[k] for k in keys if k in by_key]


def draw(figures: Sequence[Figure], path: Path) -> Path:
    """Write the chart of ``figures`` to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    by_key = {f.key: f for f in figures}
    sizes = sorted({int(k.split("@")[1]) for k in by_key if k.startswith(("rebuild.", "catchup."))})
    largest = sizes[-1] if sizes else None
    log_read = [f"rebuild.eps@{largest}", f"catchup.eps@{largest}", "es.read"]
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    _bars(
        axes[0][0],
        _pick(by_key, THROUGHPUT),
        "per second (median, min-max)",
        "Throughput: orderdesk (blue) vs baselines (grey)",
    )
    _bars(axes[0][1], _pick(by_key, LATENCY), "ms (median, min-max)", "Latency")
    _bars(
        axes[1][0],
        _pick(by_key, log_read),
        "events/s",
        "Reading the event log: rebuild / catch-up vs eventsourcing read+decode",
    )
    ax = axes[1][1]
    for prefix, label in (("rebuild.s", "rebuild"), ("catchup.eps", "catch-up")):
        points = []
        for n in sizes:
            f = by_key.get(f"{prefix}@{n}")
            if f is not None and f.median:
                points.append((n, f.median if prefix.endswith(".s") else n / f.median))
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xlabel("events in the log")
    ax.set_ylabel("seconds (median)")
    ax.set_title("Projection time vs log size", fontsize=9)
    if ax.lines:
        ax.legend()
    else:
        ax.text(0.5, 0.5, "not measured in this run", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    """Redraw the chart of a saved results file next to it."""
    source = Path(sys.argv[1])
    document = json.loads(source.read_text())
    print(draw(figures_from_document(document), source.with_suffix(".png")))


if __name__ == "__main__":
    main()
