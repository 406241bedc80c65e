"""Metric families, route templates and the /metrics endpoint (in-process, no servers)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from orderdesk.http import RequestContextMiddleware, exception_handlers
from orderdesk.metrics import Metrics, create_metrics, metrics_endpoint


async def _order(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"]})


class _RejectEarly:
    """Stands in for a middleware (a rate limiter) answering before routing happens."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "DELETE":
            response = JSONResponse({}, status_code=429)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _app(metrics: Metrics) -> Starlette:
    observe: Callable[[Scope, int, float], None] = metrics.observe_request
    return Starlette(
        routes=[
            Route("/orders/{id}", _order, methods=["GET", "DELETE"]),
            metrics_endpoint(metrics.registry),
        ],
        middleware=[
            Middleware(RequestContextMiddleware, observe=observe),
            Middleware(_RejectEarly),
        ],
        exception_handlers=exception_handlers(),
    )


def _count(metrics: Metrics, route: str, method: str, status: str) -> float | None:
    return metrics.registry.get_sample_value(
        "orderdesk_http_request_duration_seconds_count",
        {"service": "query-api", "route": route, "method": method, "status": status},
    )


def test_requests_are_labelled_by_route_template_never_raw_path() -> None:
    metrics = create_metrics("query-api")
    with TestClient(_app(metrics)) as client:
        client.get("/orders/a1")
        client.get("/orders/b2")
        client.delete("/orders/c3")  # answered before routing: matched here instead
        client.post("/orders/d4")  # 405 from a partial match
        client.get("/no/such/path")
        body = client.get("/metrics").text
    assert _count(metrics, "/orders/{id}", "GET", "200") == 2.0
    assert _count(metrics, "/orders/{id}", "DELETE", "429") == 1.0
    assert _count(metrics, "/orders/{id}", "POST", "405") == 1.0
    assert _count(metrics, "unmatched", "GET", "404") == 1.0
    assert "a1" not in body and "/no/such/path" not in body


def test_metrics_endpoint_serves_every_family_as_prometheus_text() -> None:
    metrics = create_metrics("command-api")
    metrics.commands.labels(type="PlaceOrder", outcome="ok").inc()
    metrics.events_appended.labels(event_type="OrderPlaced").inc(3)
    metrics.projection_events_applied.labels(projection="order_view").inc(5)
    metrics.projection_events_behind.labels(projection="order_view").set(7)
    metrics.projection_seconds_behind.labels(projection="order_view").set(1.5)
    metrics.set_projection_state("order_view", "stalled")
    metrics.cache_requests.labels(result="hit").inc()
    metrics.rate_limited.inc()
    with TestClient(_app(metrics)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for line in (
        'orderdesk_commands_total{outcome="ok",type="PlaceOrder"} 1.0',
        'orderdesk_events_appended_total{event_type="OrderPlaced"} 3.0',
        'orderdesk_projection_events_applied_total{projection="order_view"} 5.0',
        'orderdesk_projection_events_behind{projection="order_view"} 7.0',
        'orderdesk_projection_seconds_behind{projection="order_view"} 1.5',
        'orderdesk_projection_state{projection="order_view",state="stalled"} 1.0',
        'orderdesk_projection_state{projection="order_view",state="live"} 0.0',
        'orderdesk_cache_requests_total{result="hit"} 1.0',
        "orderdesk_rate_limited_total 1.0",
        "# TYPE orderdesk_http_request_duration_seconds histogram",
    ):
        assert line in text, line


def test_each_registry_is_independent() -> None:
    first, second = create_metrics("a"), create_metrics("b")  # no duplicate-name error
    first.rate_limited.inc()
    assert first.registry.get_sample_value("orderdesk_rate_limited_total") == 1.0
    assert second.registry.get_sample_value("orderdesk_rate_limited_total") == 0.0
