"""``/healthz`` (the process runs) and ``/readyz`` (database, migrations, Redis)."""

from __future__ import annotations

import asyncio
import logging

import psycopg
from starlette.requests import Request
from starlette.responses import Response

from orderdesk import migrations
from query_side.representations import json_response
from query_side.resources import Resources, resources

log = logging.getLogger("orderdesk.query.health")

CHECK_TIMEOUT = 2.0


class MigrationCheck:
    """Whether the read database is at the newest migration; a success is remembered
    (migrations never go backwards under a running process), a failure is re-checked."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.at_head = False

    async def check(self) -> bool:
        if self.at_head:
            return True
        head, current = await asyncio.to_thread(self._revisions)
        self.at_head = head is not None and head == current
        return self.at_head

    def _revisions(self) -> tuple[str | None, str | None]:
        return (
            migrations.head_revision(self.database_url),
            migrations.current_revision(self.database_url),
        )


async def healthz(request: Request) -> Response:
    """200 while the process runs."""
    return json_response({"status": "ok"}, "no-store")


async def _database_ok(res: Resources) -> bool:
    try:
        async with (
            asyncio.timeout(CHECK_TIMEOUT),
            res.pool.connection(timeout=CHECK_TIMEOUT) as conn,
        ):
            await conn.execute("SELECT 1")
    except (psycopg.Error, OSError, TimeoutError) as exc:
        log.warning("readiness: database unreachable", extra={"error": repr(exc)})
        return False
    return True


async def readyz(request: Request) -> Response:
    """200 when the database answers and is migrated (Redis down is "degraded", still 200);
    503 otherwise."""
    res = resources(request)
    check: MigrationCheck = request.app.state.migration_check
    database = await _database_ok(res)
    migrated = False
    if database:
        try:
            migrated = await check.check()
        except (psycopg.Error, OSError) as exc:
            log.warning("readiness: cannot read the migration state", extra={"error": repr(exc)})
    redis_ok = await res.redis.ping()
    body = {
        "database": "ok" if database else "unavailable",
        "migrations": "ok" if migrated else ("behind" if database else "unknown"),
        "redis": "ok" if redis_ok else "degraded",
    }
    response = json_response(body, "no-store")
    response.status_code = 200 if database and migrated else 503
    return response
