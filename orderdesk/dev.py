"""``orderdesk dev``: the whole stack in one terminal.

Starts the embedded PostgreSQL and Valkey unless URLs are configured, migrates, then runs
the command API, relay, worker and query API as child processes (the same commands a
deployment runs), prints the URLs and ready-made tokens, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from orderdesk import migrations
from orderdesk.auth import mint_token
from orderdesk.logs import configure_logging
from orderdesk.servers import runtime_servers
from orderdesk.settings import Settings, settings_env

CHILDREN = ("command-api", "relay", "worker", "query-api")
TOKEN_TTL = 12 * 3600


def _wait_for_port(host: str, port: int, child: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _spawn(name: str, settings: Settings) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    env.update(settings_env(settings))
    # Own session: Ctrl-C reaches `dev` only, which then stops children in order.
    return subprocess.Popen(
        [sys.executable, "-m", "orderdesk.cli", name], env=env, start_new_session=True
    )


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _banner(settings: Settings) -> str:
    staff = mint_token(settings, "staff-1", ["staff"], TOKEN_TTL)
    admin = mint_token(settings, "admin-1", ["admin"], TOKEN_TTL)
    customer = mint_token(settings, "customer-1", ["customer"], TOKEN_TTL)
    return "\n".join(
        [
            "",
            "orderdesk is running",
            f"  command API  http://{settings.command_host}:{settings.command_port}",
            f"  query API    http://{settings.query_host}:{settings.query_port}",
            f"  database     {settings.database_url}",
            f"  redis        {settings.redis_url}",
            f"  data         {settings.data_dir.resolve()}",
            "",
            f"  staff token     {staff}",
            f"  customer token  {customer}  (sub customer-1)",
            f"  admin token     {admin}",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def run_dev(settings: Settings) -> int:
    """Run the stack until Ctrl-C; returns the exit code."""
    configure_logging("dev", settings.log_level, settings.log_format)
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    with runtime_servers(settings) as resolved:
        assert resolved.database_url is not None
        resolved = dataclasses.replace(resolved, data_dir=resolved.data_dir.resolve())
        for url in {resolved.database_url, resolved.effective_read_database_url}:
            if url:
                migrations.upgrade(url)
        children: dict[str, subprocess.Popen[bytes]] = {}
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            for name in CHILDREN:
                children[name] = _spawn(name, resolved)
            ready = _wait_for_port(
                resolved.command_host, resolved.command_port, children["command-api"], 30
            ) and _wait_for_port(
                resolved.query_host, resolved.query_port, children["query-api"], 30
            )
            if not ready:
                print("orderdesk dev: an API did not start; see the log above", file=sys.stderr)
                return 1
            print(_banner(resolved), flush=True)
            while not stopping:
                dead = [n for n, c in children.items() if c.poll() is not None]
                if dead:
                    print(f"orderdesk dev: {', '.join(dead)} exited; stopping", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            return 0
        finally:
            _stop(children)
