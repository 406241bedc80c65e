"""The read-through cache: the stale fill loses the race, and Redis down or flushed never
changes an answer (the real server is killed, not faked)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from orderdesk.cache import set_if_newer, unpack
from orderdesk.embedded import EmbeddedValkey
from orderdesk.settings import Settings
from query_side import cache
from shared_contracts.tokens import LogPoint, encode_token
from shared_contracts.views import TOP_PRODUCTS_BY_UNITS, product_cache_key
from tests.integration.query_rows import (
    add_history,
    add_order,
    add_product,
    query_client,
    set_checkpoint,
)
from tests.support import bearer


def test_a_stale_fill_never_overwrites_what_the_projector_cached(
    client: Any, conn: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_product(conn, "MUG-1", name="Old name", version=1)
    real_fill = cache.fill
    raced = []

    async def fill_after_projector(
        reader: Any, key: str, version: int, payload: bytes, ttl: int
    ) -> None:
        # The GET has read version 1 from PostgreSQL. Now the projector commits version 2
        # and refreshes the cache, and only then does the GET's (stale) fill run.
        if not raced:
            raced.append(version)
            add_product(conn, "MUG-1", name="New name", version=2)
            client = client_app.state.resources.redis.client
            await set_if_newer(client, key, 2, b'{"name":"New name","version":2}', 60)
        await real_fill(reader, key, version, payload, ttl)

    client_app = client.app
    monkeypatch.setattr(cache, "fill", fill_after_projector)
    first = client.get("/products/MUG-1")
    assert raced == [1]
    assert first.json()["version"] == 1  # what it read before the projector committed
    with redis.Redis.from_url(settings.redis_url or "") as direct:
        stored = direct.get(product_cache_key("MUG-1"))
    assert stored is not None and unpack(stored)[0] == 2
    second = client.get("/products/MUG-1")
    assert second.json()["version"] == 2
    assert second.headers["etag"] == '"2"'


def test_a_miss_is_filled_even_when_redis_has_forgotten_the_script(
    client: Any, conn: Any, settings: Settings
) -> None:
    add_product(conn, "MUG-2", name="Mug", version=3)
    with redis.Redis.from_url(settings.redis_url or "") as direct:
        direct.delete(product_cache_key("MUG-2"))
        direct.script_flush()  # as after a restart: the fill meets NOSCRIPT first
        assert client.get("/products/MUG-2").json()["version"] == 3
        stored = direct.get(product_cache_key("MUG-2"))
    assert stored is not None and unpack(stored)[0] == 3


def test_after_a_token_read_a_plain_read_never_goes_back_a_version(
    client: Any, conn: Any, settings: Settings
) -> None:
    add_product(conn, "MUG-4", name="Mug", version=1)
    assert client.get("/products/MUG-4").json()["version"] == 1  # now cached
    # The projector commits version 2 but its own cache refresh has not landed (or failed).
    add_product(conn, "MUG-4", name="Mug", version=2)
    set_checkpoint(conn, "product_view", 30, 1)
    token = {"X-Consistency-Token": encode_token(LogPoint(30, 1))}
    assert client.get("/products/MUG-4", headers=token).json()["version"] == 2
    # The client has seen version 2: its next read without a token must not show 1.
    assert client.get("/products/MUG-4").json()["version"] == 2


def test_flushed_redis_answers_from_postgres_and_rebuilds_top_products(
    client: Any, conn: Any, settings: Settings
) -> None:
    add_product(conn, "A-1", units_sold=3, revenue=300)
    add_product(conn, "B-1", units_sold=7, revenue=70)
    staff = bearer(settings, "sam", "staff")
    assert client.get("/products/A-1").status_code == 200
    with redis.Redis.from_url(settings.redis_url or "") as direct:
        direct.flushall()
        # The projector refills one member after the flush: that set alone is not trusted.
        direct.zadd(TOP_PRODUCTS_BY_UNITS, {"A-1": 3})
        top = client.get("/stats/top-products?by=units", headers=staff)
        assert [p["sku"] for p in top.json()] == ["B-1", "A-1"]
        assert direct.zscore(TOP_PRODUCTS_BY_UNITS, "B-1") == 7
        # Rebuilt: the next answer comes from the sorted set (the counter shows it).
        add_product(conn, "C-1", units_sold=5, revenue=5)
        direct.zadd(TOP_PRODUCTS_BY_UNITS, {"C-1": 5})
        stats = client.app.state.resources.stats
        hits = stats.hits.get("top-products", 0)
        top = client.get("/stats/top-products?by=units&limit=2", headers=staff)
        assert [p["sku"] for p in top.json()] == ["B-1", "C-1"]
        assert stats.hits["top-products"] == hits + 1
    assert client.get("/products/A-1").json()["units_sold"] == 3


def test_every_endpoint_answers_with_redis_killed_and_readyz_says_degraded(
    settings: Settings, conn: Any, embedded_valkey: EmbeddedValkey
) -> None:
    add_product(conn, "A-1", units_sold=3, revenue=300)
    add_product(conn, "B-1", units_sold=7, revenue=70, version=4)
    order_id = add_order(conn, "alice")
    add_history(conn, order_id, 1, "OrderPlaced", {"order_id": order_id, "customer_id": "alice"})
    set_checkpoint(conn, "product_view", 10, 5)
    staff = bearer(settings, "sam", "staff")
    admin = bearer(settings, "root", "admin")
    expected: dict[str, Any] = {}
    checks = [
        ("/products/B-1", {}),
        ("/products?sort=-units_sold", {}),
        (f"/orders/{order_id}", staff),
        (f"/orders/{order_id}/history", staff),
        ("/orders", staff),
        ("/customers/alice/orders", staff),
        ("/stats/top-products?by=revenue", staff),
        ("/stats/daily-sales?from=2026-03-01&to=2026-03-02", staff),
        ("/projections", admin),
    ]
    with query_client(settings) as client:
        for path, headers in checks:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, (path, response.text)
            expected[path] = response.json()
        embedded_valkey.kill()
        try:
            started = time.monotonic()
            for path, headers in checks * 2:
                response = client.get(path, headers=headers)
                assert response.status_code == 200, (path, response.text)
                assert response.json() == expected[path], path
            assert client.get("/products/B-1", headers={"If-None-Match": '"4"'}).status_code == 304
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {"database": "ok", "migrations": "ok", "redis": "degraded"}
            # A dead Redis must not cost a timeout per request.
            assert time.monotonic() - started < 5
        finally:
            embedded_valkey.start()
        assert client.get("/readyz").json()["redis"] == "ok"


def test_concurrent_cache_reads_share_mgets_and_each_gets_its_own_value(
    settings: Settings,
) -> None:
    import asyncio

    from orderdesk.redis_client import async_redis

    plain = redis.Redis.from_url(settings.redis_url or "")
    plain.mset({f"batch:{i}": f"value-{i}" for i in range(10)})

    async def read_all() -> tuple[list[bytes | None], int]:
        client = async_redis(settings.redis_url or "")
        try:
            batcher = cache.GetBatcher(cache.RedisGuard(client))
            keys = [f"batch:{i % 12}" for i in range(60)]  # repeats, and two missing keys
            values = await asyncio.gather(*(batcher.get(k) for k in keys))
            return list(values), batcher.batches
        finally:
            await client.aclose()

    values, batches = asyncio.run(read_all())
    assert values == [f"value-{i % 12}".encode() if i % 12 < 10 else None for i in range(60)]
    assert batches <= 2  # 60 concurrent reads: the first MGET, then one for the rest
