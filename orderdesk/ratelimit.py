"""Per-subject rate limiting of the command API in Redis (GCRA), failing open.

Algorithm: GCRA (the generic cell rate algorithm, as in ``redis-cell``). Each subject has
ONE key holding its "theoretical arrival time" (TAT); a request is allowed when
``TAT - window <= now`` and then moves TAT forward by ``window / limit``. Compared with a
fixed window it has no boundary burst (a client cannot send ``2 * limit`` across a window
edge); compared with a sliding log it stores one number per subject instead of one entry
per request; and it yields an exact ``Retry-After``. The whole check is one Lua script, so
it is atomic across API replicas, and it reads the clock with Redis ``TIME`` so replicas with
skewed clocks agree.

Checks are batched: the requests that arrive while a script call is in flight go to Redis
together in the next call, which checks each subject in turn (a subject named twice is
counted twice). Under load a process makes one Redis round trip per batch instead of one
per request; an idle process still answers each request after a single round trip. (All
keys of a call must live on one Redis node: a Redis Cluster would need a hash tag.) The
calls go over the limiter's own connection (:mod:`orderdesk.redis_wire`): a lone check
costs the command API about 0.58x the CPU it took through redis-py's client
(``python -m bench.rate_limit_cost``, docs/benchmarks.md "Sixth session").

Redis is not the system of record here: when it is down or slow (short timeout) the limiter
lets the request through and logs a warning, at most once per ``WARN_EVERY`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from orderdesk.auth import Principal
from orderdesk.batching import RoundTripBatcher
from orderdesk.metrics import Metrics
from orderdesk.problems import ProblemError, problem_response
from orderdesk.redis_wire import RedisWire, ReplyError, address_of
from orderdesk.settings import Settings

log = logging.getLogger("orderdesk.ratelimit")

KEY_PREFIX = "orderdesk:ratelimit:"
TIMEOUT = 0.2
WARN_EVERY = 30.0
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})

# KEYS: one subject key per request of the batch; ARGV[1] emission interval (ms per
# request), ARGV[2] window (ms). Returns {allowed (1/0), retry_after_ms, remaining} for
# each key in turn, flattened.
_GCRA = """
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - window
  if allow_at > now then
    out[#out + 1] = 0
    out[#out + 1] = math.ceil(allow_at - now)
    out[#out + 1] = 0
  else
    -- At least 1 ms: with a limit so high that one request's share of the window is
    -- below the clock's precision, new_tat rounds back to now (and PX 0 is an error).
    local ttl = math.max(1, math.ceil(new_tat - now))
    redis.call('SET', key, string.format('%.3f', new_tat), 'PX', ttl)
    out[#out + 1] = 1
    out[#out + 1] = 0
    out[#out + 1] = math.floor((window - (new_tat - now)) / interval)
  end
end
return out
"""
_GCRA_SHA = hashlib.sha1(_GCRA.encode()).hexdigest()

_Answer = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's answer: allowed or not, and when to retry (whole seconds, >= 1)."""

    allowed: bool
    retry_after: int = 0
    remaining: int | None = None  # None when the limiter failed open


class RateLimiter:
    """``limit`` requests per ``window`` seconds per subject, kept in Redis."""

    def __init__(
        self,
        redis: aredis.Redis,
        *,
        limit: int,
        window: float,
        timeout: float = TIMEOUT,
        metrics: Metrics | None = None,
        wire: RedisWire | None = None,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("rate limit and window must be positive")
        self.redis = redis
        self.limit = limit
        self.window_ms = window * 1000.0
        self.timeout = timeout
        self.metrics = metrics
        self.wire = wire
        self._script = redis.register_script(_GCRA)
        self._last_warning = -math.inf
        self._batches: RoundTripBatcher[str, _Answer] = RoundTripBatcher(
            self._check_batch, "rate-limit-checks"
        )

    @property
    def calls(self) -> int:
        """Script calls made so far (each answered a whole batch of checks)."""
        return self._batches.calls

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: aredis.Redis, metrics: Metrics | None = None
    ) -> RateLimiter:
        """``settings.rate_limit`` requests per ``settings.rate_limit_window`` seconds, its
        script calls on a :class:`~orderdesk.redis_wire.RedisWire` of its own when the URL
        allows (else through ``redis``)."""
        address = address_of(settings.redis_url or "")
        return cls(
            redis,
            limit=settings.rate_limit,
            window=settings.rate_limit_window,
            metrics=metrics,
            wire=RedisWire(address, timeout=TIMEOUT) if address is not None else None,
        )

    def close(self) -> None:
        """Close the limiter's own connection, if it has one."""
        if self.wire is not None:
            self.wire.close()

    async def check(self, subject: str) -> Decision:
        """Count one request of ``subject``; allowed when under the limit or Redis is down."""
        try:
            async with asyncio.timeout(2 * self.timeout):  # this batch and the one ahead
                allowed, retry_ms, remaining = await self._batches.submit(KEY_PREFIX + subject)
        except (RedisError, ReplyError, OSError, TimeoutError, ValueError, TypeError) as exc:
            # ValueError/TypeError: something that is not our Redis answered (a wrong
            # server on the port, a proxy): the limiter fails open like for an outage.
            self._warn_failing_open(exc)
            return Decision(allowed=True)
        if allowed:
            return Decision(allowed=True, remaining=int(remaining))
        if self.metrics is not None:
            self.metrics.rate_limited.inc()
        return Decision(
            allowed=False, retry_after=max(1, math.ceil(int(retry_ms) / 1000)), remaining=0
        )

    async def _check_batch(self, keys: list[str]) -> list[_Answer]:
        """One script call for every key of the batch; one answer triple per key."""
        args = (str(self.window_ms / self.limit), str(self.window_ms))
        if self.wire is not None:
            flat = await self._call_script(self.wire, keys, args)
        else:
            async with asyncio.timeout(self.timeout):
                flat = await self._script(keys=keys, args=args)
        if len(flat) != 3 * len(keys):
            raise ValueError(f"the limiter script answered {len(flat)} values")
        return [(int(flat[i]), int(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]

    @staticmethod
    async def _call_script(wire: RedisWire, keys: list[str], args: tuple[str, str]) -> Any:
        """EVALSHA; the script's text only when Redis answers NOSCRIPT (a restarted or
        flushed server), then EVALSHA again."""
        call = ("EVALSHA", _GCRA_SHA, str(len(keys)), *keys, *args)
        try:
            return await wire.call(*call)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await wire.call("SCRIPT", "LOAD", _GCRA)
        return await wire.call(*call)

    async def enforce(self, subject: str) -> None:
        """Like :meth:`check`, raising the 429 ``rate-limited`` problem when over the limit."""
        decision = await self.check(subject)
        if not decision.allowed:
            raise rate_limited_error(decision.retry_after)

    def _warn_failing_open(self, exc: BaseException) -> None:
        # One line per WARN_EVERY seconds: an outage must not turn into a log flood.
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log.warning(
                "rate limiter unavailable, allowing requests",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )


def rate_limited_error(retry_after: int) -> ProblemError:
    """The 429 problem with its ``Retry-After`` header."""
    return ProblemError(
        429,
        "rate-limited",
        f"Too many requests; retry in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
    )


def subject_key(subject: str | None, client_host: str | None) -> str:
    """The limiter key of a caller: its token subject, else its IP address.

    Behind a proxy run uvicorn with ``--proxy-headers``/``--forwarded-allow-ips`` so the
    client address is the caller's, not the load balancer's.
    """
    if subject is not None:
        return "sub:" + subject
    return "ip:" + (client_host or "unknown")


class _Verifier(Protocol):
    def principal(self, authorization: str | None) -> Principal: ...


def scope_subject(verifier: _Verifier) -> Callable[[Scope], str]:
    """A function naming the caller of a request: a bad token counts as anonymous (per IP)
    here; the endpoint still answers it with 401."""

    def subject(scope: Scope) -> str:
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            principal_subject = verifier.principal(header).subject
        except ProblemError:
            principal_subject = None
        client = scope.get("client")
        return subject_key(principal_subject, client[0] if client else None)

    return subject


class RateLimitMiddleware:
    """Pure ASGI middleware: 429 problem+json over the limit; operations paths are exempt.

    ``limiter`` is a getter because the Redis client is created in the app's lifespan.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: Callable[[], RateLimiter | None],
        subject: Callable[[Scope], str],
        exempt_paths: frozenset[str] = EXEMPT_PATHS,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.subject = subject
        self.exempt_paths = exempt_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiter() if scope["type"] == "http" else None
        if limiter is not None and scope["path"] not in self.exempt_paths:
            decision = await limiter.check(self.subject(scope))
            if not decision.allowed:
                response = problem_response(rate_limited_error(decision.retry_after))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
