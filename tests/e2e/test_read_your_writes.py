"""Read-your-writes through real processes, with the worker paused (SIGSTOP) and resumed."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import psutil

from tests.e2e.conftest import Stack
from tests.support import bearer


def _worker(stack: Stack) -> psutil.Process:
    for child in psutil.Process(stack.process.proc.pid).children(recursive=True):
        if "worker" in child.cmdline():
            return child
    raise AssertionError("orderdesk dev runs no worker")


def test_token_waits_for_the_paused_worker_then_answers(stack: Stack) -> None:
    staff = bearer(stack.settings, "staff-1", "staff")
    cmd = httpx.Client(base_url=stack.command_url, timeout=15)
    qry = httpx.Client(base_url=stack.query_url, timeout=15)
    worker = _worker(stack)
    worker.send_signal(signal.SIGSTOP)
    try:
        created = cmd.post(
            "/products", json={"sku": "LAMP-1", "name": "Lamp", "price": 3000}, headers=staff
        )
        assert created.status_code == 201, created.text
        token = created.json()["token"]

        # Without the header a GET never waits: the projection has not run, so 404 at once.
        started = time.monotonic()
        assert qry.get("/products/LAMP-1").status_code == 404
        assert time.monotonic() - started < 1.0

        # With it, the query API waits up to X-Wait-Ms, then says the projection lags.
        started = time.monotonic()
        lagging = qry.get(
            "/products/LAMP-1", headers={"X-Consistency-Token": token, "X-Wait-Ms": "300"}
        )
        waited = time.monotonic() - started
        assert lagging.status_code == 503
        assert lagging.headers["content-type"].startswith("application/problem+json")
        assert lagging.json()["type"].endswith("projection-lagging")
        assert int(lagging.headers["Retry-After"]) >= 1
        assert 0.3 <= waited < 3.0

        # A malformed token is refused at once, waiting for nothing.
        started = time.monotonic()
        bad = qry.get("/products/LAMP-1", headers={"X-Consistency-Token": "garbage"})
        assert bad.status_code == 400
        assert time.monotonic() - started < 1.0

        # A long wait is answered as soon as the worker resumes and projects the write.
        answer: dict[str, httpx.Response] = {}

        def wait_for_it() -> None:
            answer["r"] = qry.get(
                "/products/LAMP-1", headers={"X-Consistency-Token": token, "X-Wait-Ms": "10000"}
            )

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        waiter.join(0.5)
        assert waiter.is_alive(), "the GET answered while the worker was still paused"
    finally:
        worker.send_signal(signal.SIGCONT)
    waiter.join(15)
    assert not waiter.is_alive()
    response = answer["r"]
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Lamp"
