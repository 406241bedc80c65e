"""Shared fixtures: real PostgreSQL and Redis for every test that touches storage.

Servers come from ``orderdesk.servers.test_servers`` (URLs → Docker → embedded wheels),
started once per session. Each test gets its own freshly migrated database, copied from a
template database migrated once, and a flushed Redis database.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from orderdesk.database import libpq_url, with_database
from orderdesk.embedded import EmbeddedValkey
from orderdesk.settings import Settings
from tests.support import TEST_JWT_SECRET, bearer

TEMPLATE = "orderdesk_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, EmbeddedValkey | None]]:
    from orderdesk.servers import test_servers

    with test_servers(tmp_path_factory.mktemp("servers")) as found:
        yield found


@pytest.fixture(scope="session")
def pg_server_url(servers: tuple[str, str, EmbeddedValkey | None]) -> str:
    return servers[0]


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> str:
    from orderdesk import migrations

    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    url = with_database(pg_server_url, TEMPLATE)
    migrations.upgrade(url)
    return url


def _fresh_database(pg_server_url: str, template: str | None) -> str:
    name = f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if template:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        else:
            conn.execute(f"CREATE DATABASE {name}")
    return with_database(pg_server_url, name)


def _drop_database(pg_server_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(libpq_url(pg_server_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A freshly migrated database of its own for this test."""
    url = _fresh_database(pg_server_url, TEMPLATE)
    yield url
    _drop_database(pg_server_url, url)


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """An empty database (never migrated)."""
    url = _fresh_database(pg_server_url, None)
    yield url
    _drop_database(pg_server_url, url)


@pytest.fixture
def second_db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """Another migrated database, for tests where read and write databases differ."""
    url = _fresh_database(pg_server_url, TEMPLATE)
    yield url
    _drop_database(pg_server_url, url)


@pytest.fixture
def embedded_valkey(servers: tuple[str, str, EmbeddedValkey | None]) -> EmbeddedValkey:
    """The embedded Valkey itself, for tests that stop and restart a real server."""
    if servers[2] is None:
        pytest.skip("Redis is external here; outage tests need the embedded server")
    return servers[2]


@pytest.fixture
def redis_url(servers: tuple[str, str, EmbeddedValkey | None]) -> Iterator[str]:
    """The Redis server, flushed before the test."""
    import redis

    if servers[2] is not None and servers[2].process is None:
        servers[2].start()  # a previous test stopped it on purpose
    client = redis.Redis.from_url(servers[1])
    client.flushall()
    client.close()
    yield servers[1]


@pytest.fixture
def settings(db_url: str, redis_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own database, the flushed Redis, a test JWT secret."""
    return Settings(
        database_url=db_url,
        redis_url=redis_url,
        jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path / "data",
        relay_poll_interval=0.5,
        log_level="INFO",
    )


@pytest.fixture
def staff(settings: Settings) -> dict[str, str]:
    """An Authorization header of a staff member, for the test's settings."""
    return bearer(settings, "staff-1", "staff")


@pytest.fixture
def alice(settings: Settings) -> dict[str, str]:
    """An Authorization header of the customer alice, for the test's settings."""
    return bearer(settings, "alice", "customer")
