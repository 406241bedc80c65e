"""Fixtures of the query API tests: the app in-process and a connection to put read rows in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orderdesk.settings import Settings
from tests.integration.query_rows import connect, query_client


@pytest.fixture
def client(settings: Settings) -> Iterator[Any]:
    """The query API (real lifespan: pool, Redis client, checkpoint watcher)."""
    with query_client(settings) as test_client:
        yield test_client


@pytest.fixture
def conn(settings: Settings) -> Iterator[Any]:
    """A connection to the read database, for inserting rows the projector would write."""
    assert settings.database_url is not None
    with connect(settings.database_url) as connection:
        yield connection
