"""Redis on the read path: a guard that never lets Redis hang a request, and the
read-through of single resources on top of :mod:`orderdesk.cache`.

Redis is an optimisation here. Every call goes through :class:`RedisGuard`, which caps it
with a short timeout and, after a failure, skips Redis for ``cooldown`` seconds so a
dead server costs one timeout per cooldown instead of one per request. Whatever fails,
the caller falls back to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from redis.exceptions import RedisError

from orderdesk.batching import RoundTripBatcher
from orderdesk.cache import set_if_newer, unpack

log = logging.getLogger("orderdesk.query.cache")

T = TypeVar("T")

CALL_TIMEOUT = 0.5
COOLDOWN = 1.5


@dataclass
class CacheStats:
    """Hit/miss counters by kind (``product``, ``order``, ``top-products``); ``observe``
    also gets each result (``"hit"``/``"miss"``), which the app feeds to the
    ``orderdesk_cache_requests_total{result}`` counter."""

    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    observe: Callable[[str], None] | None = None

    def hit(self, kind: str) -> None:
        """Count a lookup of ``kind`` the cache answered."""
        self.hits[kind] = self.hits.get(kind, 0) + 1
        if self.observe is not None:
            self.observe("hit")

    def miss(self, kind: str) -> None:
        """Count a lookup of ``kind`` that went to PostgreSQL."""
        self.misses[kind] = self.misses.get(kind, 0) + 1
        if self.observe is not None:
            self.observe("miss")


class RedisGuard:
    """Wraps the asyncio Redis client: short timeouts, and a cool-down after a failure."""

    def __init__(
        self, client: Any, *, cooldown: float = COOLDOWN, timeout: float = CALL_TIMEOUT
    ) -> None:
        self.client = client
        self.cooldown = cooldown
        self.timeout = timeout
        self._skip_until = 0.0

    @property
    def available(self) -> bool:
        """False while cooling down after a failure."""
        return time.monotonic() >= self._skip_until

    def failed(self, exc: BaseException) -> None:
        """Log (once per outage) and skip Redis for ``cooldown`` seconds."""
        if self.available:
            log.warning(
                "redis unavailable, serving from PostgreSQL",
                extra={"error": repr(exc), "retry_in_s": self.cooldown},
            )
        self._skip_until = time.monotonic() + self.cooldown

    async def call(self, make: Callable[[], Awaitable[T]]) -> T | None:
        """Run one Redis call; None when Redis is cooling down, fails or is too slow."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                return await make()
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            return None

    async def get(self, key: str) -> bytes | None:
        """``GET key``; None on a miss or when Redis is unavailable."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                value: bytes | None = await self.client.get(key)
                return value
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            return None

    async def ping(self) -> bool:
        """True when Redis answers now (ignores the cool-down: used by /readyz)."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed(exc)
            return False
        self._skip_until = 0.0
        return True


class CacheReader(Protocol):
    """What the read endpoints need of the cache: batched GETs (:class:`GetBatcher` or
    :class:`query_side.cache_reads.BatchedGets`)."""

    @property
    def batches(self) -> int:
        """Round trips to Redis so far (each answered a whole batch)."""
        ...

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``; None on a miss or when Redis is unavailable."""
        ...

    async def fill(self, key: str, version: int, payload: bytes, ttl: int) -> None:
        """Store ``payload`` at ``version`` unless the cache holds a newer version."""
        ...

    async def aclose(self) -> None:
        """Release what the reader holds."""
        ...


class GetBatcher:
    """Coalesces the cache GETs of concurrent requests into one ``MGET``
    (:class:`orderdesk.batching.RoundTripBatcher`: one in flight, the next takes every read
    that arrived meanwhile, so batches grow with load)."""

    def __init__(self, guard: RedisGuard) -> None:
        self.guard = guard
        self._batches: RoundTripBatcher[str, bytes | None] = RoundTripBatcher(
            self._mget, "cache-mget"
        )

    @property
    def batches(self) -> int:
        """``MGET`` commands sent so far (each answered a whole batch)."""
        return self._batches.calls

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``; None on a miss or when Redis is unavailable."""
        if not self.guard.available:
            return None
        return await self._batches.submit(key)

    async def fill(self, key: str, version: int, payload: bytes, ttl: int) -> None:
        """Store ``payload`` at ``version`` unless the cache holds a newer version."""
        await self.guard.call(lambda: set_if_newer(self.guard.client, key, version, payload, ttl))

    async def aclose(self) -> None:
        """Nothing to release: the Redis client belongs to the app."""

    async def _mget(self, keys: list[str]) -> list[bytes | None]:
        distinct = list(dict.fromkeys(keys))
        found = await self.guard.call(lambda: self.guard.client.mget(distinct))
        values: dict[str, bytes | None] = dict(zip(distinct, found, strict=True)) if found else {}
        return [values.get(key) for key in keys]


async def cached(source: RedisGuard | CacheReader, key: str) -> tuple[int, bytes] | None:
    """``(version, json)`` of a cached representation, or None."""
    raw = await source.get(key)
    if raw is None:
        return None
    try:
        return unpack(raw)
    except ValueError:  # not a value we wrote: treat as a miss, the fill will replace it
        return None


async def fill(reader: CacheReader, key: str, version: int, payload: bytes, ttl: int) -> None:
    """Store a representation read from PostgreSQL unless the cache holds a newer one:
    a fill that read version 4 just before the projector cached 5 loses (DESIGN.md §5)."""
    await reader.fill(key, version, payload, ttl)
