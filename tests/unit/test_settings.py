"""Settings are read once from ORDERDESK_* variables into a frozen object."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orderdesk.settings import Settings, SettingsError, load_settings, settings_env


def test_defaults_without_environment() -> None:
    settings = load_settings({})
    assert settings.database_url is None and settings.redis_url is None
    assert settings.uses_embedded_servers
    assert (settings.command_port, settings.query_port) == (8000, 8001)
    assert settings.data_dir == Path(".orderdesk")


def test_values_are_converted_and_read_db_defaults_to_write_db() -> None:
    settings = load_settings(
        {
            "ORDERDESK_DATABASE_URL": "postgresql://u@h/db",
            "ORDERDESK_REDIS_URL": "redis://h/0",
            "ORDERDESK_COMMAND_PORT": "9000",
            "ORDERDESK_RELAY_POLL_INTERVAL": "0.25",
            "ORDERDESK_DATA_DIR": "/srv/od",
            "UNRELATED": "x",
        }
    )
    assert settings.command_port == 9000
    assert settings.relay_poll_interval == 0.25
    assert settings.data_dir == Path("/srv/od")
    assert settings.effective_read_database_url == "postgresql://u@h/db"
    assert settings.effective_broker_url == "redis://h/0"
    assert not settings.uses_embedded_servers


def test_bad_number_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="ORDERDESK_QUERY_PORT"):
        load_settings({"ORDERDESK_QUERY_PORT": "eighty"})


def test_bad_log_level_is_rejected() -> None:
    with pytest.raises(SettingsError, match="LOG_LEVEL"):
        load_settings({"ORDERDESK_LOG_LEVEL": "LOUD"})


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().command_port = 1  # type: ignore[misc]


def test_settings_env_round_trips() -> None:
    original = Settings(
        database_url="postgresql://a@b/c", redis_url="redis://r/1", cache_ttl=7, data_dir=Path("/x")
    )
    assert load_settings(settings_env(original)) == original
