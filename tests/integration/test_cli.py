"""The ``orderdesk`` console script, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orderdesk import migrations
from orderdesk.auth import TokenVerifier
from orderdesk.settings import Settings, settings_env
from tests.support import TEST_JWT_SECRET


def _run(args: list[str], settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    env.update(settings_env(settings))
    return subprocess.run(
        [sys.executable, "-m", "orderdesk.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = _run(["--help"], Settings(data_dir=tmp_path))
    assert result.returncode == 0
    for command in (
        "migrate",
        "command-api",
        "query-api",
        "relay",
        "worker",
        "dev",
        "token",
        "projections",
        "seed",
    ):
        assert command in result.stdout


def test_token_is_signed_with_the_configured_secret(tmp_path: Path) -> None:
    settings = Settings(jwt_secret=TEST_JWT_SECRET, data_dir=tmp_path)
    result = _run(
        ["token", "--sub", "alice", "--role", "customer", "--role", "staff", "--ttl", "60"],
        settings,
    )
    assert result.returncode == 0, result.stderr
    principal = TokenVerifier.from_settings(settings).principal("Bearer " + result.stdout.strip())
    assert principal.subject == "alice"
    assert principal.roles == {"customer", "staff"}


def test_token_with_unknown_role_fails_clearly(tmp_path: Path) -> None:
    result = _run(["token", "--sub", "x", "--role", "root"], Settings(data_dir=tmp_path))
    assert result.returncode == 2
    assert "unknown role" in result.stderr


def test_migrate_brings_an_empty_database_to_head(
    empty_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=empty_db_url, redis_url=redis_url, data_dir=tmp_path)
    result = _run(["migrate"], settings)
    assert result.returncode == 0, result.stderr
    assert migrations.current_revision(empty_db_url) == migrations.head_revision(empty_db_url)


def test_migrate_also_migrates_a_separate_read_database(
    empty_db_url: str, second_db_url: str, redis_url: str, tmp_path: Path
) -> None:
    migrations.downgrade(second_db_url, "base")
    settings = Settings(
        database_url=empty_db_url,
        read_database_url=second_db_url,
        redis_url=redis_url,
        data_dir=tmp_path,
    )
    result = _run(["migrate"], settings)
    assert result.returncode == 0, result.stderr
    for url in (empty_db_url, second_db_url):
        assert migrations.current_revision(url) == migrations.head_revision(url)


def test_bad_setting_is_reported_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERDESK_")}
    env["ORDERDESK_COMMAND_PORT"] = "eighty"
    result = subprocess.run(
        [sys.executable, "-m", "orderdesk.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ORDERDESK_COMMAND_PORT" in result.stderr
    assert "Traceback" not in result.stderr
