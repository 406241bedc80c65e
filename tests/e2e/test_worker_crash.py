"""kill -9 of the worker in the middle of a burst loses and double-applies nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orderdesk.database import connect
from orderdesk.settings import Settings
from tests.eventlog import Shop, append
from tests.integration.test_projections import check_views
from tests.support import Process, poll_until


def test_worker_killed_mid_burst_then_restarted(settings: Settings, tmp_path: Path) -> None:
    # Small batches: many commits, so the kill lands between and inside transactions.
    settings = dataclasses.replace(settings, projection_batch_size=25)
    assert settings.database_url
    shop = Shop(seed=9)
    with connect(settings.database_url, autocommit=True) as conn:
        for i in range(8):
            append(conn, shop.add_product(f"K-{i}", price=100 + i))
        for _ in range(1500):
            with conn.transaction():
                token = append(conn, shop.random_command())
        total = conn.execute("SELECT count(*) FROM write.event_log").fetchone()
    assert total is not None

    def applied() -> int:
        with connect(settings.database_url or "") as conn:
            row = conn.execute(
                "SELECT coalesce(sum(events_applied), 0) FROM read.projection_state"
            ).fetchone()
            return int(row[0]) if row else 0

    relay = Process(["relay"], settings, tmp_path / "relay.log")
    worker = Process(["worker", "--threads", "4"], settings, tmp_path / "worker1.log")
    try:
        poll_until(lambda: applied() > 200, timeout=30, interval=0.005, message="progress")
        worker.kill()  # SIGKILL: no cleanup, mid-burst
        killed_at = applied()
        assert killed_at < 4 * total[0], "the burst finished before the kill; enlarge it"

        worker = Process(["worker", "--threads", "4"], settings, tmp_path / "worker2.log")

        def caught_up() -> bool:
            with connect(settings.database_url or "") as conn:
                rows = conn.execute(
                    "SELECT checkpoint_tx, checkpoint_pos FROM read.projection_state"
                ).fetchall()
            return len(rows) == 4 and all(tuple(r) >= tuple(token) for r in rows)

        poll_until(caught_up, timeout=60, interval=0.1, message="caught up after restart")
        check_views(settings, shop)
    finally:
        relay.stop()
        worker.stop()


def test_worker_recovers_when_its_database_connections_are_killed(
    settings: Settings, tmp_path: Path
) -> None:
    # As a database restart does it: every worker backend goes, mid-life, pools still full.
    assert settings.database_url
    shop = Shop(seed=4)
    relay = Process(["relay"], settings, tmp_path / "relay.log")
    worker = Process(["worker", "--threads", "2"], settings, tmp_path / "worker.log")
    try:
        with connect(settings.database_url, autocommit=True) as conn:

            def projected(sku: str) -> bool:
                row = conn.execute(
                    "SELECT 1 FROM read.product_view WHERE sku = %s", (sku,)
                ).fetchone()
                return row is not None

            append(conn, shop.add_product("BEFORE-1"))
            poll_until(lambda: projected("BEFORE-1"), timeout=20, message="first projection")
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name LIKE 'orderdesk-worker-%'"
            ).fetchone()
            assert killed is not None and killed[0] >= 2
            append(conn, shop.add_product("AFTER-1"))
            poll_until(lambda: projected("AFTER-1"), timeout=20, message="projection after kill")
    finally:
        relay.stop()
        assert worker.stop() == 0, worker.output()
