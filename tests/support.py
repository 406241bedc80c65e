"""Test helpers: polling with a deadline, tokens, and running real orderdesk processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from orderdesk.auth import mint_token
from orderdesk.settings import Settings, settings_env

T = TypeVar("T")

TEST_JWT_SECRET = "test-secret-for-orderdesk-tests-0123456789"


def poll_until(
    check: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout}s (last: {last!r})")


def bearer(settings: Settings, subject: str, *roles: str, ttl: int = 3600) -> dict[str, str]:
    """An Authorization header for ``subject`` with ``roles``."""
    return {"Authorization": "Bearer " + mint_token(settings, subject, list(roles), ttl)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0
) -> None:
    def open_() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            return sock.connect_ex(("127.0.0.1", port)) == 0

    poll_until(open_, timeout=timeout, interval=0.05, message=f"port {port} listening")


class Process:
    """A real ``orderdesk`` subcommand running in its own process, output to a log file."""

    def __init__(
        self,
        args: list[str],
        settings: Settings,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
        env.update(settings_env(settings))
        env.update(extra_env or {})
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orderdesk.cli", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")
