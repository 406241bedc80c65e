"""A poison event is retried with backoff, then stalls only its projection; retry resumes."""

from __future__ import annotations

import dataclasses
import io

import msgspec
import pytest

from orderdesk.database import connect
from orderdesk.settings import Settings
from projections import admin
from projections.registry import PROJECTIONS
from projections.runner import catch_up
from projections.sweep import catch_up_all
from tests.eventlog import Shop, append, append_raw
from tests.integration.test_projections import check_views


def test_poison_event_stalls_only_its_projection_until_retried(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = dataclasses.replace(settings, projection_max_retries=2)
    assert settings.database_url
    shop = Shop(seed=4)
    with connect(settings.database_url, autocommit=True) as conn:
        for i in range(3):
            append(conn, shop.add_product(f"P-{i}"))
        # Only product_view handles StockReceived; this payload cannot be decoded.
        bad = append_raw(conn, "StockReceived", '{"sku": "P-0", "quantity": "lots"}', "stock:P-0")
        for _ in range(10):
            append(conn, shop.place("c1", ["P-1", "P-2"]))

    sleeps: list[float] = []
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):
        outcomes = {
            name: catch_up(
                projection,
                write,
                read,
                batch_size=100,
                max_retries=settings.projection_max_retries,
                sleep=sleeps.append,
            ).outcome
            for name, projection in PROJECTIONS.items()
        }
        assert outcomes == {
            "product_view": "stalled",
            "order_view": "applied",
            "daily_sales": "applied",
            "order_history": "applied",
        }
        assert sleeps == [0.1, 0.2]  # two retries with growing backoff, then stalled
        row = read.execute(
            "SELECT state, checkpoint_pos, failed_event_position, last_error, attempts,"
            " failed_event_id::text FROM read.projection_state WHERE name = 'product_view'"
        ).fetchone()
        assert row is not None
        state, checkpoint_pos, failed_pos, error, attempts, failed_id = row
        assert (state, failed_pos, attempts) == ("stalled", bad.position, 3)
        assert (failed_id,) == read.execute(
            "SELECT event_id::text FROM write.event_log WHERE position = %s", (bad.position,)
        ).fetchone()
        assert checkpoint_pos == bad.position - 1  # the events before it were applied
        assert "ValidationError" in error
        # The other projections went past the poison event.
        assert read.execute("SELECT count(*) FROM read.order_view").fetchone() == (10,)
        # A stalled projection stays stalled (a redelivered message changes nothing).
        assert (
            catch_up(
                PROJECTIONS["product_view"], write, read, batch_size=100, max_retries=2
            ).outcome
            == "stalled"
        )

    assert admin.status(settings) == 1
    table = capsys.readouterr().out
    assert "stalled" in table and "ValidationError" in table and str(bad.position) in table
    assert admin.status(settings, as_json=True) == 1
    rows = {r["name"]: r for r in msgspec.json.decode(capsys.readouterr().out)}
    assert rows["product_view"]["events_behind"] == 31  # poison + 10 * (2 reserved + placed)
    assert rows["order_view"]["events_behind"] == 0

    # The operator repairs the cause (here: the payload) and resumes the projection.
    with connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE write.event_log SET payload = %s::jsonb WHERE position = %s",
            (
                '{"sku": "P-0", "quantity": 1, "reference": null, "on_hand": 100001,'
                ' "reserved": 0}',
                bad.position,
            ),
        )
    shop.levels["P-0"] = (100_001, 0)
    assert admin.retry(settings, "product_view") == 0
    assert admin.retry(settings, "product_view") == 0  # not stalled: nothing to do
    assert admin.retry(settings, "nope") == 2
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):
        result = catch_up(PROJECTIONS["product_view"], write, read, batch_size=100, max_retries=2)
        assert (result.outcome, result.caught_up) == ("applied", True)
    check_views(settings, shop)
    assert admin.status(settings, out=io.StringIO()) == 0


def test_a_sweep_hands_a_poison_event_to_the_runner_and_the_rest_go_on(
    settings: Settings,
) -> None:
    assert settings.database_url
    shop = Shop(seed=5)
    with connect(settings.database_url, autocommit=True) as conn:
        for i in range(3):
            append(conn, shop.add_product(f"S-{i}"))
        append_raw(conn, "StockReceived", '{"sku": "S-0", "quantity": "lots"}', "stock:S-0")
        for _ in range(10):
            append(conn, shop.place("c2", ["S-1", "S-2"]))
    sleeps: list[float] = []
    with (
        connect(settings.database_url, autocommit=True) as write,
        connect(settings.database_url, autocommit=True) as read,
    ):

        def sweep() -> dict[str, str]:
            results = catch_up_all(
                list(PROJECTIONS.values()),
                write,
                read,
                batch_size=100,
                max_retries=1,
                sleep=sleeps.append,
            )
            return {r.name: r.outcome for r in results}

        expected = {
            "product_view": "stalled",
            "order_view": "applied",
            "daily_sales": "applied",
            "order_history": "applied",
        }
        assert sweep() == expected
        assert sleeps == [0.1]  # one retry with backoff, then stalled
        assert read.execute("SELECT count(*) FROM read.order_view").fetchone() == (10,)
        # The next wakeup sweeps the live ones; the stalled one stays stalled.
        append(write, shop.place("c2", ["S-1"]))
        assert sweep()["product_view"] == "stalled"
        assert read.execute("SELECT count(*) FROM read.order_view").fetchone() == (11,)
