"""Where PostgreSQL and Redis come from: configured URLs, else Docker (tests), else wheels.

Processes use :func:`runtime_servers`: URLs from settings, or the embedded servers under
``ORDERDESK_DATA_DIR`` (data kept across restarts). Tests use :func:`test_servers`: URLs from
``ORDERDESK_TEST_DATABASE_URL`` / ``ORDERDESK_TEST_REDIS_URL``, else containers when a
Docker engine answers, else the same embedded wheels in a temporary directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from orderdesk.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from orderdesk.settings import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def runtime_servers(settings: Settings) -> Iterator[Settings]:
    """``settings`` with both URLs set, starting embedded servers for the missing ones."""
    if not settings.uses_embedded_servers:
        yield settings
        return
    data_dir = settings.data_dir.resolve()
    with contextlib.ExitStack() as stack:
        database_url = redis_url = None
        if settings.database_url is None:
            postgres = EmbeddedPostgres(data_dir / "postgres" / "data", settings.embedded_pg_port)
            database_url = postgres.start()
            if postgres.started_here:
                stack.callback(postgres.stop)
            log.info("embedded PostgreSQL ready", extra={"url": database_url})
        if settings.redis_url is None:
            valkey = EmbeddedValkey(data_dir / "valkey", settings.embedded_redis_port)
            redis_url = valkey.start()
            stack.callback(valkey.stop)
            log.info("embedded Valkey ready", extra={"url": redis_url})
        yield settings.with_urls(database_url=database_url, redis_url=redis_url)


def docker_available() -> bool:
    """True when a Docker engine answers (not merely when the client is installed)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextlib.contextmanager
def _docker_servers() -> Iterator[tuple[str, str]]:  # pragma: no cover - needs an engine
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    with PostgresContainer("postgres:18", driver=None) as pg, RedisContainer("redis:7") as rd:
        host = rd.get_container_host_ip()
        port = rd.get_exposed_port(6379)
        yield pg.get_connection_url(), f"redis://{host}:{port}/0"


@contextlib.contextmanager
def test_servers(tmp_dir: Path) -> Iterator[tuple[str, str, EmbeddedValkey | None]]:
    """Servers for one test session: ``(database_url, redis_url, embedded valkey or None)``.

    The embedded Valkey handle is returned so tests of Redis outages can stop and restart
    a real server.
    """
    db_url = os.environ.get("ORDERDESK_TEST_DATABASE_URL")
    redis_url = os.environ.get("ORDERDESK_TEST_REDIS_URL")
    if db_url and redis_url:
        yield db_url, redis_url, None
        return
    if os.environ.get("ORDERDESK_TEST_DOCKER", "auto") != "never" and docker_available():
        with _docker_servers() as (docker_db, docker_redis):
            yield db_url or docker_db, redis_url or docker_redis, None
        return
    postgres = EmbeddedPostgres(tmp_dir / "postgres" / "data", free_port(), unsafe_fast=True)
    valkey = EmbeddedValkey(tmp_dir / "valkey", free_port(), persist=False)
    try:
        db = db_url or postgres.start()
        rd = redis_url or valkey.start()
        yield db, rd, (valkey if redis_url is None else None)
    finally:
        valkey.stop()
        if postgres.started_here:
            postgres.stop("immediate")
