"""``/healthz`` (the process runs) and ``/readyz`` (it can serve) for both APIs.

Readiness: the database answers ``SELECT 1`` within a short timeout, its schema is at
Alembic's head, and Redis answers a PING. Redis alone is never fatal for the APIs (the query
API falls back to PostgreSQL, the command API's limiter fails open): it reports
``"degraded"`` and keeps 200 unless the caller says ``redis_required``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import redis.asyncio as aredis
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orderdesk import migrations
from orderdesk.openapi import Operation

log = logging.getLogger("orderdesk.health")


class Liveness(msgspec.Struct, frozen=True):
    """``GET /healthz``."""

    status: Literal["ok"]


class ReadinessReport(msgspec.Struct, frozen=True):
    """``GET /readyz`` (the same body with 503 when not ready)."""

    database: Literal["ok", "down"]
    migrations: Literal["ok", "behind", "unknown"]
    redis: Literal["ok", "degraded", "disabled"]


def operations_endpoints(readyz_summary: str) -> list[Operation]:
    """OpenAPI operations of /healthz, /readyz, /metrics and /openapi.json (both APIs)."""
    return [
        Operation("GET", "/healthz", "200 while the process runs.", {200: Liveness}, auth="none"),
        Operation(
            "GET",
            "/readyz",
            readyz_summary,
            {200: ReadinessReport, 503: ReadinessReport},
            auth="none",
        ),
        Operation("GET", "/metrics", "Prometheus metrics (text format).", {200: None}, auth="none"),
        Operation("GET", "/openapi.json", "This document.", {200: dict[str, Any]}, auth="none"),
    ]


DATABASE_TIMEOUT = 2.0
REDIS_TIMEOUT = 0.5


async def healthz(request: Request) -> JSONResponse:
    """200 while the process runs: a liveness probe must not depend on other servers."""
    return JSONResponse({"status": "ok"})


def healthz_route() -> Route:
    """The ``/healthz`` route."""
    return Route("/healthz", healthz, methods=["GET"], name="healthz")


@dataclass(slots=True)
class Readiness:
    """The checks behind ``/readyz``; ``pool`` and ``redis`` are getters because both are
    created in the app's lifespan, after the routes."""

    database_url: str
    pool: Callable[[], AsyncConnectionPool]
    redis: Callable[[], aredis.Redis | None] | None = None
    redis_required: bool = False
    timeout: float = DATABASE_TIMEOUT
    _head: str | None = field(default=None, init=False)
    _migrated: bool = field(default=False, init=False)

    async def report(self) -> tuple[int, dict[str, str]]:
        """The HTTP status and the body ``{"database", "migrations", "redis"}``."""
        database = await self._database()
        migrations_state = await self._migrations() if database == "ok" else "unknown"
        redis_state = await self._redis()
        ready = (
            database == "ok"
            and migrations_state == "ok"
            and (redis_state == "ok" or not self.redis_required)
        )
        body = {"database": database, "migrations": migrations_state, "redis": redis_state}
        return (200 if ready else 503), body

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                async with self.pool().connection(timeout=self.timeout) as conn:
                    await conn.execute("SELECT 1")
        except Exception as exc:  # any failure means "not reachable" to a load balancer
            log.warning(
                "readiness: database unreachable", extra={"error": f"{type(exc).__name__}: {exc}"}
            )
            return "down"
        return "ok"

    async def _migrations(self) -> str:
        # Once at head, a running process stays compatible: migrations only move forward
        # while it runs, so the (sync, connection-opening) check is not repeated.
        if self._migrated:
            return "ok"
        try:
            async with asyncio.timeout(self.timeout):
                if self._head is None:
                    self._head = await asyncio.to_thread(
                        migrations.head_revision, self.database_url
                    )
                current = await asyncio.to_thread(migrations.current_revision, self.database_url)
        except Exception as exc:
            log.warning(
                "readiness: migration check failed", extra={"error": f"{type(exc).__name__}: {exc}"}
            )
            return "unknown"
        if current != self._head:
            return "behind"
        self._migrated = True
        return "ok"

    async def _redis(self) -> str:
        client = self.redis() if self.redis is not None else None
        if client is None:
            return "disabled"
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await client.ping()
        except Exception:
            return "degraded"
        return "ok"


def readyz_route(readiness: Readiness) -> Route:
    """The ``/readyz`` route: 200 when ready, 503 with the same body when not."""

    async def readyz(request: Request) -> JSONResponse:
        status, body = await readiness.report()
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    return Route("/readyz", readyz, methods=["GET"], name="readyz")


def health_routes(
    *,
    database_url: str,
    pool: Callable[[], AsyncConnectionPool],
    redis: Callable[[], aredis.Redis | None] | None = None,
    redis_required: bool = False,
) -> list[Route]:
    """``/healthz`` and ``/readyz`` for an API whose database is ``database_url`` (the one
    ``pool`` connects to: the write database for the command API, the read one for the
    query API)."""
    readiness = Readiness(
        database_url=database_url, pool=pool, redis=redis, redis_required=redis_required
    )
    return [healthz_route(), readyz_route(readiness)]
