"""The query API's composition root: ``create_app(settings)`` wires the read-database pool,
Redis, the checkpoint watcher, the routes, the metrics registry, health checks and the
OpenAPI document. Nothing is created at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg_pool
import redis.asyncio as aredis
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from orderdesk.auth import TokenVerifier
from orderdesk.database import PoolRecovery, async_pool
from orderdesk.health import health_routes
from orderdesk.http import RequestContextMiddleware, exception_handlers
from orderdesk.metrics import Metrics, create_metrics, metrics_endpoint
from orderdesk.openapi import openapi_route
from orderdesk.problems import ProblemError, problem_response
from orderdesk.redis_client import async_redis
from orderdesk.settings import Settings
from orderdesk.verified_tokens import CachedVerifier
from query_side import orders, products, projections_status, stats
from query_side.api_doc import openapi_document
from query_side.cache import CacheStats, RedisGuard
from query_side.cache_reads import cache_reader
from query_side.consistency import CheckpointWatcher
from query_side.resources import Resources, resources

log = logging.getLogger("orderdesk.query")

SERVICE = "query-api"


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """The read database is down or the pool is exhausted: 503, never a 500."""
    log.warning("read database unavailable", extra={"error": repr(exc)})
    if not isinstance(exc, psycopg_pool.PoolTimeout):
        resources(request).pool_recovery.connection_failed()
    return problem_response(
        ProblemError(
            503,
            "database-unavailable",
            "The read database is unavailable; retry shortly.",
            headers={"Retry-After": "1"},
        )
    )


def routes() -> list[Route]:
    """Every read route of the query API (API.md §Query API); the operations routes
    (/healthz, /readyz, /metrics, /openapi.json) are added by :func:`create_app`."""
    get = ["GET"]
    return [
        # The hottest route first: Starlette tries routes in order.
        Route("/products/{sku}", products.get_product, methods=get),
        Route("/products", products.list_products, methods=get),
        Route("/orders", orders.list_orders, methods=get),
        Route("/orders/{order_id}", orders.get_order, methods=get),
        Route("/orders/{order_id}/history", orders.order_history, methods=get),
        Route("/customers/{customer_id}/orders", orders.customer_orders, methods=get),
        Route("/stats/top-products", stats.top_products, methods=get),
        Route("/stats/daily-sales", stats.daily_sales, methods=get),
        Route("/projections", projections_status.list_projections, methods=get),
    ]


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> Starlette:
    """The query API for ``settings`` (read database and Redis must be set).

    ``metrics`` lets a test read the registry the app writes to; by default a fresh one.
    """
    read_url = settings.effective_read_database_url
    if read_url is None or settings.redis_url is None:
        raise ValueError("the query API needs a read database URL and a Redis URL")
    redis_url = settings.redis_url
    metrics = metrics or create_metrics(SERVICE)
    cache_requests = metrics.cache_requests

    lookups = {result: cache_requests.labels(result=result) for result in ("hit", "miss")}

    def count_cache_lookup(result: str) -> None:
        lookups[result].inc()

    # Filled by the lifespan; /readyz reads them through getters (routes come first).
    live: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Autocommit: every read is one statement (or a few, each under its own snapshot
        # at READ COMMITTED anyway), so a transaction around it only added a BEGIN and a
        # COMMIT round trip to each read that PostgreSQL answers.
        pool = async_pool(read_url, size=settings.db_pool_size, name=SERVICE, autocommit=True)
        # Do not wait for the database: the process starts and /readyz says 503 until
        # it is reachable, instead of crashing at boot.
        await pool.open(wait=False)
        client = async_redis(redis_url)
        # No retries: a failure costs one short timeout, then the guard skips Redis.
        client.set_retry(Retry(NoBackoff(), 0))
        watcher = CheckpointWatcher(pool, read_url)
        await watcher.start()
        guard = RedisGuard(client)
        reads = cache_reader(redis_url, guard)
        app.state.resources = Resources(
            settings=settings,
            pool=pool,
            redis=guard,
            reads=reads,
            watcher=watcher,
            verifier=CachedVerifier(TokenVerifier.from_settings(settings)),
            stats=CacheStats(observe=count_cache_lookup),
            pool_recovery=PoolRecovery(pool),
        )
        live["pool"], live["redis"] = pool, client
        try:
            yield
        finally:
            live.clear()
            await watcher.stop()
            await reads.aclose()
            await client.aclose()
            await pool.close(timeout=2.0)

    def pool() -> AsyncConnectionPool:
        found: AsyncConnectionPool = live["pool"]
        return found

    def redis() -> aredis.Redis | None:
        found: aredis.Redis | None = live.get("redis")
        return found

    all_routes: list[BaseRoute] = [*routes()]
    # Redis down is "degraded" and keeps 200: every endpoint falls back to PostgreSQL.
    all_routes += health_routes(database_url=read_url, pool=pool, redis=redis)
    all_routes.append(metrics_endpoint(metrics.registry))
    all_routes.append(openapi_route(openapi_document()))
    handlers = exception_handlers()
    handlers[psycopg.OperationalError] = database_unavailable
    return Starlette(
        routes=all_routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestContextMiddleware, observe=metrics.observe_request)],
        exception_handlers=handlers,
    )
