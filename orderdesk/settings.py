"""The one settings module: every ``ORDERDESK_*`` variable, read once into a frozen object.

Processes call :func:`load_settings` in their composition root and pass the object down;
nothing reads the environment anywhere else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEV_JWT_SECRET = "orderdesk-dev-secret-change-me-0123456789"


class SettingsError(ValueError):
    """An ``ORDERDESK_*`` variable has a value we cannot use."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """Configuration of every process. Field ``x`` is read from ``ORDERDESK_X``."""

    database_url: str | None = None
    read_database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    data_dir: Path = Path(".orderdesk")
    jwt_secret: str = DEV_JWT_SECRET
    jwt_public_key: str | None = None
    jwt_private_key: str | None = None
    log_level: str = "INFO"
    log_format: str = "json"
    command_host: str = "127.0.0.1"
    command_port: int = 8000
    query_host: str = "127.0.0.1"
    query_port: int = 8001
    worker_metrics_port: int = 9100
    db_pool_size: int = 10
    relay_poll_interval: float = 1.0
    projection_batch_size: int = 2000
    projection_max_retries: int = 5
    cache_ttl: int = 30
    rate_limit: int = 600
    rate_limit_window: int = 60
    idempotency_ttl_hours: int = 24
    currency: str = "EUR"
    embedded_pg_port: int = 55432
    embedded_redis_port: int = 56379

    @property
    def effective_read_database_url(self) -> str | None:
        """The read database; the write database when not set separately."""
        return self.read_database_url or self.database_url

    @property
    def effective_broker_url(self) -> str | None:
        """The Dramatiq broker; the Redis server when not set separately."""
        return self.broker_url or self.redis_url

    @property
    def uses_embedded_servers(self) -> bool:
        """True when a URL is missing, so the embedded PostgreSQL/Valkey must be started."""
        return self.database_url is None or self.redis_url is None

    def with_urls(
        self, *, database_url: str | None = None, redis_url: str | None = None
    ) -> Settings:
        """A copy with the missing URLs filled in (once embedded servers have started)."""
        return dataclasses.replace(
            self,
            database_url=database_url or self.database_url,
            redis_url=redis_url or self.redis_url,
        )


def _convert(field: dataclasses.Field[Any], raw: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError as exc:
        raise SettingsError(f"ORDERDESK_{field.name.upper()}={raw!r}: {exc}") from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every ``ORDERDESK_*`` variable once; unknown variables are ignored, empty ones unset."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        raw = env.get(f"ORDERDESK_{field.name.upper()}")
        if raw is None or raw == "":
            continue
        values[field.name] = _convert(field, raw)
    settings = Settings(**values)
    if settings.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(f"ORDERDESK_LOG_LEVEL={settings.log_level!r} is not a log level")
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process load exactly these settings."""
    env: dict[str, str] = {}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if value is not None:
            env[f"ORDERDESK_{field.name.upper()}"] = str(value)
    return env
