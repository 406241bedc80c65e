"""Redis client factories. Clients are created by composition roots, never at import time."""

from __future__ import annotations

import redis
import redis.asyncio as aredis

# Short timeouts: Redis is a cache and a rate limiter here; when it is slow or down the
# processes fall back to PostgreSQL (or fail open) instead of hanging a request.
SOCKET_TIMEOUT = 0.5


def sync_redis(url: str) -> redis.Redis:
    """A synchronous client (worker, CLI)."""
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
    )


def async_redis(url: str) -> aredis.Redis:
    """An asyncio client (APIs)."""
    return aredis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
    )
