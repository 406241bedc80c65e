"""``read.order_history``: the audit trail, one row per order event.

``data`` is the payload as the current contract shapes it (old versions upcast), so the
history endpoint shows every event in today's form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg

from projections.model import Affected, Projection, Tables
from projections.reader import StoredEvent
from projections.recordset import recordset, rows_json
from shared_contracts.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    encode_payload,
)

NAME = "order_history"
#: The keys of a history row and their SQL types (see projections.recordset).
_ROW = {
    "id": "uuid",
    "v": "int",
    "t": "text",
    "at": "timestamptz",
    "actor": "text",
    "rid": "text",
    "data": "jsonb",
}
VERSION = 1
EVENT_TYPES = frozenset(c.__name__ for c in (OrderPlaced, OrderPaid, OrderShipped, OrderCancelled))


def apply(cur: psycopg.Cursor[Any], events: Sequence[StoredEvent], tables: Tables) -> Affected:
    """Insert one history row per event (the primary key makes a replay a no-op)."""
    if not events:
        return Affected()
    rows = []
    for stored in events:
        event = stored.event()
        assert isinstance(event, OrderPlaced | OrderPaid | OrderShipped | OrderCancelled)
        rows.append(
            {
                "id": event.order_id,
                "v": stored.stream_version,
                "t": stored.event_type,
                "at": stored.recorded_at,
                "actor": stored.actor,
                "rid": stored.correlation_id,
                "data": msgspec.Raw(
                    # As stored when it is the current shape; upcast events re-encoded.
                    stored.payload
                    if stored.schema_version == event.SCHEMA_VERSION
                    else encode_payload(event)
                ),
            }
        )
    cur.execute(
        f"INSERT INTO {tables[NAME]} (order_id, version, event_type, at, actor, request_id, data)"
        f" SELECT r.id, r.v, r.t, r.at, r.actor, r.rid, r.data FROM {recordset('r', _ROW)}"
        " ON CONFLICT DO NOTHING",
        (rows_json(rows),),
    )
    return Affected()


PROJECTION = Projection(NAME, VERSION, EVENT_TYPES, (NAME,), apply)
