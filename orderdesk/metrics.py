"""Prometheus metrics: one registry per process, created by its composition root.

Nothing is registered at import time and prometheus-client's global default registry is never
used, so two apps in one test process (or a rebuilt app) never collide on metric names.
The APIs serve ``/metrics`` with :func:`metrics_endpoint`; the worker, which has no HTTP app,
serves its registry with :func:`start_worker_metrics_server`.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import (
    CONTENT_TYPE_PLAIN_0_0_4,
    generate_latest,
    start_http_server,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

log = logging.getLogger("orderdesk.metrics")

PROJECTION_STATES = ("live", "rebuilding", "stalled")
# Requests that matched no route share one label value, so scanners probing random paths
# cannot blow up the number of time series.
UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# API latencies are mostly milliseconds; the low buckets matter more than the 10 s one.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How many ports after the configured one a worker tries before giving up.
WORKER_PORT_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric family of one process, registered in its own ``registry``."""

    service: str
    registry: CollectorRegistry
    http_request_duration: Histogram
    commands: Counter
    events_appended: Counter
    projection_events_applied: Counter
    projection_events_behind: Gauge
    projection_seconds_behind: Gauge
    projection_state: Gauge
    cache_requests: Counter
    rate_limited: Counter
    sku_snapshots: Counter
    #: The labelled latency series by (route, method, status): looking a child up through
    #: ``labels()`` validates and locks on every call, a dict lookup does not.
    _request_series: dict[tuple[str, str, int], Any] = field(default_factory=dict)

    def observe_request(self, scope: Scope, status: int, seconds: float) -> None:
        """Record one HTTP request; fits ``RequestContextMiddleware(observe=...)``."""
        method = str(scope.get("method", "OTHER")).upper()
        key = (route_template(scope), method if method in _METHODS else "OTHER", status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = self.http_request_duration.labels(
                service=self.service, route=key[0], method=key[1], status=str(status)
            )
        series.observe(seconds)

    def set_projection_state(self, projection: str, state: str) -> None:
        """Set the state gauge: 1 for ``state``, 0 for the other states of ``projection``."""
        for known in {*PROJECTION_STATES, state}:
            self.projection_state.labels(projection=projection, state=known).set(
                1 if known == state else 0
            )


def create_metrics(service: str) -> Metrics:
    """A fresh registry with every orderdesk metric family, for the process ``service``."""
    registry = CollectorRegistry(auto_describe=True)

    def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labelnames=labels, registry=registry)

    def gauge(name: str, doc: str, labels: Sequence[str]) -> Gauge:
        return Gauge(name, doc, labelnames=labels, registry=registry)

    return Metrics(
        service=service,
        registry=registry,
        http_request_duration=Histogram(
            "orderdesk_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            labelnames=("service", "route", "method", "status"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        commands=counter(
            "orderdesk_commands_total",
            "Commands handled, by type and outcome.",
            ("type", "outcome"),
        ),
        events_appended=counter(
            "orderdesk_events_appended_total", "Events appended to the event log.", ("event_type",)
        ),
        projection_events_applied=counter(
            "orderdesk_projection_events_applied_total",
            "Events applied by a projection.",
            ("projection",),
        ),
        projection_events_behind=gauge(
            "orderdesk_projection_events_behind",
            "Committed events a projection has not applied yet.",
            ("projection",),
        ),
        projection_seconds_behind=gauge(
            "orderdesk_projection_seconds_behind",
            "Age of the oldest event a projection has not applied yet (0 when caught up).",
            ("projection",),
        ),
        projection_state=gauge(
            "orderdesk_projection_state",
            "1 for the projection's current state (live, rebuilding, stalled), else 0.",
            ("projection", "state"),
        ),
        cache_requests=counter(
            "orderdesk_cache_requests_total", "Read-cache lookups by result.", ("result",)
        ),
        rate_limited=counter(
            "orderdesk_rate_limited_total", "Requests rejected by the rate limiter (429)."
        ),
        sku_snapshots=counter(
            "orderdesk_sku_snapshots_total",
            "One-line orders decided from the command API's sku snapshot (hit) or reading the"
            " rows (miss), and snapshots a save found stale (stale).",
            ("result",),
        ),
    )


def _template_of(route: Any) -> str | None:
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else None


def route_template(scope: Scope, routes: Iterable[BaseRoute] | None = None) -> str:
    """The route template (``/orders/{id}``) of a request, never its raw path.

    Starlette stores the matched route in ``scope["route"]``; a request answered before
    routing (rate limited, say) is matched against the app's routes here.
    """
    template = _template_of(scope.get("route"))
    if template is not None:
        return template
    if routes is None:
        routes = getattr(scope.get("app"), "routes", None) or ()
    partial: str | None = None
    probe = {**scope}  # Route.matches reads the scope only; keep the request's scope pristine
    for route in routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return _template_of(route) or UNMATCHED_ROUTE
        if match is Match.PARTIAL and partial is None:
            partial = _template_of(route)
    return partial or UNMATCHED_ROUTE


def metrics_endpoint(registry: CollectorRegistry, path: str = "/metrics") -> Route:
    """A Starlette route serving ``registry`` in the Prometheus text format."""

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return Route(path, metrics, methods=["GET"], name="metrics")


def start_worker_metrics_server(
    registry: CollectorRegistry, port: int, addr: str = "0.0.0.0"
) -> int:
    """Serve ``registry`` on ``addr`` from a daemon thread; return the port actually used.

    Several worker processes on one host share ``ORDERDESK_WORKER_METRICS_PORT``: the first
    binds ``port``, the next ``port + 1``, and so on (the chosen port is logged, so a
    scrape config or ``orderdesk dev`` can find it). Port 0 lets the OS pick one.
    """
    candidates = [0] if port == 0 else [port + i for i in range(WORKER_PORT_ATTEMPTS)]
    for candidate in candidates:
        try:
            server, _thread = start_http_server(candidate, addr=addr, registry=registry)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and candidate != candidates[-1]:
                continue
            raise
        chosen = int(server.server_port)
        log.info("worker metrics listening", extra={"port": chosen, "configured_port": port})
        return chosen
    raise AssertionError("unreachable: the last candidate either binds or raises")
