"""A real worker process serves its projection metrics on its own port."""

from __future__ import annotations

import dataclasses
import re
import urllib.request
from pathlib import Path

from orderdesk.database import connect
from orderdesk.settings import Settings
from projections.registry import PROJECTIONS
from tests.eventlog import Shop, append
from tests.support import Process, free_port, poll_until, wait_for_port

_APPLIED = re.compile(r'^orderdesk_projection_events_applied_total\{projection="(\w+)"\} (\S+)$')
_STATE = re.compile(r'^orderdesk_projection_state\{projection="(\w+)",state="live"\} 1\.0$')


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def applied_by_projection(text: str) -> dict[str, int]:
    """``orderdesk_projection_events_applied_total`` per projection from a scrape."""
    found = {}
    for line in text.splitlines():
        if match := _APPLIED.match(line):
            found[match[1]] = int(float(match[2]))
    return found


def expected_applied(settings: Settings) -> dict[str, int]:
    """How many events of the log each projection handles."""
    with connect(settings.database_url or "") as conn:
        rows = conn.execute(
            "SELECT event_type, count(*) FROM write.event_log GROUP BY event_type"
        ).fetchall()
    counts: dict[str, int] = dict(rows)
    return {
        name: sum(counts.get(t, 0) for t in projection.event_types)
        for name, projection in PROJECTIONS.items()
    }


def test_worker_metrics_show_events_applied_per_projection(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    settings = dataclasses.replace(settings, worker_metrics_port=port)
    relay = Process(["relay"], settings, tmp_path / "relay.log")
    worker = Process(["worker", "--threads", "2"], settings, tmp_path / "worker.log")
    try:
        wait_for_port(port, worker.proc)
        before = applied_by_projection(_scrape(port))
        assert before == dict.fromkeys(PROJECTIONS, 0), "every series exists from the start"

        shop = Shop(seed=3)
        with connect(settings.database_url or "", autocommit=True) as conn:
            for sku in ("M-1", "M-2", "M-3"):
                append(conn, shop.add_product(sku))
            for _ in range(40):
                append(conn, shop.random_command())
        expected = expected_applied(settings)
        assert all(expected.values()), expected

        def all_applied() -> str | None:
            text = _scrape(port)
            return text if applied_by_projection(text) == expected else None

        text = poll_until(
            all_applied,
            timeout=30,
            message=f"events applied {expected}",
        )
        live = {m[1] for line in text.splitlines() if (m := _STATE.match(line))}
        assert live == set(PROJECTIONS)
        assert 'orderdesk_projection_events_behind{projection="order_view"} 0.0' in text
    finally:
        relay.stop()
        worker.stop()
