"""One request followed through three real processes by its X-Request-ID.

The command API stores the id in the event's metadata; the relay's wakeup line and the
worker's "event applied" lines name it, so an operator can grep one id across every log.
Every line of every process is JSON, and the bearer token shows up in none of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import msgspec

from orderdesk.settings import Settings
from tests.support import Process, bearer, free_port, poll_until, wait_for_port

REQUEST_ID = "trace-abc-123"


def _lines(process: Process) -> list[dict[str, Any]]:
    """Every line the process wrote, each decoded as JSON (a non-JSON line fails)."""
    decoded = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        try:
            decoded.append(msgspec.json.decode(line))
        except msgspec.DecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return decoded


def _mentioning(process: Process) -> list[dict[str, Any]]:
    return [
        line
        for line in _lines(process)
        if line.get("request_id") == REQUEST_ID or REQUEST_ID in line.get("request_ids", ())
    ]


def test_one_request_id_is_followed_through_api_relay_and_worker(
    settings: Settings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(settings, worker_metrics_port=free_port())
    port = free_port()
    api = Process(["command-api", "--port", str(port)], settings, tmp_path / "command-api.log")
    relay = Process(["relay"], settings, tmp_path / "relay.log")
    worker = Process(["worker", "--threads", "2"], settings, tmp_path / "worker.log")
    processes = (api, relay, worker)
    headers = bearer(settings, "staff-1", "staff")
    token = headers["Authorization"].removeprefix("Bearer ")
    try:
        wait_for_port(port, api.proc)
        poll_until(
            lambda: any(line["message"] == "worker started" for line in _lines(worker)),
            timeout=20,
            message="worker started",
        )
        response = httpx.post(
            f"http://127.0.0.1:{port}/products",
            json={"sku": "TRACE-1", "name": "Traced", "price": 990},
            headers={**headers, "X-Request-ID": REQUEST_ID},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        assert response.headers["X-Request-ID"] == REQUEST_ID

        api_lines = poll_until(lambda: _mentioning(api), timeout=10, message="API line")
        assert any(line["message"] == "request" and line["status"] == 201 for line in api_lines)

        relay_lines = poll_until(lambda: _mentioning(relay), timeout=20, message="relay line")
        assert relay_lines[0]["message"] == "relay woke projectors"

        def worker_saw_it() -> list[dict[str, Any]] | None:
            lines = _mentioning(worker)
            # ProductAdded feeds product_view (the order projections ignore it).
            return lines if {line.get("projection") for line in lines} == {"product_view"} else None

        worker_lines = poll_until(
            worker_saw_it,
            timeout=20,
            message="worker line for product_view",
        )
        assert all(line["message"] == "event applied" for line in worker_lines)
    finally:
        for process in processes:
            process.stop()
    for process in processes:
        assert _lines(process), "every line is JSON, up to the shutdown lines"
        text = process.log_path.read_text(errors="replace")
        assert token not in text
        assert "Bearer" not in text
