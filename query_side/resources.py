"""What the query API's handlers share for the life of the process, built in ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request

from orderdesk.auth import Principal
from orderdesk.database import PoolRecovery
from orderdesk.problems import ProblemError
from orderdesk.settings import Settings
from orderdesk.verified_tokens import CachedVerifier
from query_side.cache import CacheReader, CacheStats, RedisGuard
from query_side.consistency import CheckpointWatcher

DB_TIMEOUT = 5.0


@dataclass
class Resources:
    """The pool, Redis, checkpoint watcher, token verifier and counters of one process."""

    settings: Settings
    pool: AsyncConnectionPool
    redis: RedisGuard
    watcher: CheckpointWatcher
    verifier: CachedVerifier
    stats: CacheStats
    reads: CacheReader
    pool_recovery: PoolRecovery

    @property
    def cache_ttl(self) -> int:
        """Seconds a filled cache entry lives; 0 turns the read-through cache off."""
        return self.settings.cache_ttl

    def connection(self) -> Any:
        """A pooled read-database connection (``async with``); 503 when none comes in time."""
        return self.pool.connection(timeout=DB_TIMEOUT)


def resources(request: Request) -> Resources:
    """The process's :class:`Resources`."""
    found: Resources = request.app.state.resources
    return found


def principal(request: Request, res: Resources) -> Principal:
    """The caller; 401 problem for a bad token."""
    return res.verifier.principal(request.headers.get("authorization"))


def _unauthenticated() -> ProblemError:
    return ProblemError(
        401,
        "unauthorized",
        "This resource needs a bearer token.",
        headers={"WWW-Authenticate": 'Bearer realm="orderdesk"'},
    )


def order_reader(request: Request, res: Resources) -> Principal:
    """A customer (own orders) or staff; 401 when anonymous, 403 for any other role."""
    who = principal(request, res)
    if who.subject is None:
        raise _unauthenticated()
    if not (who.is_staff or "customer" in who.roles):
        raise ProblemError(403, "forbidden", "Reading orders needs the customer or staff role.")
    return who


def staff(request: Request, res: Resources) -> Principal:
    """Staff or admin; 401 when anonymous, 403 otherwise."""
    who = principal(request, res)
    if who.subject is None:
        raise _unauthenticated()
    if not who.is_staff:
        raise ProblemError(403, "forbidden", "This resource is for staff.")
    return who


def admin(request: Request, res: Resources) -> Principal:
    """Admin only; 401 when anonymous, 403 otherwise."""
    who = principal(request, res)
    if who.subject is None:
        raise _unauthenticated()
    if not who.is_admin:
        raise ProblemError(403, "forbidden", "This resource is for admins.")
    return who
