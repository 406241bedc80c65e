"""The benchmark report's arithmetic: medians, ratios to baselines, target verdicts, tables."""

from __future__ import annotations

from bench import report
from bench.report import Figure, Target
from bench.scenarios import parse_projection_output


def fig(key: str, *runs: float, missing: str = "") -> Figure:
    return report.describe(key, runs, missing)


def by_key(*figures: Figure) -> dict[str, Figure]:
    return {f.key: f for f in figures}


def test_median_and_ratio_use_the_median_of_each_side_not_the_best_run() -> None:
    figures = by_key(fig("orders.cps", 900, 1000, 5000), fig("es.save_4t", 400, 500, 100))

    assert figures["orders.cps"].median == 1000
    assert report.ratio(figures, "orders.cps", "es.save_4t") == 1000 / 400


def test_ratio_is_none_when_a_side_is_missing_or_zero() -> None:
    figures = by_key(
        fig("orders.cps", 1000), fig("raw.cps", missing="not there"), fig("bare.rps", 0.0)
    )

    assert report.ratio(figures, "orders.cps", "raw.cps") is None
    assert report.ratio(figures, "orders.cps", "pgbench.tps") is None
    assert report.ratio(figures, "orders.cps", "bare.rps") is None


def test_ratio_target_met_and_missed_at_the_threshold() -> None:
    target = Target("x", "orders.cps", 2.0, "es.save_4t")

    met = report.evaluate(by_key(fig("orders.cps", 1000), fig("es.save_4t", 500)), target)
    missed = report.evaluate(by_key(fig("orders.cps", 999), fig("es.save_4t", 500)), target)

    assert (met.met, met.value, met.text) == (True, 2.0, "yes")
    assert (missed.met, missed.text) == (False, "no")


def test_absolute_at_most_target_lower_is_better() -> None:
    target = Target("lag", "lag.p99@200", 60.0, at_most=True)

    assert report.evaluate(by_key(fig("lag.p99@200", 59, 61, 40)), target).met is True
    assert report.evaluate(by_key(fig("lag.p99@200", 61, 70, 65)), target).met is False


def test_target_not_measured_is_not_applicable_rather_than_failed() -> None:
    verdict = report.evaluate({}, Target("x", "orders.cps", 2.0, "es.save_4t"))

    assert (verdict.met, verdict.value, verdict.text) == (None, None, "n/a")


def test_size_targets_resolve_to_the_largest_log_measured() -> None:
    figures = by_key(
        fig("rss.mb@250000", 100),
        fig("rss.mb@1000000", 210),
        fig("rss.mb@500000", 150),
        fig("rebuild.eps@1000000", missing="failed"),
        fig("rebuild.eps@500000", 70_000),
        fig("es.read", 100_000),
    )

    targets = {t.key.split("@")[0]: t for t in report.resolve_targets(figures)}

    assert targets["rss.mb"].key == "rss.mb@1000000"
    assert "1,000,000 events" in targets["rss.mb"].label
    assert report.evaluate(figures, targets["rss.mb"]).met is False
    # a size whose run failed is not the one judged
    assert targets["rebuild.eps"].key == "rebuild.eps@500000"
    assert report.evaluate(figures, targets["rebuild.eps"]).met is True


def test_every_size_measured_gets_a_ratio_to_the_eventsourcing_read_rate() -> None:
    figures = by_key(fig("rebuild.eps@250000", 1), fig("catchup.eps@500000", 1))

    pairs = {(r.key, r.baseline) for r in report.ratios_for(figures)}

    assert ("rebuild.eps@250000", "es.read") in pairs
    assert ("catchup.eps@500000", "es.read") in pairs
    assert ("orders.cps", "es.save_4t") in pairs


def test_markdown_shows_median_range_ratio_unavailable_reason_and_verdicts() -> None:
    figures = [
        fig("orders.cps", 900, 1000, 1100),
        fig("es.save_4t", 400, 500, 450),
        fig("raw.cps", missing="bench/x.py is not there yet"),
    ]
    keyed = by_key(*figures)
    verdicts = [report.evaluate(keyed, t) for t in report.resolve_targets(keyed)]

    text = report.render_markdown(
        figures, report.ratios_for(keyed), verdicts, {"machine": "2 CPUs"}
    )

    orders_row = next(line for line in text.splitlines() if "| orderdesk |" in line)
    assert "| 1,000 | 900-1,100 | 3 |" in orders_row
    assert "2.22x eventsourcing 4 threads" in orders_row
    assert "not available: bench/x.py is not there yet" in text
    assert "- machine: 2 CPUs" in text
    target_rows = [line for line in text.splitlines() if line.startswith("| POST /orders ≥")]
    assert target_rows[0].endswith("| 2.22x | ≥ 2x | yes |")
    assert target_rows[1].endswith("| n/a |")  # raw psycopg not measured


def test_results_document_round_trips_to_figures() -> None:
    figures = [fig("orders.cps", 1, 2, 3), fig("bare.rps", missing="why")]
    keyed = by_key(*figures)

    document = report.results_document(figures, report.ratios_for(keyed), [], {})

    assert report.figures_from_document(document) == figures
    assert document["figures"][0]["median"] == 2


def test_projection_summary_text_becomes_log_event_rates() -> None:
    text = (
        "events in log: 1,000,000\n"
        "catch-up (4 projections, worker --threads 4): median 20.0s = 50,000 log events/s;"
        " worker peak RSS median 150 MiB\n"
        "rebuild --all (4 projections, sequential): median 40.0s = 100,000 events/s through"
        " projections; peak RSS median 120 MiB\n"
    )

    figures = parse_projection_output(text, 1_000_000)

    assert figures == {
        "catchup.eps@1000000": 50_000.0,
        "rss.mb@1000000": 150.0,
        "rebuild.eps@1000000": 25_000.0,  # log events per second, not 4 projections' sum
        "rebuild.s@1000000": 40.0,
    }


def test_lag_at_the_highest_sustained_rate_is_labelled_and_taken_from_that_rate() -> None:
    from bench.__main__ import Recorder, at_highest

    measured = {"lag.p50@600": 40.0, "lag.p99@600": 90.0, "lag.p50@800": 70.0}
    assert at_highest(measured, 600) == {"lag.p50@max": 40.0, "lag.p99@max": 90.0}
    figure = fig("lag.p99@max", 90.0, 120.0, 100.0)
    assert figure.scenario == "commit → visible lag at the highest sustained rate"
    assert figure.metric == "p99" and figure.median == 100.0
    record = Recorder()
    for rate in ("max", "200", "50"):
        keys = (f"lag.p50@{rate}", f"lag.p99@{rate}")
        record(keys, lambda keys=keys: dict.fromkeys(keys, 1.0))
    order = [f.key for f in record.figures()]
    assert order == [f"lag.p{q}@{r}" for q in (50, 99) for r in (50, 200, "max")]
