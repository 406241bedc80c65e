"""``read.daily_sales``: per UTC day, orders/units/revenue placed and orders cancelled.

An order counts on the day it was placed (gross of later cancellations); a cancellation
counts on the day it happened. A batch is summed per day in Python and upserted at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import psycopg

from projections.model import Affected, Projection, Tables
from projections.reader import StoredEvent
from shared_contracts.events import OrderCancelled, OrderPlaced

NAME = "daily_sales"
VERSION = 1
EVENT_TYPES = frozenset({"OrderPlaced", "OrderCancelled"})


def apply(cur: psycopg.Cursor[Any], events: Sequence[StoredEvent], tables: Tables) -> Affected:
    """Sum the batch per day and add it to the stored days in one upsert."""
    days: dict[dt.date, list[int]] = {}
    for stored in events:
        event = stored.event()
        day = stored.recorded_at.astimezone(dt.UTC).date()
        sums = days.setdefault(day, [0, 0, 0, 0])
        if isinstance(event, OrderPlaced):
            sums[0] += 1
            sums[1] += sum(line.quantity for line in event.lines)
            sums[2] += event.total
        elif isinstance(event, OrderCancelled):
            sums[3] += 1
    if days:
        keys = sorted(days)
        cur.execute(
            f"INSERT INTO {tables[NAME]} AS d (day, orders, units, revenue, cancelled)"
            " SELECT * FROM unnest(%b::date[], %b::bigint[], %b::bigint[], %b::bigint[],"
            " %b::bigint[]) ON CONFLICT (day) DO UPDATE SET"
            " orders = d.orders + excluded.orders, units = d.units + excluded.units,"
            " revenue = d.revenue + excluded.revenue, cancelled = d.cancelled + excluded.cancelled",
            (keys, *([days[k][i] for k in keys] for i in range(4))),
        )
    return Affected()


PROJECTION = Projection(NAME, VERSION, EVENT_TYPES, (NAME,), apply)
