"""Read-your-writes: a GET with X-Consistency-Token waits for the projections it reads,
woken by the projector's NOTIFY, and gives up with 503 projection-lagging."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from orderdesk.settings import Settings
from shared_contracts.tokens import LogPoint, encode_token
from tests.integration.query_rows import (
    add_order,
    add_product,
    set_checkpoint,
)
from tests.support import bearer, poll_until


def test_waits_until_the_projection_applies_the_write(client: Any, conn: Any) -> None:
    set_checkpoint(conn, "product_view", 100, 7)
    add_product(conn, "MUG-1", version=1)
    client.get("/products/MUG-1")  # version 1 is now cached
    watcher = client.app.state.resources.watcher
    watcher.poll_interval = 60.0  # only the NOTIFY can wake the waiter in time
    token = encode_token(LogPoint(100, 9))
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        future = pool.submit(
            client.get,
            "/products/MUG-1",
            headers={"X-Consistency-Token": token, "X-Wait-Ms": "8000"},
        )
        poll_until(lambda: watcher.waiting == 1, message="request waiting")
        assert not future.done()
        # The projector commits version 2 and the checkpoint past the token, and NOTIFYs.
        add_product(conn, "MUG-1", version=2)
        set_checkpoint(conn, "product_view", 100, 9)
        response = future.result(timeout=8)
    assert response.status_code == 200
    # The cache still holds version 1: after the wait the answer comes from PostgreSQL.
    assert response.json()["version"] == 2
    assert time.monotonic() - started < 4


def test_a_checkpoint_wakes_the_requests_it_reaches_and_no_later_one(
    client: Any, conn: Any
) -> None:
    set_checkpoint(conn, "product_view", 100, 1)
    watcher = client.app.state.resources.watcher
    watcher.poll_interval = 60.0  # only the NOTIFYs wake the waiters in time

    def read(point: LogPoint) -> Any:
        headers = {"X-Consistency-Token": encode_token(point), "X-Wait-Ms": "8000"}
        return client.get("/products", headers=headers)

    with ThreadPoolExecutor(2) as pool:
        sooner = pool.submit(read, LogPoint(100, 5))
        later = pool.submit(read, LogPoint(100, 9))
        poll_until(lambda: watcher.waiting == 2, message="both requests waiting")
        set_checkpoint(conn, "product_view", 100, 5)
        assert sooner.result(timeout=8).status_code == 200
        poll_until(lambda: watcher.waiting == 1, message="the sooner request gone")
        assert not later.done()
        set_checkpoint(conn, "product_view", 100, 9)
        assert later.result(timeout=8).status_code == 200
    assert watcher.waiting == 0


def test_waits_for_the_projections_of_that_endpoint_only(
    client: Any, conn: Any, settings: Settings
) -> None:
    order_id = add_order(conn, "alice")
    set_checkpoint(conn, "product_view", 50, 1)
    set_checkpoint(conn, "order_view", 40, 1)
    token = {"X-Consistency-Token": encode_token(LogPoint(45, 0)), "X-Wait-Ms": "300"}
    assert client.get("/products", headers=token).status_code == 200
    lagging = client.get(
        f"/orders/{order_id}", headers={**token, **bearer(settings, "alice", "customer")}
    )
    assert lagging.status_code == 503
    # A projection without a row has applied nothing yet.
    staff = bearer(settings, "sam", "staff")
    assert client.get("/stats/daily-sales", headers={**token, **staff}).status_code == 503


def test_past_the_wait_is_503_projection_lagging_with_retry_after(client: Any, conn: Any) -> None:
    set_checkpoint(conn, "product_view", 10, 1)
    started = time.monotonic()
    response = client.get(
        "/products",
        headers={"X-Consistency-Token": encode_token(LogPoint(11, 0)), "X-Wait-Ms": "400"},
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"] == "urn:orderdesk:problem:projection-lagging"
    assert 0.35 <= elapsed < 3


def test_many_waiters_share_one_refresh_instead_of_polling_each(client: Any, conn: Any) -> None:
    set_checkpoint(conn, "product_view", 10, 1)
    watcher = client.app.state.resources.watcher
    headers = {"X-Consistency-Token": encode_token(LogPoint(20, 0)), "X-Wait-Ms": "1000"}
    before = watcher.refreshes
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: client.get("/products", headers=headers), range(20)))
    assert {a.status_code for a in answers} == {503}
    # A poll every 250 ms while anyone waits, plus one per arriving waiter at most.
    assert watcher.refreshes - before <= 30


def test_requests_joining_a_wait_cost_no_query_of_their_own(client: Any, conn: Any) -> None:
    watcher = client.app.state.resources.watcher
    watcher.poll_interval = 60.0  # no poll during the test: only arrivals and NOTIFYs
    # Start with the listener connected and fresh checkpoints (a token read refreshes).
    poll_until(lambda: watcher.listening, message="the listener connected")
    set_checkpoint(conn, "product_view", 10, 1)
    fresh = {"X-Consistency-Token": encode_token(LogPoint(10, 1)), "X-Wait-Ms": "0"}
    poll_until(
        lambda: client.get("/products", headers=fresh).status_code == 200 and not watcher.stale,
        message="the notice read back",
    )
    headers = {"X-Consistency-Token": encode_token(LogPoint(20, 0)), "X-Wait-Ms": "8000"}
    with ThreadPoolExecutor(11) as pool:
        before = watcher.refreshes
        first = pool.submit(client.get, "/products", headers=headers)
        poll_until(lambda: watcher.waiting == 1 and watcher.refreshes > before)
        settled = watcher.refreshes  # the first waiter's refresh (it starts the poll)
        rest = [pool.submit(client.get, "/products", headers=headers) for _ in range(10)]
        poll_until(lambda: watcher.waiting == 11, message="eleven requests waiting")
        assert watcher.refreshes == settled
        set_checkpoint(conn, "product_view", 20, 0)  # one NOTIFY, one refresh, all answered
        assert {f.result(timeout=8).status_code for f in [first, *rest]} == {200}
    assert watcher.refreshes == settled + 1


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Consistency-Token": "garbage"},
        {"X-Consistency-Token": "c1.!!!!"},
        {"X-Consistency-Token": encode_token(LogPoint(1, 1)), "X-Wait-Ms": "-5"},
        {"X-Consistency-Token": encode_token(LogPoint(1, 1)), "X-Wait-Ms": "10001"},
        {"X-Consistency-Token": encode_token(LogPoint(1, 1)), "X-Wait-Ms": "soon"},
    ],
)
def test_malformed_token_or_wait_is_400_at_once(client: Any, headers: dict[str, str]) -> None:
    started = time.monotonic()
    response = client.get("/products", headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert time.monotonic() - started < 1


def test_without_the_header_a_get_never_waits(client: Any, conn: Any) -> None:
    set_checkpoint(conn, "product_view", 1, 1, state="stalled")
    add_product(conn, "MUG-1")
    started = time.monotonic()
    assert client.get("/products/MUG-1").status_code == 200
    assert client.get("/products").status_code == 200
    assert time.monotonic() - started < 1


def test_shutdown_never_hangs_when_a_refresh_swallows_its_cancellation(settings: Settings) -> None:
    """Python 3.11's ``asyncio.wait_for`` (inside psycopg_pool) can drop a cancellation that
    races with its result; the watcher must stop anyway instead of hanging the shutdown."""
    import asyncio

    from orderdesk.database import async_pool
    from query_side.consistency import CheckpointWatcher

    url = settings.database_url
    assert url is not None

    async def scenario() -> float:
        pool = async_pool(url, size=1, name="test-watcher")
        await pool.open()
        watcher = CheckpointWatcher(pool, url)
        refreshing = asyncio.Event()

        async def refresh_that_swallows() -> None:
            refreshing.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                return  # what the racing wait_for does: the result wins, no exception

        watcher.refresh = refresh_that_swallows  # type: ignore[method-assign]
        await watcher.start()
        await asyncio.wait_for(refreshing.wait(), 5)
        started = time.monotonic()
        await watcher.stop()
        elapsed = time.monotonic() - started
        await pool.close()
        return elapsed

    assert asyncio.run(scenario()) < 1.0


def test_notices_nobody_waits_for_cost_no_query_and_a_later_token_still_sees_them(
    client: Any, conn: Any
) -> None:
    watcher = client.app.state.resources.watcher
    set_checkpoint(conn, "product_view", 10, 1)
    headers = {"X-Consistency-Token": encode_token(LogPoint(10, 1))}
    assert client.get("/products", headers=headers).status_code == 200  # fresh from here
    before = watcher.refreshes
    headers["X-Wait-Ms"] = "0"
    for tx in range(11, 16):  # a projector committing batches while nobody reads
        set_checkpoint(conn, "product_view", tx, 1)
    poll_until(lambda: watcher.stale, message="the notices arrived")
    # Nobody waits: the notices only mark the checkpoints stale, none is re-read.
    with pytest.raises(AssertionError):
        poll_until(lambda: watcher.refreshes != before, timeout=0.5)
    # A token of the newest write answers at once, even with no time to wait: the first
    # request that needs the stale checkpoints re-reads them, once.
    headers["X-Consistency-Token"] = encode_token(LogPoint(15, 1))
    assert client.get("/products", headers=headers).status_code == 200
    assert watcher.refreshes == before + 1 and not watcher.stale
