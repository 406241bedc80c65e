"""``read.order_history``: the audit trail, one row per order event.

``data`` is the payload as the current contract shapes it (old versions upcast), so the
history endpoint shows every event in today's form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from projections.model import Affected, Projection, Tables
from projections.reader import StoredEvent
from shared_contracts.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    encode_payload,
)

NAME = "order_history"
VERSION = 1
EVENT_TYPES = frozenset(c.__name__ for c in (OrderPlaced, OrderPaid, OrderShipped, OrderCancelled))


def apply(cur: psycopg.Cursor[Any], events: Sequence[StoredEvent], tables: Tables) -> Affected:
    """Insert one history row per event (the primary key makes a replay a no-op)."""
    if not events:
        return Affected()
    decoded = [(stored, stored.event(), stored.metadata()) for stored in events]
    order_ids: list[str] = []
    for _, event, _ in decoded:
        assert isinstance(event, OrderPlaced | OrderPaid | OrderShipped | OrderCancelled)
        order_ids.append(event.order_id)
    cur.execute(
        f"INSERT INTO {tables[NAME]} (order_id, version, event_type, at, actor, request_id, data)"
        " SELECT * FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::timestamptz[],"
        " %b::text[], %b::text[], %b::jsonb[]) ON CONFLICT DO NOTHING",
        (
            order_ids,
            [s.stream_version for s, _, _ in decoded],
            [s.event_type for s, _, _ in decoded],
            [s.recorded_at for s, _, _ in decoded],
            [_text(m.get("actor")) for _, _, m in decoded],
            [_text(m.get("correlation_id")) for _, _, m in decoded],
            [encode_payload(e).decode() for _, e, _ in decoded],
        ),
    )
    return Affected()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


PROJECTION = Projection(NAME, VERSION, EVENT_TYPES, (NAME,), apply)
