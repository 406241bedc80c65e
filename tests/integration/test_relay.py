"""The relay wakes the projectors on commit, coalesces bursts, polls as a fallback and
survives losing its database connection; relay + worker turn events into read rows."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import msgspec
import redis

from command_side.relay import run_relay
from orderdesk.database import connect
from orderdesk.settings import Settings
from shared_contracts.messages import EVERY_PROJECTION
from tests.eventlog import Shop, append
from tests.support import Process, poll_until

QUEUE = "dramatiq:projections"


def _queued(client: redis.Redis) -> list[str]:
    """The projection names of the messages waiting in the Dramatiq queue."""
    ids = client.lrange(QUEUE, 0, -1)
    bodies = client.hmget(QUEUE + ".msgs", ids) if ids else []
    return [msgspec.json.decode(b)["args"][0] for b in bodies if b]


def _settled(client: redis.Redis) -> list[str] | None:
    """The queued names once the relay has stopped adding to them (whole wakeups only)."""
    first = _queued(client)
    time.sleep(0.15)
    second = _queued(client)
    return second if first == second and second else None


def test_relay_wakes_on_commit_coalesces_polls_and_reconnects(settings: Settings) -> None:
    # A long poll interval: within the first checks only NOTIFY can explain a wakeup.
    settings = dataclasses.replace(settings, relay_poll_interval=30.0)
    client = redis.Redis.from_url(settings.redis_url or "")
    stop = threading.Event()
    thread = threading.Thread(target=run_relay, args=(settings, stop), daemon=True)
    thread.start()
    try:
        # Startup wake: one message, a sweep of every projection.
        poll_until(lambda: _queued(client) == [EVERY_PROJECTION], message="startup wakeup")
        client.delete(QUEUE, QUEUE + ".msgs")

        shop = Shop()
        assert settings.database_url
        with connect(settings.database_url, autocommit=True) as conn:
            with conn.transaction():  # one commit, one notification
                append(conn, shop.add_product("ONE"))
            queued = poll_until(lambda: _settled(client), message="wakeup on commit")
            assert queued == [EVERY_PROJECTION]

            # A burst of 100 commits becomes few messages, each a sweep of every projection.
            client.delete(QUEUE, QUEUE + ".msgs")
            for i in range(100):
                append(conn, shop.add_product(f"BURST-{i}"))
            burst = poll_until(lambda: _settled(client), message="burst wakeups settled")
            assert set(burst) == {EVERY_PROJECTION} and len(burst) < 100 / 2, len(burst)

            # Kill the relay's connection: it reconnects and keeps relaying.
            client.delete(QUEUE, QUEUE + ".msgs")
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'orderdesk-relay'"
            ).fetchall()
            assert killed == [(True,)]
            poll_until(
                lambda: (
                    conn.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE application_name = 'orderdesk-relay'"
                    ).fetchone()
                    == (1,)
                ),
                message="relay reconnected",
            )
            client.delete(QUEUE, QUEUE + ".msgs")
            append(conn, shop.add_product("AFTER-KILL"))
            poll_until(lambda: _queued(client), message="wakeup after reconnect")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_relay_polls_when_notifications_are_lost(settings: Settings) -> None:
    settings = dataclasses.replace(settings, relay_poll_interval=0.3)
    client = redis.Redis.from_url(settings.redis_url or "")
    assert settings.database_url
    with connect(settings.database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE write.event_log DISABLE TRIGGER event_log_notify")
        stop = threading.Event()
        thread = threading.Thread(target=run_relay, args=(settings, stop), daemon=True)
        thread.start()
        try:
            poll_until(lambda: _queued(client) == [EVERY_PROJECTION], message="startup wakeup")
            client.delete(QUEUE, QUEUE + ".msgs")
            append(conn, Shop().add_product("SILENT"))
            poll_until(lambda: _queued(client), message="wakeup by polling")
        finally:
            stop.set()
            thread.join(10)


def test_relay_and_worker_processes_turn_events_into_read_rows(
    settings: Settings, tmp_path: Path
) -> None:
    relay = Process(["relay"], settings, tmp_path / "relay.log")
    worker = Process(["worker", "--threads", "2"], settings, tmp_path / "worker.log")
    try:
        shop = Shop()
        assert settings.database_url
        with connect(settings.database_url, autocommit=True) as conn:
            append(conn, shop.add_product("E2E-1", price=700))
            placed = shop.place("bob", ["E2E-1"])
            append(conn, placed)

            def projected() -> bool:
                row = conn.execute(
                    "SELECT units_sold FROM read.product_view WHERE sku = 'E2E-1'"
                ).fetchone()
                return row is not None and row[0] == placed[-1].lines[0].quantity  # type: ignore[union-attr]

            poll_until(projected, timeout=20, message="product row projected")
            poll_until(
                lambda: conn.execute("SELECT count(*) FROM read.order_history").fetchone() == (1,),
                message="history row",
            )

        def relay_started() -> bool:
            lines = [
                msgspec.json.decode(line)
                for line in relay.output().splitlines()
                if line.startswith("{")
            ]
            return any(line["message"] == "relay started" for line in lines)

        # The worker's own safety-net poll may project the events before the relay has
        # finished starting; its log line comes when it has.
        poll_until(relay_started, timeout=20, message="the relay's start line")
    finally:
        assert relay.stop() == 0, relay.output()
        assert worker.stop() == 0, worker.output()
