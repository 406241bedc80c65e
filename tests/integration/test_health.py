"""/healthz and /readyz on a tiny app wired like the APIs, against real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aredis
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.testclient import TestClient

from orderdesk import migrations
from orderdesk.database import async_pool
from orderdesk.embedded import EmbeddedValkey
from orderdesk.health import Readiness, health_routes, healthz_route, readyz_route
from orderdesk.redis_client import async_redis
from tests.support import free_port

ALL_OK = {"database": "ok", "migrations": "ok", "redis": "ok"}


def health_app(
    database_url: str,
    redis_url: str | None,
    *,
    redis_required: bool = False,
    readiness_timeout: float | None = None,
) -> Starlette:
    """An app whose pool and Redis client are created in the lifespan, as the APIs do."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = async_pool(database_url, size=1, name="health-test")
        await pool.open(wait=False)
        app.state.pool = pool
        app.state.redis = async_redis(redis_url) if redis_url else None
        try:
            yield
        finally:
            if app.state.redis is not None:
                await app.state.redis.aclose()
            await pool.close(timeout=1)

    def pool_getter() -> AsyncConnectionPool:
        pool: AsyncConnectionPool = app.state.pool
        return pool

    def redis_getter() -> aredis.Redis | None:
        client: aredis.Redis | None = app.state.redis
        return client

    if readiness_timeout is None:
        routes = health_routes(
            database_url=database_url,
            pool=pool_getter,
            redis=redis_getter,
            redis_required=redis_required,
        )
    else:
        readiness = Readiness(
            database_url=database_url,
            pool=pool_getter,
            redis=redis_getter,
            redis_required=redis_required,
            timeout=readiness_timeout,
        )
        routes = [healthz_route(), readyz_route(readiness)]
    app = Starlette(routes=routes, lifespan=lifespan)
    return app


def test_ready_when_database_migrated_and_redis_up(db_url: str, redis_url: str) -> None:
    with TestClient(health_app(db_url, redis_url)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json() == ALL_OK


def test_unmigrated_database_is_not_ready_until_migrated(empty_db_url: str, redis_url: str) -> None:
    with TestClient(health_app(empty_db_url, redis_url)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"database": "ok", "migrations": "behind", "redis": "ok"}
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        migrations.upgrade(empty_db_url)
        assert client.get("/readyz").status_code == 200


def test_unreachable_database_is_not_ready(redis_url: str) -> None:
    nowhere = f"postgresql://orderdesk@127.0.0.1:{free_port()}/orderdesk"
    with TestClient(health_app(nowhere, redis_url, readiness_timeout=0.5)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"database": "down", "migrations": "unknown", "redis": "ok"}


def test_redis_down_is_degraded_but_ready_unless_required(
    db_url: str, redis_url: str, embedded_valkey: EmbeddedValkey
) -> None:
    optional = health_app(db_url, redis_url)
    required = health_app(db_url, redis_url, redis_required=True)
    with TestClient(optional) as lenient, TestClient(required) as strict:
        assert strict.get("/readyz").status_code == 200
        embedded_valkey.kill()
        try:
            response = lenient.get("/readyz")
            assert response.status_code == 200
            assert response.json() == {**ALL_OK, "redis": "degraded"}
            response = strict.get("/readyz")
            assert response.status_code == 503
            assert response.json()["redis"] == "degraded"
        finally:
            embedded_valkey.start()
        assert lenient.get("/readyz").json() == ALL_OK
