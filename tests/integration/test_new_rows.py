"""A rebuild COPYs new rows; the live projector INSERTs them: the rows must be the same."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from orderdesk.database import connect
from projections import registry
from projections.model import Tables
from projections.reader import START, read_batch
from shared_contracts.events import OrderCancelled, OrderLine, OrderPaid, OrderPlaced, OrderShipped
from tests.eventlog import append

#: Everything COPY's text format must escape, its NULL marker spelled out, quotes and
#: backslashes JSON escapes again, and text beyond ASCII.
AWKWARD = 'tab\there, line\nbreak, cr\r, back\\slash, \\N, "quoted", ünïcødé €, 🧾'


def _orders() -> list[list[Any]]:
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    line = OrderLine(sku="SKU-1", name=AWKWARD, quantity=2, unit_price=150)
    plain = OrderLine(sku="SKU-2", name="plain", quantity=1, unit_price=99)
    return [
        [OrderPlaced(order_id=first, customer_id=AWKWARD, lines=(line, plain), total=399)],
        [OrderPaid(order_id=first, amount=399)],
        [OrderPlaced(order_id=second, customer_id="c\\2", lines=(plain,), total=99)],
        [
            OrderCancelled(
                order_id=second,
                reason=AWKWARD,
                refund=0,
                previous_status="placed",
                lines=(plain,),
            )
        ],
        [OrderPlaced(order_id=third, customer_id="c3", lines=(line,), total=300)],
        [OrderPaid(order_id=third, amount=300)],
        [OrderShipped(order_id=third)],
    ]


def _rows(conn: psycopg.Connection[Any], table: str, key: str) -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()


def test_a_rebuild_copies_exactly_the_rows_the_live_projector_inserts(db_url: str) -> None:
    with connect(db_url, autocommit=True) as conn:
        for events in _orders():
            # Half the events without a request id: NULL must stay NULL through COPY.
            append(conn, events, actor=AWKWARD, correlation_id=None)
        with conn.transaction():
            conn.execute(
                "UPDATE write.event_log SET metadata = metadata - 'correlation_id'"
                " WHERE event_type IN ('OrderPaid', 'OrderShipped')"
            )
        events = read_batch(
            conn, START, ["OrderPlaced", "OrderPaid", "OrderShipped", "OrderCancelled"], limit=100
        ).events
        assert len(events) == 7
        for name, key in (("order_view", "order_id"), ("order_history", "order_id, version")):
            projection = registry.get(name)
            conn.execute(f"CREATE TABLE read.copied (LIKE read.{name} INCLUDING ALL)")
            live = Tables({name: f"read.{name}"})
            shadow = Tables({name: "read.copied"}, bulk_load=True)
            # One event per batch (as a live projector often sees them) and the whole
            # log as one batch (as a rebuild does) must give the same rows.
            with conn.transaction(), conn.cursor() as cur:
                for stored in events:
                    projection.apply(cur, [stored], live)
                projection.apply(cur, events, shadow)
            expected = _rows(conn, f"read.{name}", key)
            assert _rows(conn, "read.copied", key) == expected
            assert any(AWKWARD in row for row in expected)  # the awkward text got there
            conn.execute("DROP TABLE read.copied")
