"""The worker's metrics server: several workers on one host each get their own port."""

from __future__ import annotations

import socket
import urllib.request

from orderdesk.metrics import create_metrics, start_worker_metrics_server
from tests.support import free_port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_second_worker_takes_the_next_free_port() -> None:
    base = free_port()
    first, second = create_metrics("worker"), create_metrics("worker")
    first.projection_events_applied.labels(projection="order_view").inc(11)
    second.projection_events_applied.labels(projection="order_view").inc(22)
    port_a = start_worker_metrics_server(first.registry, base, addr="127.0.0.1")
    port_b = start_worker_metrics_server(second.registry, base, addr="127.0.0.1")
    assert port_a == base
    assert base < port_b < base + 20  # base + 1 unless another process holds that one too
    assert 'orderdesk_projection_events_applied_total{projection="order_view"} 11.0' in _scrape(
        port_a
    )
    assert 'orderdesk_projection_events_applied_total{projection="order_view"} 22.0' in _scrape(
        port_b
    )


def test_port_zero_lets_the_os_choose() -> None:
    metrics = create_metrics("worker")
    port = start_worker_metrics_server(metrics.registry, 0, addr="127.0.0.1")
    assert port > 0
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    assert "orderdesk_rate_limited_total" in _scrape(port)
