"""The embedded default: real servers from wheels, data kept across a restart."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis

from orderdesk.embedded import EmbeddedPostgres, EmbeddedValkey, free_port
from orderdesk.servers import runtime_servers
from orderdesk.settings import Settings


def test_postgres_data_survives_a_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg" / "data", free_port())
    url = server.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
    finally:
        server.stop()
    again = EmbeddedPostgres(tmp_path / "pg" / "data", server.port)
    again.start()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchone() == (42,)
    finally:
        again.stop()


def test_runtime_servers_starts_both_when_no_urls_and_stops_them(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "od", embedded_pg_port=free_port(), embedded_redis_port=free_port()
    )
    with runtime_servers(settings) as resolved:
        assert resolved.database_url and resolved.redis_url
        with psycopg.connect(resolved.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(resolved.redis_url).ping()
        assert (tmp_path / "od" / "postgres" / "data" / "PG_VERSION").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(resolved.database_url, connect_timeout=1).close()


def test_runtime_servers_uses_configured_urls(db_url: str, redis_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=db_url, redis_url=redis_url, data_dir=tmp_path / "none")
    with runtime_servers(settings) as resolved:
        assert resolved is settings
    assert not (tmp_path / "none").exists()


def test_valkey_is_a_real_redis_server(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "vk", free_port(), persist=False)
    url = server.start()
    try:
        client = redis.Redis.from_url(url)
        client.zadd("z", {"a": 2, "b": 1})
        assert client.zrevrange("z", 0, -1) == [b"a", b"b"]
    finally:
        server.stop()
