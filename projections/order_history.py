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
from projections.new_rows import insert_new
from projections.reader import StoredEvent
from shared_contracts.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    encode_payload,
)

NAME = "order_history"
#: The columns of a history row and their SQL types (see projections.new_rows).
_COLUMNS = {
    "order_id": "uuid",
    "version": "int",
    "event_type": "text",
    "at": "timestamptz",
    "actor": "text",
    "request_id": "text",
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
            (
                event.order_id,
                stored.stream_version,
                stored.event_type,
                stored.recorded_at_text,
                stored.actor,
                stored.correlation_id,
                # As stored when it is the current shape; upcast events re-encoded.
                stored.payload
                if stored.schema_version == event.SCHEMA_VERSION
                else msgspec.Raw(encode_payload(event)),
            )
        )
    insert_new(cur, tables[NAME], _COLUMNS, rows, bulk_load=tables.bulk_load)
    return Affected()


PROJECTION = Projection(NAME, VERSION, EVENT_TYPES, (NAME,), apply, append_only=True)
