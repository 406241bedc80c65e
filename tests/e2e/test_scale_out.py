"""Scale-out on existing engines: two workers in parallel, and the worker on RabbitMQ."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pika  # type: ignore[import-untyped]
import pytest
import redis

from orderdesk.database import connect
from orderdesk.settings import Settings
from projections.registry import PROJECTIONS
from shared_contracts.messages import QUEUE_NAME
from tests.e2e import rabbitmq
from tests.eventlog import Shop, append
from tests.integration.test_projections import check_views
from tests.integration.test_worker_process_metrics import (
    applied_by_projection,
    expected_applied,
)
from tests.support import Process, bearer, free_port, poll_until, wait_for_port


def _scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def _stored_applied(settings: Settings) -> dict[str, int]:
    with connect(settings.effective_read_database_url or "") as conn:
        rows = conn.execute("SELECT name, events_applied FROM read.projection_state").fetchall()
    return {name: int(applied) for name, applied in rows}


def test_two_workers_apply_every_event_exactly_once(settings: Settings, tmp_path: Path) -> None:
    # Small batches: many lock hand-overs between the two workers.
    settings = dataclasses.replace(settings, projection_batch_size=20)
    port_a, port_b = free_port(), free_port()
    relay = Process(["relay"], settings, tmp_path / "relay.log")
    workers = [
        Process(
            ["worker", "--threads", "2", "--metrics-port", str(port)],
            settings,
            tmp_path / f"worker-{i}.log",
        )
        for i, port in enumerate((port_a, port_b))
    ]
    try:
        for worker, port in zip(workers, (port_a, port_b), strict=True):
            wait_for_port(port, worker.proc)
        shop = Shop(seed=11)
        with connect(settings.database_url or "", autocommit=True) as conn:
            for i in range(6):
                append(conn, shop.add_product(f"S-{i}", price=100 + i))
        per_worker: list[dict[str, int]] = []

        def counted() -> dict[str, int]:
            per_worker[:] = [applied_by_projection(_scrape(p)) for p in (port_a, port_b)]
            return {name: per_worker[0][name] + per_worker[1][name] for name in PROJECTIONS}

        def settled(expected: dict[str, int]) -> None:
            poll_until(lambda: _stored_applied(settings) == expected, timeout=60, interval=0.1)
            # Each event was applied by exactly one of the two processes (a process counts
            # a batch just after committing it, hence the short wait).
            poll_until(lambda: counted() == expected, timeout=10, interval=0.1)

        # Bursts (one commit per command) until both workers have taken a share: which
        # consumer a wakeup reaches is the broker's choice, so one burst may well be
        # projected by one worker alone.
        for _burst in range(10):
            with connect(settings.database_url or "", autocommit=True) as conn:
                for _ in range(200):
                    append(conn, shop.random_command())
            settled(expected_applied(settings))
            if all(sum(counts.values()) > 0 for counts in per_worker):
                break
        assert all(sum(counts.values()) > 0 for counts in per_worker), per_worker
        check_views(settings, shop)
    finally:
        relay.stop()
        for worker in workers:
            assert worker.stop() == 0, worker.output()


@pytest.fixture(scope="session")
def rabbitmq_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private RabbitMQ server for the session (installed with apt when missing)."""
    try:
        rabbitmq.ensure_installed()
        server = rabbitmq.start(tmp_path_factory.mktemp("rabbitmq"))
    except rabbitmq.Unavailable as exc:
        pytest.skip(f"RabbitMQ unavailable: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


def test_write_project_read_on_rabbitmq(
    settings: Settings, rabbitmq_url: str, tmp_path: Path
) -> None:
    settings = dataclasses.replace(
        settings, broker_url=rabbitmq_url, worker_metrics_port=free_port()
    )
    command_port, query_port = free_port(), free_port()
    processes = [
        Process(["command-api", "--port", str(command_port)], settings, tmp_path / "cmd.log"),
        Process(["query-api", "--port", str(query_port)], settings, tmp_path / "query.log"),
        Process(["relay"], settings, tmp_path / "relay.log"),
        Process(["worker", "--threads", "2"], settings, tmp_path / "worker.log"),
    ]
    try:
        wait_for_port(command_port, processes[0].proc)
        wait_for_port(query_port, processes[1].proc)
        staff = bearer(settings, "staff-1", "staff")
        created = httpx.post(
            f"http://127.0.0.1:{command_port}/products",
            json={"sku": "RMQ-1", "name": "Through RabbitMQ", "price": 1234},
            headers=staff,
            timeout=10,
        )
        assert created.status_code == 201, created.text

        def read_row() -> dict[str, object] | None:
            response = httpx.get(f"http://127.0.0.1:{query_port}/products/RMQ-1", timeout=5)
            return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]

        product = poll_until(read_row, timeout=30, interval=0.1, message="read row via RabbitMQ")
        assert (product["name"], product["price"]) == ("Through RabbitMQ", 1234)
        # The wakeups went through RabbitMQ: its queue exists, Redis holds no Dramatiq keys.
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
        try:
            connection.channel().queue_declare(QUEUE_NAME, passive=True, durable=True)
        finally:
            connection.close()
        client = redis.Redis.from_url(settings.redis_url or "")
        assert client.keys("dramatiq:*") == []
        client.close()
        assert "event applied" in processes[3].output()
    finally:
        for process in processes:
            process.stop()
