"""``orderdesk relay``: wake the projectors when events are committed.

The event log's statement trigger NOTIFYs ``orderdesk_events`` inside the writing
transaction, so a notification arrives exactly when a batch of events commits. The relay
LISTENs for it (polling every ``relay_poll_interval`` as a fallback for anything missed),
coalesces a burst — it drains every pending notification and sends one ``project("*")``
message per wakeup (the worker sweeps every projection for it), no more often than
:func:`coalescing_gap` allows — and survives database restarts by reconnecting with backoff.

The relay carries no state: the projectors read the log from their own checkpoints, so a
lost or duplicated wakeup only changes *when* events are applied, never *whether*.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import dramatiq
import psycopg

from orderdesk.broker import make_broker, project_message
from orderdesk.database import connect
from orderdesk.logs import correlation_id
from orderdesk.settings import Settings
from shared_contracts.messages import EVERY_PROJECTION

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "orderdesk_events"
#: Wakeups closer together than this are merged into one (bounded extra latency).
COALESCE_SECONDS = 0.01
#: ... and a busy log waits longer: this much per commit of the previous wakeup, up to
#: MAX_COALESCE_SECONDS (see :func:`coalescing_gap`).
COALESCE_PER_COMMIT = 0.002
MAX_COALESCE_SECONDS = 0.1
MAX_RECONNECT_DELAY = 5.0
#: At most this many new events are named in one wakeup's log line (the rest, next time).
LOG_EVENTS_LIMIT = 1000

_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
# The events committed since the last wakeup, in the projectors' gap-safe order: only
# finished transactions (below the snapshot horizon), so none is skipped for the log.
# ORDER BY names the table's columns (e.*): unqualified, it would bind to the bigint cast in
# the select list, which no index covers, and every wakeup would sort the rest of the log.
_NEW_EVENTS = """
SELECT e.transaction_id::text::bigint, e.position, e.metadata->>'correlation_id'
FROM write.event_log AS e
WHERE (e.transaction_id, e.position) > (%s::text::xid8, %s)
  AND e.transaction_id < %s::text::xid8
ORDER BY e.transaction_id, e.position
LIMIT %s
"""


class Relay:
    """Sends ``project("*")`` through ``broker`` on each wakeup; counts what it did."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.wakeups = 0
        self.messages = 0

    def wake(self, reason: str) -> None:
        """One wakeup: one message, for every projection."""
        self.wakeups += 1
        self.broker.enqueue(project_message(EVERY_PROJECTION))
        self.messages += 1


class EventCursor:
    """Where the relay's log of committed events stands in the reading order."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        # Start at the horizon: what committed before the relay started is not news.
        self.point = (_horizon(conn), 0)

    def new_request_ids(self, conn: psycopg.Connection[Any]) -> tuple[int, list[str]]:
        """(count, distinct correlation ids) of the events committed since the last call."""
        horizon = _horizon(conn)
        rows = conn.execute(
            _NEW_EVENTS, (str(self.point[0]), self.point[1], str(horizon), LOG_EVENTS_LIMIT)
        ).fetchall()
        if rows:
            self.point = (int(rows[-1][0]), int(rows[-1][1]))
        return len(rows), list(dict.fromkeys(r[2] for r in rows if r[2]))


def coalescing_gap(commits: int) -> float:
    """Seconds between two wakeups, after one that carried ``commits`` notifications.

    A sweep costs the worker about as much as a few dozen events of work whatever it
    carries (~5 ms of CPU: its round trips and Dramatiq's thread handoffs), so under load
    fewer, fuller sweeps project more per second: measured with 32 clients placing orders,
    worker CPU per order 425 -> 182 us with 50 ms between wakeups instead of 10, and
    130 -> 96 us with 100 ms instead of 50 (POST /orders +4%; docs/benchmarks.md, "Third
    session" and "Fifth session"). Light traffic keeps the 10 ms floor and its latency: a
    gap of g seconds carries rate * g commits, so it grows past the floor only when
    rate * COALESCE_PER_COMMIT > 1, above 500 commits/s.
    """
    return min(MAX_COALESCE_SECONDS, max(COALESCE_SECONDS, commits * COALESCE_PER_COMMIT))


def _horizon(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(_HORIZON).fetchone()
    return int(row[0]) if row else 0


def _head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(position), 0) FROM write.event_log").fetchone()
    return int(row[0]) if row else 0


def _listen(
    conn: psycopg.Connection[Any], relay: Relay, settings: Settings, stop: threading.Event
) -> None:
    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
    head = _head(conn)
    cursor = EventCursor(conn)
    _send(relay, "start", conn, cursor)  # anything committed while no relay was listening
    last_wake = time.monotonic()
    next_poll = last_wake + settings.relay_poll_interval
    commits = 0  # notifications the previous wakeup carried (one per committing command)
    while not stop.is_set():
        timeout = max(0.0, min(next_poll - time.monotonic(), 0.5))
        notified = False
        for _ in conn.notifies(timeout=timeout, stop_after=1):
            notified = True
        if notified:
            # Merge a burst: wait out the coalescing gap, then drain what queued meanwhile.
            gap = coalescing_gap(commits) - (time.monotonic() - last_wake)
            if gap > 0:
                time.sleep(gap)
            commits = 1 + sum(1 for _ in conn.notifies(timeout=0.0))
            _send(relay, "notify", conn, cursor)
            last_wake = time.monotonic()
        if time.monotonic() >= next_poll:
            # Fallback for a lost notification: anything new since the last poll?
            new_head = _head(conn)
            if new_head != head and not notified:
                _send(relay, "poll", conn, cursor)
                last_wake = time.monotonic()
            head = new_head
            next_poll = time.monotonic() + settings.relay_poll_interval


def _send(relay: Relay, reason: str, conn: psycopg.Connection[Any], cursor: EventCursor) -> None:
    """Wake the projectors, then log one line naming the requests behind the wakeup."""
    try:
        relay.wake(reason)
        sent = True
    except Exception as exc:
        # The broker is down: the worker's own safety-net poll and the next wakeup cover it.
        log.warning("could not enqueue projector wakeups: %s", exc)
        sent = False
    if not log.isEnabledFor(logging.INFO):
        return  # the line below is the only reader of the events (two queries a wakeup)
    # After the messages are out, so logging never delays the projectors.
    events, request_ids = cursor.new_request_ids(conn)
    only = request_ids[0] if len(request_ids) == 1 else None
    token = correlation_id.set(only) if only else None
    try:
        log.info(
            "relay woke projectors" if sent else "relay could not wake projectors",
            extra={
                "reason": reason,
                "events": events,
                "request_ids": request_ids,
                "messages": 1 if sent else 0,
            },
        )
    finally:
        if token is not None:
            correlation_id.reset(token)


def run_relay(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run until ``stop`` is set (or forever); reconnects to the database with backoff."""
    assert settings.database_url, "the relay needs ORDERDESK_DATABASE_URL"
    broker_url = settings.effective_broker_url
    assert broker_url, "the relay needs ORDERDESK_BROKER_URL or ORDERDESK_REDIS_URL"
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        import signal

        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    relay = Relay(make_broker(broker_url))
    delay = 0.1
    log.info("relay started", extra={"poll_interval": settings.relay_poll_interval})
    try:
        while not stop.is_set():
            try:
                with connect(
                    settings.database_url, autocommit=True, application_name="orderdesk-relay"
                ) as conn:
                    log.info("relay listening on %s", EVENTS_CHANNEL)
                    delay = 0.1
                    _listen(conn, relay, settings, stop)
            except psycopg.Error as exc:
                log.warning(
                    "relay lost the database, reconnecting in %.1fs: %s",
                    delay,
                    exc,
                    extra={"retry_in": delay},
                )
                stop.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
    finally:
        relay.broker.close()
        log.info("relay stopped", extra={"wakeups": relay.wakeups, "messages": relay.messages})
