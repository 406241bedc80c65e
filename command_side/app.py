"""The command API's composition root: ``create_app(settings)`` wires everything.

Created here, and nowhere else: the metrics registry, the token verifier (with its cache),
the routes (from :func:`command_side.routes.command_routes`), the OpenAPI document; and, in
the lifespan, the database pool, the Redis client of the rate limiter, the row queue and
the sku snapshots of the optimistic path. Middleware, outside
in: request context (correlation id, latency histogram) → rate limiter → routes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg_pool
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from command_side.api_doc import openapi_document
from command_side.endpoint import command_endpoint
from command_side.routes import command_routes
from command_side.row_queue import RowQueue
from command_side.sku_snapshots import SkuSnapshots
from orderdesk.auth import TokenVerifier
from orderdesk.database import PoolRecovery, async_pool
from orderdesk.health import health_routes
from orderdesk.http import RequestContextMiddleware, exception_handlers
from orderdesk.metrics import Metrics, create_metrics, metrics_endpoint
from orderdesk.openapi import openapi_route
from orderdesk.ratelimit import RateLimiter, RateLimitMiddleware, scope_subject
from orderdesk.redis_client import async_redis
from orderdesk.settings import Settings
from orderdesk.verified_tokens import CachedVerifier

SERVICE = "command-api"


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> Starlette:
    """The command API for ``settings`` (the pool and Redis open in the lifespan, not here).

    ``metrics`` lets a test read the registry the app writes to; by default a fresh one.
    """
    if settings.database_url is None:
        raise ValueError("the command API needs settings.database_url")
    database_url = settings.database_url
    redis_url = settings.redis_url
    metrics = metrics or create_metrics(SERVICE)
    verifier = CachedVerifier(TokenVerifier.from_settings(settings))
    snapshot_results = {
        result: metrics.sku_snapshots.labels(result=result) for result in ("hit", "miss", "stale")
    }

    def count_snapshot(result: str) -> None:
        snapshot_results[result].inc()

    # Filled by the lifespan; the middleware and /readyz read them through getters.
    live: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # Autocommit: the optimistic path's save commits by itself; locking units of work
        # open their transaction explicitly (command_side.postgres).
        pool = async_pool(database_url, size=settings.db_pool_size, name=SERVICE, autocommit=True)
        await pool.open()
        client: aredis.Redis | None = None
        if redis_url is not None:
            client = async_redis(redis_url)
            # No retries: a Redis failure costs one short timeout, then the limiter fails open.
            client.set_retry(Retry(NoBackoff(), 0))
            live["limiter"] = RateLimiter.from_settings(settings, client, metrics)
        live["pool"], live["redis"] = pool, client
        try:
            yield {
                "pool": pool,
                "pool_recovery": PoolRecovery(pool),
                "row_queue": RowQueue(),
                "sku_snapshots": SkuSnapshots(observe=count_snapshot),
            }
        finally:
            limiter = live.get("limiter")
            live.clear()
            if limiter is not None:
                limiter.close()
            if client is not None:
                await client.aclose()
            await pool.close()

    def pool() -> psycopg_pool.AsyncConnectionPool:
        found: psycopg_pool.AsyncConnectionPool = live["pool"]
        return found

    def redis() -> aredis.Redis | None:
        found: aredis.Redis | None = live.get("redis")
        return found

    def limiter() -> RateLimiter | None:
        found: RateLimiter | None = live.get("limiter")
        return found

    routes: list[BaseRoute] = [
        Route(spec.path, command_endpoint(spec, verifier, settings, metrics), methods=[spec.method])
        for spec in command_routes()
    ]
    routes += health_routes(database_url=database_url, pool=pool, redis=redis)
    routes.append(metrics_endpoint(metrics.registry))
    routes.append(openapi_route(openapi_document()))
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(RequestContextMiddleware, observe=metrics.observe_request),
            Middleware(RateLimitMiddleware, limiter=limiter, subject=scope_subject(verifier)),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
