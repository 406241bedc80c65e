"""The whole stack as real processes: ``orderdesk dev`` on the test's database and Redis."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderdesk.settings import Settings
from tests.support import Process, free_port, wait_for_port


@dataclasses.dataclass
class Stack:
    settings: Settings
    command_url: str
    query_url: str
    process: Process


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    """``orderdesk dev`` running command API, relay, worker and query API."""
    configured = dataclasses.replace(
        settings, command_port=free_port(), query_port=free_port(), worker_metrics_port=free_port()
    )
    process = Process(["dev"], configured, tmp_path / "dev.log")
    try:
        wait_for_port(configured.command_port, process.proc, timeout=60)
        wait_for_port(configured.query_port, process.proc, timeout=60)
        yield Stack(
            configured,
            f"http://127.0.0.1:{configured.command_port}",
            f"http://127.0.0.1:{configured.query_port}",
            process,
        )
    finally:
        if process.proc.poll() is None:
            process.signal(signal.SIGINT)
        process.stop(timeout=30)
