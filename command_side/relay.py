"""``orderdesk relay``: wake the projectors when events are committed.

The event log's statement trigger NOTIFYs ``orderdesk_events`` inside the writing
transaction, so a notification arrives exactly when a batch of events commits. The relay
LISTENs for it (polling every ``relay_poll_interval`` as a fallback for anything missed),
coalesces a burst — it drains every pending notification and sends at most one
``project(name)`` message per projection per wakeup, and no more often than every
``COALESCE_SECONDS`` — and survives database restarts by reconnecting with backoff.

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

from orderdesk.database import connect
from orderdesk.settings import Settings

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "orderdesk_events"
#: The message the projectors consume (projections.broker and projections.registry hold
#: the same names; the write side may not import the projections package).
QUEUE_NAME = "projections"
ACTOR_NAME = "project"
PROJECTION_NAMES = ("order_view", "product_view", "daily_sales", "order_history")
#: Wakeups closer together than this are merged into one (bounded extra latency).
COALESCE_SECONDS = 0.01
MAX_RECONNECT_DELAY = 5.0


def _broker(url: str) -> dramatiq.Broker:
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=url)  # type: ignore[no-untyped-call]


class Relay:
    """Sends ``project(name)`` for every projection through ``broker``; counts what it did."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.wakeups = 0
        self.messages = 0

    def wake(self, reason: str) -> None:
        """One wakeup: one message per projection."""
        self.wakeups += 1
        for name in PROJECTION_NAMES:
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=(name,), kwargs={}, options={}
            )
            self.broker.enqueue(message)
            self.messages += 1
        log.debug("woke projectors (%s)", reason)


def _head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(position), 0) FROM write.event_log").fetchone()
    return int(row[0]) if row else 0


def _listen(
    conn: psycopg.Connection[Any], relay: Relay, settings: Settings, stop: threading.Event
) -> None:
    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
    head = _head(conn)
    relay.wake("start")  # anything committed while no relay was listening
    last_wake = time.monotonic()
    next_poll = last_wake + settings.relay_poll_interval
    while not stop.is_set():
        timeout = max(0.0, min(next_poll - time.monotonic(), 0.5))
        notified = False
        for _ in conn.notifies(timeout=timeout, stop_after=1):
            notified = True
        if notified:
            # Merge a burst: wait out the coalescing gap, then drain what queued meanwhile.
            gap = COALESCE_SECONDS - (time.monotonic() - last_wake)
            if gap > 0:
                time.sleep(gap)
            for _ in conn.notifies(timeout=0.0):
                pass
            _send(relay, "notify")
            last_wake = time.monotonic()
        if time.monotonic() >= next_poll:
            # Fallback for a lost notification: anything new since the last poll?
            new_head = _head(conn)
            if new_head != head and not notified:
                _send(relay, "poll")
                last_wake = time.monotonic()
            head = new_head
            next_poll = time.monotonic() + settings.relay_poll_interval


def _send(relay: Relay, reason: str) -> None:
    try:
        relay.wake(reason)
    except Exception as exc:
        # The broker is down: the worker's own safety-net poll and the next wakeup cover it.
        log.warning("could not enqueue projector wakeups: %s", exc)


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
    relay = Relay(_broker(broker_url))
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
