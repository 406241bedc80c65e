"""Database URLs and connection factories, shared by every process.

URLs may be given as plain ``postgresql://user:pass@host:port/db``; we pick the driver:
psycopg 3 for the application, ``postgresql+psycopg`` for SQLAlchemy/Alembic.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, ConnectionPool

log = logging.getLogger("orderdesk.database")

_SCHEMES = {
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
}


def libpq_url(url: str) -> str:
    """``url`` as libpq understands it (``postgresql://``), whatever driver suffix it had."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: {parts.scheme}://…")
    return urlunsplit(("postgresql", *parts[1:]))


def sqlalchemy_url(url: str) -> str:
    """``url`` for SQLAlchemy with the psycopg 3 driver."""
    return "postgresql+psycopg" + libpq_url(url)[len("postgresql") :]


def with_database(url: str, database: str) -> str:
    """The same server, another database name."""
    parts = urlsplit(libpq_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def connect(url: str, **kwargs: Any) -> psycopg.Connection[TupleRow]:
    """One synchronous connection (CLI, relay, worker)."""
    return psycopg.connect(libpq_url(url), **kwargs)


def sync_pool(url: str, *, size: int, name: str) -> ConnectionPool:
    """A synchronous pool, opened by the caller (``with pool:`` or ``pool.open()``)."""
    return ConnectionPool(
        libpq_url(url),
        min_size=1,
        max_size=size,
        name=name,
        open=False,
        kwargs={"application_name": f"orderdesk-{name}"},
    )


def async_pool(url: str, *, size: int, name: str, autocommit: bool = False) -> AsyncConnectionPool:
    """An asyncio pool for an API process; opened in the app's lifespan. With
    ``autocommit`` a statement outside ``conn.transaction()`` commits by itself (no BEGIN
    round trip); without it psycopg opens a transaction before the first statement."""
    return AsyncConnectionPool(
        libpq_url(url),
        min_size=size,
        max_size=size,
        name=name,
        open=False,
        kwargs={"application_name": f"orderdesk-{name}", "autocommit": autocommit},
    )


class PoolRecovery:
    """Replaces a pool's dead connections as soon as one of them is found dead.

    A database restart (or a failover) breaks every pooled connection at once, but the pool
    learns it one connection at a time, as each is handed out and fails: ``db_pool_size``
    requests in a row would answer 503. Told of one failure, this runs ``pool.check()`` in
    the background, which tests every idle connection and replaces the broken ones; one
    check at a time, however many requests fail together.
    """

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._check: asyncio.Task[None] | None = None

    def connection_failed(self) -> None:
        """A connection of the pool just failed; check the others (if not already)."""
        if self._check is None or self._check.done():
            self._check = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.pool.check()
        except Exception as exc:  # the next failure starts another check
            log.warning("pool check failed", extra={"error": repr(exc)})
