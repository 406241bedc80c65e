"""The gap-safe reader of ``write.event_log`` (DESIGN.md §2).

Ordering by ``position`` alone skips events: a transaction that took position 5 may commit
after one that took position 6, and a reader that already moved past 6 never sees 5. We
read only rows written by transactions that have *finished* — those with a transaction id
below the oldest transaction still running (``pg_snapshot_xmin``) — and walk them in
``(transaction_id, position)`` order. A transaction that is still open only holds back
the horizon; its events (and everything after them) are read once it ends.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection
from typing import Any

import msgspec
import psycopg

from shared_contracts.events import Event, decode_payload
from shared_contracts.tokens import LogPoint

START = LogPoint(0, 0)

_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"

# transaction_id < horizon: every such transaction has committed or aborted, so nothing
# can appear below the horizon later. The (transaction_id, position) index serves this as
# one range scan that stops after ``limit`` rows. ORDER BY must name the COLUMNS
# (``e.transaction_id``): a bare ``transaction_id`` resolves to an output column cast to
# bigint first, which no index provides, and PostgreSQL then sorts every event after the
# checkpoint for each batch (O(log size) per batch; catch-up of a 1M-event log took 517 s
# instead of about 60).
#
# The batch comes back as ONE JSON array of arrays (one per event, in StoredEvent's field
# order), which msgspec turns into StoredEvents in C: fetching eleven columns per row and
# building each object in Python cost 3.5 us an event, a third of a rebuild's Python time;
# the server spends about 1.3 us more an event rendering the JSON (docs/benchmarks.md).
_EVENTS = """
SELECT coalesce(json_agg(json_build_array(
         e.transaction_id::text::bigint, e.position, e.stream_version, e.event_type,
         e.schema_version, e.payload, e.metadata->>'correlation_id', e.metadata->>'actor',
         e.recorded_at) ORDER BY e.transaction_id, e.position), '[]')::text
FROM (
  SELECT e.transaction_id, e.position, e.stream_version, e.event_type, e.schema_version,
         e.payload, e.metadata, e.recorded_at
  FROM write.event_log AS e
  WHERE (e.transaction_id, e.position) > (%(tx)s::text::xid8, %(pos)s)
    AND e.transaction_id < %(horizon)s::text::xid8
    AND e.event_type = ANY(%(types)s)
  ORDER BY e.transaction_id, e.position
  LIMIT %(limit)s
) AS e
"""


class StoredEvent(msgspec.Struct, array_like=True, gc=False):
    """One event-log row, the columns projections use; :meth:`event` decodes (and
    upcasts) the payload on demand.

    Treat it as read-only (it is decoded straight from the batch's JSON, see ``_EVENTS``).
    ``event_id`` and ``stream_id`` are left out: no projection needs them (the stream is
    in the payload), and they were a sixth of the server's work per batch."""

    transaction_id: int
    position: int
    stream_version: int
    event_type: str
    schema_version: int
    #: The payload's JSON as stored (a view into the batch's text: no copy per event).
    payload: msgspec.Raw
    #: ``metadata.correlation_id``: the request that caused the event, if any. (Only the
    #: fields the projectors use are read: rendering the whole metadata object as text
    #: cost the server more than the two lookups.)
    correlation_id: str | None
    #: ``metadata.actor``: who issued the command, if known.
    actor: str | None
    #: When the event was recorded, as the server wrote it in JSON (ISO 8601 with the UTC
    #: offset). Projections pass it on to timestamptz columns as it is: parsing it and
    #: formatting it again for COPY cost 1.5 us a row, a seventh of a rebuild's Python time.
    recorded_at_text: str
    #: The decoded payload once :meth:`event` has run (events are frozen Structs, so the
    #: projections of one batch can share it: a rebuild decodes each event once, not 4x).
    #: Never part of a row the server sends.
    _decoded: Any = None

    @property
    def recorded_at(self) -> dt.datetime:
        """When the event was recorded."""
        return dt.datetime.fromisoformat(self.recorded_at_text)

    @property
    def point(self) -> LogPoint:
        """This event's place in the reading order (what a consistency token names)."""
        return LogPoint(self.transaction_id, self.position)

    def payload_text(self) -> str:
        """The payload's JSON as a str."""
        return str(memoryview(self.payload), "utf-8")

    def event(self) -> Event:
        """The payload as the current contract Struct (old schema versions upcast).

        Decoding is left to the projections so that a payload only one projection cannot
        digest stalls that projection alone.
        """
        decoded: Event | None = self._decoded
        if decoded is None:
            decoded = decode_payload(self.event_type, self.schema_version, self.payload)
            self._decoded = decoded
        return decoded


_batch = msgspec.json.Decoder(list[StoredEvent])


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """Events read after a checkpoint, and the horizon they were read below."""

    events: list[StoredEvent]
    horizon: int
    limit: int

    @property
    def complete(self) -> bool:
        """True when everything below the horizon has been read (a short batch)."""
        return len(self.events) < self.limit

    def next_checkpoint(self, after: LogPoint) -> LogPoint:
        """The checkpoint once this batch is applied.

        After a short batch every finished transaction has been read, so the checkpoint
        may move to ``(horizon, 0)`` even when the last events were of types this reader
        ignores; that is what lets a consistency token below the horizon count as applied.
        """
        point = self.events[-1].point if self.events else after
        if self.complete:
            point = max(point, LogPoint(self.horizon, 0))
        return point


def read_batch(
    conn: psycopg.Connection[Any],
    after: LogPoint,
    event_types: Collection[str],
    limit: int,
) -> Batch:
    """Up to ``limit`` events of ``event_types`` after ``after``, from finished transactions.

    ``conn`` is a connection to the WRITE database in autocommit mode. The horizon is read
    first, in its own statement: snapshot xmin never moves backwards, so every event below
    it is final by the time the second statement runs.
    """
    horizon_row = conn.execute(_HORIZON).fetchone()
    assert horizon_row is not None
    horizon = int(horizon_row[0])
    row = conn.execute(
        _EVENTS,
        {
            "tx": str(after.transaction_id),
            "pos": after.position,
            "horizon": str(horizon),
            "types": list(event_types),
            "limit": limit,
        },
    ).fetchone()
    assert row is not None
    return Batch(_batch.decode(row[0]), horizon, limit)


def count_after(
    conn: psycopg.Connection[Any], after: LogPoint, event_types: Collection[str]
) -> int:
    """How many events of ``event_types`` lie after ``after`` (committed or not yet final)."""
    row = conn.execute(
        "SELECT count(*) FROM write.event_log"
        " WHERE (transaction_id, position) > (%s::text::xid8, %s) AND event_type = ANY(%s)",
        (str(after.transaction_id), after.position, list(event_types)),
    ).fetchone()
    return int(row[0]) if row else 0
