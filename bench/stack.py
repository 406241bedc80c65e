"""The orderdesk stack for a benchmark run, as real processes, torn down cleanly.

Servers: the embedded PostgreSQL and Valkey (fresh, under the run's work directory) unless
``ORDERDESK_DATABASE_URL`` / ``ORDERDESK_REDIS_URL`` are set. On that one PostgreSQL server
each system gets its own database — orderdesk, eventsourcing, the raw psycopg endpoint,
pgbench — so they share the server (same machine, same settings) but not tables.

Processes: ``orderdesk migrate``, then command-api, relay, worker and query-api on free
ports, exactly as a deployment starts them. Baseline HTTP apps run under uvicorn the same
way (:func:`http_baseline`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from orderdesk.database import libpq_url, with_database
from orderdesk.embedded import embedded_servers, free_port

__all__ = [
    "Stack",
    "configured_servers",
    "free_port",
    "http_baseline",
    "running_stack",
    "spawn",
    "wait_for_port",
]
from orderdesk.servers import runtime_servers
from orderdesk.settings import Settings, load_settings, settings_env

BENCH_JWT_SECRET = "orderdesk-benchmark-secret-0123456789abcdef"
DATABASES = ("orderdesk_bench", "bench_eventsourcing", "bench_raw", "bench_pgbench")
START_TIMEOUT = 60.0


class StackError(RuntimeError):
    """A process of the stack did not start."""


@dataclasses.dataclass
class Child:
    """One running process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclasses.dataclass
class Stack:
    """Where everything of a running benchmark stack is."""

    settings: Settings
    server_url: str
    work_dir: Path
    children: dict[str, Child]
    embedded: bool

    @property
    def command_url(self) -> str:
        """Base URL of the command API."""
        return f"http://127.0.0.1:{self.settings.command_port}"

    @property
    def query_url(self) -> str:
        """Base URL of the query API."""
        return f"http://127.0.0.1:{self.settings.query_port}"

    def database(self, name: str) -> str:
        """URL of one of :data:`DATABASES` on the stack's server."""
        return with_database(self.server_url, name)

    @property
    def worker_pid(self) -> int:
        """Process id of the projection worker (for RSS)."""
        return self.children["worker"].proc.pid


def port_open(port: int) -> bool:
    """True when something listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(child: Child, port: int, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``child`` listens on ``port``; raise with its log tail if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            break
        if port_open(port):
            return
        time.sleep(0.05)
    tail = child.log_path.read_text(errors="replace")[-3000:] if child.log_path.exists() else ""
    raise StackError(f"{child.name} did not listen on port {port}:\n{tail}")


def spawn(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Child:
    """Start ``args`` in its own session, output to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            args, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Child(name, proc, log_path)


def _child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    env.update(settings_env(settings))
    return env


def recreate_databases(server_url: str, names: tuple[str, ...]) -> None:
    """Drop and create each database so every run starts from empty tables."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@contextlib.contextmanager
def servers(work_dir: Path) -> Iterator[tuple[str, str, bool]]:
    """``(postgres server url, redis url, embedded?)``: the configured ones or fresh embedded."""
    database_url = os.environ.get("ORDERDESK_DATABASE_URL")
    redis_url = os.environ.get("ORDERDESK_REDIS_URL")
    if database_url and redis_url:
        yield database_url, redis_url, False
        return
    with embedded_servers(work_dir / "servers", free_port(), free_port()) as (db, redis):
        yield database_url or db, redis_url or redis, True


@contextlib.contextmanager
def running_stack(
    work_dir: Path, *, worker_threads: int = 2, log_level: str = "WARNING"
) -> Iterator[Stack]:
    """Servers, migrated database and the four orderdesk processes; all stopped on exit.

    The processes log at ``log_level`` (WARNING: the INFO lines cost CPU under load) into
    ``work_dir/logs``."""
    work_dir = work_dir.resolve()
    with servers(work_dir) as (server_url, redis_url, embedded):
        recreate_databases(server_url, DATABASES)
        settings = Settings(
            database_url=with_database(server_url, DATABASES[0]),
            redis_url=redis_url,
            data_dir=work_dir,
            jwt_secret=BENCH_JWT_SECRET,
            log_level=log_level,
            command_port=free_port(),
            query_port=free_port(),
            worker_metrics_port=free_port(),
            # The limiter is a feature under test elsewhere; here it would cap the load.
            rate_limit=1_000_000_000,
        )
        if embedded:
            import redis

            redis.Redis.from_url(redis_url).flushdb()
        env = _child_env(settings)
        log_dir = work_dir / "logs"
        cli = [sys.executable, "-m", "orderdesk.cli"]
        migrate = subprocess.run([*cli, "migrate"], env=env, capture_output=True, text=True)
        if migrate.returncode != 0:
            raise StackError(f"orderdesk migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
        stack = Stack(settings, server_url, work_dir, {}, embedded)
        try:
            for name, extra in (
                ("command-api", []),
                ("relay", []),
                ("worker", ["--threads", str(worker_threads)]),
                ("query-api", []),
            ):
                stack.children[name] = spawn(name, [*cli, name, *extra], env, log_dir)
            wait_for_port(stack.children["command-api"], settings.command_port)
            wait_for_port(stack.children["query-api"], settings.query_port)
            yield stack
        finally:
            for child in reversed(list(stack.children.values())):
                child.stop()


@contextlib.contextmanager
def http_baseline(name: str, factory: str, env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """A baseline ASGI app factory under uvicorn (as the APIs run); yields its base URL."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    child = spawn(name, args, {**os.environ, **env}, log_dir)
    try:
        wait_for_port(child, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of ``pid`` and its children, in MB (max over them)."""
    import psutil  # type: ignore[import-untyped,unused-ignore]

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    peaks = []
    for proc in procs:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks) if peaks else None


@contextlib.contextmanager
def configured_servers() -> Iterator[Settings]:
    """The process's settings with both server URLs: the configured ones, else embedded
    servers in a temporary directory, stopped and removed on exit (for the scripts that
    need the servers but not the stack)."""
    base = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        if base.uses_embedded_servers:
            base = dataclasses.replace(
                base,
                data_dir=Path(tmp) / "data",
                embedded_pg_port=free_port(),
                embedded_redis_port=free_port(),
            )
        with runtime_servers(base) as resolved:
            yield resolved
