"""A private RabbitMQ server for the tests (Debian's ``rabbitmq-server``).

Installed with apt when missing and we are root; started on free ports with its own
node name, data and log directories and its own epmd port, so it never meets a system
RabbitMQ; stopped by killing its process group (and its epmd) at the end of the session.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support import free_port, wait_for_port

INSTALL_TIMEOUT = 600
START_TIMEOUT = 60
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class Unavailable(Exception):
    """RabbitMQ cannot be installed or started here; the message says why."""


def ensure_installed() -> None:
    """``apt-get install rabbitmq-server`` when it is missing (root only)."""
    if shutil.which("rabbitmq-server") is not None and SERVER.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("rabbitmq-server is not installed and we cannot apt-get it (not root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for command in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", "rabbitmq-server"],
        ):
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
            )
            if done.returncode != 0:
                raise Unavailable(f"{' '.join(command)} failed: {done.stderr[-500:]}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"installing rabbitmq-server failed: {exc}") from exc
    if not SERVER.exists():
        raise Unavailable(f"rabbitmq-server installed but {SERVER} is missing")


@dataclasses.dataclass
class RabbitMQ:
    """One running private server."""

    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    log_path: Path

    def stop(self) -> None:
        """Kill the server's process group, then its private epmd."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        epmd = shutil.which("epmd")
        if epmd is not None:
            # epmd daemonizes into its own session; ask it (on our port only) to exit.
            subprocess.run([epmd, "-kill"], env=self.env, capture_output=True, timeout=10)


def start(base: Path) -> RabbitMQ:
    """Start a server whose files all live under ``base``; return once AMQP accepts."""
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (base / "enabled_plugins").write_text("[].\n")  # no management plugin: faster start
    env = {
        **os.environ,
        "HOME": str(base),  # the Erlang cookie is written here
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "ERL_EPMD_PORT": str(free_port()),
        "RABBITMQ_NODENAME": "orderdesk-test@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
    }
    log_path = base / "server.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [str(SERVER)],
            env=env,
            cwd=base,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RabbitMQ(f"amqp://guest:guest@127.0.0.1:{port}/", process, env, log_path)
    started = time.monotonic()
    try:
        wait_for_port(port, process, timeout=START_TIMEOUT)
    except AssertionError as exc:
        server.stop()
        tail = log_path.read_text(errors="replace")[-1500:]
        raise Unavailable(f"rabbitmq-server did not start: {exc}\n{tail}") from exc
    server.env["ORDERDESK_TEST_RABBITMQ_START_SECONDS"] = f"{time.monotonic() - started:.1f}"
    return server
