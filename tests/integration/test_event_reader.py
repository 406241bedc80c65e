"""The gap-safe reader never skips an event, whatever order transactions commit in."""

from __future__ import annotations

import msgspec
import psycopg

from orderdesk.database import connect, libpq_url
from projections.reader import START, read_batch
from shared_contracts.events import EVENT_TYPES, stream_of
from shared_contracts.tokens import LogPoint
from tests.eventlog import Shop, append

TYPES = list(EVENT_TYPES)


def _read_all(conn: psycopg.Connection, after: LogPoint) -> tuple[list[str], LogPoint]:
    """Read everything currently readable; return the event types and the new checkpoint."""
    seen: list[str] = []
    while True:
        batch = read_batch(conn, after, TYPES, limit=2)
        seen += [f"{e.event_type}:{stream_of(e.event())[1]}" for e in batch.events]
        after = batch.next_checkpoint(after)
        if batch.complete:
            return seen, after


def test_a_transaction_that_commits_late_with_a_lower_position_is_not_skipped(
    db_url: str,
) -> None:
    shop = Shop()
    with (
        connect(db_url) as a,
        connect(db_url) as b,
        connect(db_url, autocommit=True) as reader,
    ):
        # A takes the lower position, B the higher; B commits first.
        append(a, shop.add_product("A-1"))
        append(b, shop.add_product("B-1"))
        pos_a = a.execute("SELECT max(position) FROM write.event_log").fetchone()
        pos_b = b.execute("SELECT max(position) FROM write.event_log").fetchone()
        assert pos_a is not None and pos_b is not None and pos_a[0] < pos_b[0]
        b.commit()

        seen, checkpoint = _read_all(reader, START)
        # B is committed but A (older xid) is still open: nothing past A may be read yet,
        # otherwise the checkpoint would move beyond A's events.
        assert seen == []

        a.commit()
        seen_after, checkpoint = _read_all(reader, checkpoint)
        assert seen_after == [
            "ProductAdded:product:A-1",
            "StockReceived:stock:A-1",
            "ProductAdded:product:B-1",
            "StockReceived:stock:B-1",
        ]
        assert _read_all(reader, checkpoint)[0] == []


def test_a_long_open_transaction_only_delays_later_events(db_url: str) -> None:
    shop = Shop()
    with (
        connect(db_url) as slow,
        connect(db_url, autocommit=True) as fast,
        connect(db_url, autocommit=True) as reader,
    ):
        append(fast, shop.add_product("EARLY"))
        append(slow, shop.add_product("SLOW"))  # stays open
        for i in range(3):
            append(fast, shop.add_product(f"LATE-{i}"))
        seen, checkpoint = _read_all(reader, START)
        assert seen == ["ProductAdded:product:EARLY", "StockReceived:stock:EARLY"]

        slow.commit()
        seen, checkpoint = _read_all(reader, checkpoint)
        assert [s for s in seen if s.startswith("ProductAdded")] == [
            "ProductAdded:product:SLOW",
            *(f"ProductAdded:product:LATE-{i}" for i in range(3)),
        ]


def test_a_rolled_back_transaction_does_not_hold_the_reader(db_url: str) -> None:
    shop = Shop()
    with connect(db_url) as gone, connect(db_url, autocommit=True) as conn:
        append(gone, shop.add_product("GONE"))
        gone.rollback()
        point = append(conn, shop.add_product("KEPT"))
        seen, checkpoint = _read_all(conn, START)
        assert seen == ["ProductAdded:product:KEPT", "StockReceived:stock:KEPT"]
        # The checkpoint moved past the last event, so its token counts as applied.
        assert checkpoint >= point


def test_a_short_batch_moves_the_checkpoint_past_ignored_events(db_url: str) -> None:
    shop = Shop()
    with connect(db_url, autocommit=True) as conn:
        token = append(conn, shop.add_product("ONLY-CATALOG"))
        batch = read_batch(conn, START, ["OrderPlaced"], limit=100)
        assert batch.events == []
        assert batch.next_checkpoint(START) > token


def test_old_payload_versions_are_upcast_when_read(db_url: str) -> None:
    from tests.eventlog import append_raw

    with connect(db_url, autocommit=True) as conn:
        append_raw(
            conn,
            "StockAdjusted",
            '{"sku": "X-1", "quantity_change": -2, "on_hand": 8, "reserved": 0}',
            "stock:X-1",
            schema_version=1,
        )
        (stored,) = read_batch(conn, START, ["StockAdjusted"], limit=10).events
        event = stored.event()
        assert (event.delta, event.reason) == (-2, "unspecified")  # type: ignore[union-attr]


def test_reader_and_relay_walk_the_index_without_sorting_the_log(db_url: str) -> None:
    # A query that binds ORDER BY to the select list's bigint cast sorts every event after
    # the checkpoint on every batch (catch-up then grows with the square of the log). With
    # sequential and bitmap scans priced out, a correct plan is a plain index range scan
    # with no Sort node.
    from command_side import relay
    from projections import reader

    params = {"tx": "0", "pos": 0, "horizon": str(2**40), "types": ["OrderPlaced"], "limit": 100}
    with psycopg.connect(libpq_url(db_url)) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        plans = [
            conn.execute("EXPLAIN " + reader._EVENTS, params).fetchall(),
            conn.execute("EXPLAIN " + relay._NEW_EVENTS, ("0", 0, str(2**40), 100)).fetchall(),
        ]
    for plan in plans:
        text = "\n".join(row[0] for row in plan)
        assert "Index" in text and "Sort" not in text, text


def test_an_event_reads_back_exactly_as_it_was_written(db_url: str) -> None:
    # The batch travels as one JSON document: every field must survive it unchanged.
    from shared_contracts.events import OrderLine, OrderPlaced

    awkward = 'tab\t, newline\n, back\\slash, "quotes", ünïcødé €, 🧾'
    placed = OrderPlaced(
        order_id="5b0f8a1e-2c4d-4e6f-8a9b-0c1d2e3f4a5b",
        customer_id=awkward,
        lines=(OrderLine(sku="SKU-1", name=awkward, quantity=3, unit_price=2**40),),
        total=3 * 2**40,
    )
    with connect(db_url, autocommit=True) as conn:
        with conn.transaction():
            append(conn, [placed], actor=awkward, correlation_id="req-1")
        (stored,) = read_batch(conn, START, ["OrderPlaced"], limit=10).events
        row = conn.execute(
            "SELECT transaction_id::text::bigint, position, stream_version, recorded_at,"
            " payload FROM write.event_log"
        ).fetchone()
    assert row is not None
    assert stored.event() == placed
    assert (stored.actor, stored.correlation_id) == (awkward, "req-1")
    assert (stored.transaction_id, stored.position, stored.stream_version) == row[:3]
    assert stored.recorded_at == row[3]
    assert msgspec.json.decode(stored.payload) == row[4]
