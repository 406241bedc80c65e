"""The command API's rate limiter against the real Redis: 429s, windows, subjects, outages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from orderdesk.auth import TokenVerifier
from orderdesk.embedded import EmbeddedValkey
from orderdesk.http import RequestContextMiddleware, exception_handlers
from orderdesk.metrics import Metrics, create_metrics
from orderdesk.ratelimit import (
    TIMEOUT,
    Decision,
    RateLimiter,
    RateLimitMiddleware,
    scope_subject,
)
from orderdesk.redis_client import async_redis
from orderdesk.redis_wire import RedisWire, address_of
from orderdesk.settings import Settings
from tests.support import TEST_JWT_SECRET, bearer, poll_until

SETTINGS = Settings(jwt_secret=TEST_JWT_SECRET)


@pytest.fixture(params=["wire", "redis-py"])
def wired(request: pytest.FixtureRequest) -> bool:
    """Each test runs with the limiter's own connection (as the command API runs it) and
    through redis-py (the path for URLs the wire does not speak, TLS)."""
    return bool(request.param == "wire")


def make_limiter(
    redis_url: str, client: Any, wired: bool, *, limit: int, window: float, **extra: Any
) -> RateLimiter:
    address = address_of(redis_url)
    assert address is not None
    wire = RedisWire(address, timeout=TIMEOUT) if wired else None
    return RateLimiter(client, limit=limit, window=window, wire=wire, **extra)


async def _ok(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def _enforced(request: Request) -> JSONResponse:
    # The function-call style: an endpoint asks the limiter itself.
    limiter: RateLimiter = request.app.state.limiter
    await limiter.enforce("sub:explicit")
    return JSONResponse({"ok": True})


@contextmanager
def limited_app(
    redis_url: str,
    wired: bool,
    *,
    limit: int,
    window: float,
    metrics: Metrics | None = None,
) -> Iterator[Starlette]:
    """A tiny app with the limiter in front, as the command API wires it."""

    # The limiter needs the Redis client, which is created in the lifespan (after routing).
    box: dict[str, RateLimiter] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = async_redis(redis_url)
        box["limiter"] = app.state.limiter = make_limiter(
            redis_url, client, wired, limit=limit, window=window, metrics=metrics
        )
        try:
            yield
        finally:
            box["limiter"].close()
            await client.aclose()

    app = Starlette(
        routes=[
            Route("/orders", _ok, methods=["POST"]),
            Route("/healthz", _ok),
            Route("/enforced", _enforced, methods=["POST"]),
        ],
        middleware=[
            Middleware(RequestContextMiddleware),
            Middleware(
                RateLimitMiddleware,
                limiter=lambda: box.get("limiter"),
                subject=scope_subject(TokenVerifier.from_settings(SETTINGS)),
            ),
        ],
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    yield app


def _statuses(client: TestClient, n: int, **kwargs: object) -> list[int]:
    return [client.post("/orders", **kwargs).status_code for _ in range(n)]  # type: ignore[arg-type]


def test_over_the_limit_answers_429_problem_with_retry_after(redis_url: str, wired: bool) -> None:
    metrics = create_metrics("command-api")
    with (
        limited_app(redis_url, wired, limit=3, window=60, metrics=metrics) as app,
        TestClient(app) as c,
    ):
        headers = bearer(SETTINGS, "alice", "customer") | {"X-Request-ID": "rl-1"}
        assert _statuses(c, 3, headers=headers) == [200, 200, 200]
        response = c.post("/orders", headers=headers)
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:orderdesk:problem:rate-limited"
        # One request every 20 s is the steady rate of 3 per minute.
        assert 1 <= int(response.headers["retry-after"]) <= 20
        assert response.headers["x-request-id"] == "rl-1"
        # Operations endpoints are never limited.
        assert c.get("/healthz", headers=headers).status_code == 200
    assert metrics.registry.get_sample_value("orderdesk_rate_limited_total") == 1.0


def test_requests_are_allowed_again_once_the_window_passes(redis_url: str, wired: bool) -> None:
    with limited_app(redis_url, wired, limit=2, window=0.5) as app, TestClient(app) as c:
        assert _statuses(c, 3) == [200, 200, 429]
        poll_until(
            lambda: c.post("/orders").status_code == 200,
            timeout=5,
            message="limit lifted after the window",
        )


def test_subjects_are_limited_independently(redis_url: str, wired: bool) -> None:
    with limited_app(redis_url, wired, limit=2, window=60) as app, TestClient(app) as c:
        alice = bearer(SETTINGS, "alice", "customer")
        assert _statuses(c, 3, headers=alice) == [200, 200, 429]
        assert c.post("/orders", headers=bearer(SETTINGS, "bob", "customer")).status_code == 200
        # Anonymous callers are limited per IP address; a bad token counts as anonymous.
        assert _statuses(c, 2, headers={"Authorization": "Bearer nonsense"}) == [200, 200]
        assert c.post("/orders").status_code == 429
        with TestClient(app, client=("203.0.113.7", 4000)) as other_ip:
            assert other_ip.post("/orders").status_code == 200


def test_enforce_raises_the_same_problem_from_an_endpoint(redis_url: str, wired: bool) -> None:
    with limited_app(redis_url, wired, limit=1, window=60) as app, TestClient(app) as c:
        # /enforced is also behind the middleware, keyed per IP; the endpoint's own key differs.
        assert c.post("/enforced", headers=bearer(SETTINGS, "carol", "staff")).status_code == 200
        response = c.post("/enforced", headers=bearer(SETTINGS, "dave", "staff"))
        assert response.status_code == 429
        assert response.json()["type"] == "urn:orderdesk:problem:rate-limited"
        assert "retry-after" in response.headers


def test_fails_open_with_one_warning_when_redis_is_down(
    redis_url: str,
    wired: bool,
    embedded_valkey: EmbeddedValkey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with limited_app(redis_url, wired, limit=1, window=60) as app, TestClient(app) as c:
        assert _statuses(c, 2) == [200, 429]
        embedded_valkey.kill()
        try:
            with caplog.at_level(logging.WARNING, logger="orderdesk.ratelimit"):
                assert _statuses(c, 5) == [200] * 5
            warnings = [r for r in caplog.records if r.name == "orderdesk.ratelimit"]
            assert len(warnings) == 1
            assert "allowing requests" in warnings[0].getMessage()
        finally:
            embedded_valkey.start()
        # Back up (empty: the test server does not persist): limiting resumes.
        poll_until(
            lambda: _statuses(c, 2) == [200, 429],
            timeout=10,
            message="limiter working again after Redis restarted",
        )


def test_a_limit_far_above_any_load_counts_instead_of_failing_open(
    redis_url: str, wired: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # A billion a minute: one request's share of the window (0.06 us) is below what the
    # script's millisecond clock can add, which once made Redis refuse the key's expiry.
    async def checks() -> list[Decision]:
        client = async_redis(redis_url)
        limiter = make_limiter(redis_url, client, wired, limit=1_000_000_000, window=60)
        try:
            return [await limiter.check("sub:bulk") for _ in range(3)]
        finally:
            limiter.close()
            await client.aclose()

    with caplog.at_level(logging.WARNING, logger="orderdesk.ratelimit"):
        decisions = asyncio.run(checks())
    # Counted by Redis (a failed-open decision carries no "remaining"), without a warning.
    assert all(d.allowed and d.remaining is not None for d in decisions), decisions
    assert not [r for r in caplog.records if r.name == "orderdesk.ratelimit"]


def test_concurrent_requests_share_round_trips_and_each_one_counts(
    redis_url: str, wired: bool
) -> None:
    async def burst() -> tuple[list[bool], list[bool], int]:
        client = async_redis(redis_url)
        limiter = make_limiter(redis_url, client, wired, limit=5, window=60)
        try:
            # 12 requests of one subject and 12 of another, all in flight at once.
            erin, fred = await asyncio.gather(
                asyncio.gather(*(limiter.check("sub:erin") for _ in range(12))),
                asyncio.gather(*(limiter.check("sub:fred") for _ in range(12))),
            )
            return [d.allowed for d in erin], [d.allowed for d in fred], limiter.calls
        finally:
            limiter.close()
            await client.aclose()

    erin, fred, calls = asyncio.run(burst())
    # Exactly the limit passes for each subject, however the checks were batched ...
    assert erin.count(True) == 5 and fred.count(True) == 5
    # ... and 24 checks took far fewer than 24 round trips.
    assert calls <= 3


def test_counts_on_after_redis_forgets_the_script(redis_url: str, wired: bool) -> None:
    # A restarted or flushed Redis answers NOSCRIPT: the limiter loads the script again
    # instead of failing open.
    async def checks() -> list[Decision]:
        client = async_redis(redis_url)
        limiter = make_limiter(redis_url, client, wired, limit=2, window=60)
        try:
            first = await limiter.check("sub:gina")
            await client.script_flush()
            return [first, await limiter.check("sub:gina"), await limiter.check("sub:gina")]
        finally:
            limiter.close()
            await client.aclose()

    decisions = asyncio.run(checks())
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[1].remaining == 0  # counted by Redis, not failed open
