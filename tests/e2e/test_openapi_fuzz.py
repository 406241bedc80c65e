"""Schemathesis against both running APIs, each driven by its own ``/openapi.json``.

Real processes (command API, query API, relay, worker) on the test's database and Redis,
a little data written through the command API and projected, then positive and negative
examples for every operation with a staff token. A response fails the run when it is a 5xx,
has a status the document does not list for that operation, or has a body that does not
match the document's own schema for that status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, given

from orderdesk.settings import Settings
from tests.support import Process, bearer, free_port, poll_until, wait_for_port

# Examples per operation and mode (positive, negative, existing resources): ~25 operations
# of both APIs x up to 3 modes x 20 run in ~40 s on an idle machine, well under the file's
# 90 s budget on a loaded CI runner, while still trying every parameter both ways.
MAX_EXAMPLES = 20
CHECKS: list[Callable[..., Any]] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.response_schema_conformance,
]


@dataclasses.dataclass
class Apis:
    command_url: str
    query_url: str
    staff: dict[str, str]
    sku: str
    order_id: str
    customer_id: str = "carol"


def _seed(command_url: str, query_url: str, staff: dict[str, str]) -> tuple[str, str]:
    """Two products with stock, one paid order; returns (sku, order id) once projected."""
    with httpx.Client(base_url=command_url, headers=staff, timeout=10) as client:
        for sku, price in (("FUZZ-1", 250), ("FUZZ-2", 1200)):
            created = client.post(
                "/products", json={"sku": sku, "name": sku.title(), "price": price}
            )
            assert created.status_code == 201, created.text
            received = client.post(f"/stock/{sku}/receipts", json={"quantity": 50})
            assert received.status_code == 200, received.text
        placed = client.post(
            "/orders",
            json={"customer_id": "carol", "lines": [{"sku": "FUZZ-1", "quantity": 2}]},
        )
        assert placed.status_code == 201, placed.text
        order = placed.json()
        paid = client.post(f"/orders/{order['id']}/payment", json={"amount": order["total"]})
        assert paid.status_code == 200, paid.text
    token = paid.json()["token"]
    with httpx.Client(base_url=query_url, headers=staff, timeout=15) as client:
        seen = client.get(
            f"/orders/{order['id']}", headers={"X-Consistency-Token": token, "X-Wait-Ms": "10000"}
        )
        assert seen.status_code == 200, seen.text
        assert seen.json()["status"] == "paid"
    return "FUZZ-1", str(order["id"])


@pytest.fixture
def apis(settings: Settings, tmp_path: Path) -> Iterator[Apis]:
    # The fuzzer sends hundreds of requests with one token: keep the limiter out of the way.
    configured = dataclasses.replace(
        settings, rate_limit=1_000_000, worker_metrics_port=free_port()
    )
    command_port, query_port = free_port(), free_port()
    processes = [
        Process(["command-api", "--port", str(command_port)], configured, tmp_path / "cmd.log"),
        Process(["query-api", "--port", str(query_port)], configured, tmp_path / "query.log"),
        Process(["relay"], configured, tmp_path / "relay.log"),
        Process(["worker", "--threads", "1"], configured, tmp_path / "worker.log"),
    ]
    try:
        wait_for_port(command_port, processes[0].proc, timeout=30)
        wait_for_port(query_port, processes[1].proc, timeout=30)
        command_url = f"http://127.0.0.1:{command_port}"
        query_url = f"http://127.0.0.1:{query_port}"
        staff = bearer(configured, "fuzz-staff", "staff", "admin")
        sku, order_id = _seed(command_url, query_url, staff)
        yield Apis(command_url, query_url, staff, sku, order_id)
    finally:
        for process in processes:
            process.stop()


def _load(url: str) -> Any:
    """The API's own document; waits briefly because a just-started API may still be booting."""

    def fetch() -> Any:
        try:
            response = httpx.get(f"{url}/openapi.json", timeout=5)
        except httpx.HTTPError:
            return None
        return response if response.status_code in (200, 404) else None

    response = poll_until(fetch, timeout=10, message=f"{url}/openapi.json")
    if response.status_code == 404:
        pytest.fail(f"{url} serves no /openapi.json")
    return schemathesis.openapi.from_dict(response.json())


def _run(strategy: Any, url: str, headers: dict[str, str]) -> None:
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples on every run: a failure is reproducible
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=15)

    run()


def fuzz(url: str, headers: dict[str, str], known: dict[str, str]) -> tuple[int, list[str]]:
    """Run every operation of ``url``'s document with positive and negative examples, and
    once more with the path parameters in ``known`` pinned to existing resources (random
    skus and ids are almost never found). Returns (runs, one line per failure)."""
    schema = _load(url)
    failures: list[str] = []
    runs = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [
            (mode.value, operation.as_strategy(generation_mode=mode))
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        ]
        pinned = {k: v for k, v in known.items() if "{" + k + "}" in operation.path}
        if pinned:
            strategies.append(("existing", operation.as_strategy(path_parameters=pinned)))
        for label, strategy in strategies:
            runs += 1
            try:
                _run(strategy, url, headers)
            except hypothesis.errors.Unsatisfiable:
                pass  # nothing to generate in this mode (an operation without inputs)
            # Collect every operation's failures, then fail once with all of them.
            except (Exception, schemathesis.errors.FailureGroup) as exc:
                failures.append(f"{operation.label} [{label}]: {exc}")
    return runs, failures


def test_query_api_conforms_to_its_own_openapi(apis: Apis) -> None:
    known = {"sku": apis.sku, "order_id": apis.order_id, "customer_id": apis.customer_id}
    runs, failures = fuzz(apis.query_url, apis.staff, known)
    assert failures == [], "\n\n".join(failures)
    assert runs >= 2 * 13  # every operation of the document, both ways


def test_command_api_conforms_to_its_own_openapi(apis: Apis) -> None:
    runs, failures = fuzz(
        apis.command_url, apis.staff, {"sku": apis.sku, "order_id": apis.order_id}
    )
    assert failures == [], "\n\n".join(failures)
    assert runs >= 2 * 9
