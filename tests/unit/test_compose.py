"""compose.yaml and the Dockerfile describe the stack the CLI and settings actually offer.

``docker compose config`` validates the file where the compose plugin exists (CI); the
structural checks below run everywhere and also catch drift the plugin cannot see: a
command the CLI does not have, an ``ORDERDESK_*`` variable no setting reads.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from orderdesk.cli import build_parser
from orderdesk.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = {"command-api", "relay", "worker", "query-api"}
SERVICES = {"postgres", "redis", "migrate", *APP_SERVICES}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _compose_command() -> list[str] | None:
    """``docker compose`` (the v2 plugin) or ``docker-compose`` (v1.29), whichever exists."""
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    return None


COMPOSE = _compose_command()


@pytest.mark.skipif(COMPOSE is None, reason="neither docker compose nor docker-compose installed")
def test_docker_compose_config_accepts_the_file() -> None:
    assert COMPOSE is not None
    result = subprocess.run(
        [*COMPOSE, "-f", str(ROOT / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_every_service_is_there_with_its_server_versions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert services["postgres"]["image"].startswith("postgres:18")
    assert services["redis"]["image"].startswith("redis:7")


def test_app_services_share_one_image_and_run_real_cli_commands(compose: dict[str, Any]) -> None:
    parser = build_parser()
    images = set()
    for name in ("migrate", *APP_SERVICES):
        service = compose["services"][name]
        images.add(service["image"])
        assert service["build"]["context"] == "."
        args = parser.parse_args(service["command"])  # exits (fails) on an unknown command
        assert args.command == name
    assert len(images) == 1


def test_environment_names_only_real_settings(compose: dict[str, Any]) -> None:
    fields = {f"ORDERDESK_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    for name in ("migrate", *APP_SERVICES):
        env = compose["services"][name]["environment"]
        assert {"ORDERDESK_DATABASE_URL", "ORDERDESK_REDIS_URL", "ORDERDESK_JWT_SECRET"} <= set(env)
        assert set(env) <= fields, set(env) - fields


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "command-api", "worker", "query-api"):
        test = services[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name
    assert "/readyz" in " ".join(services["command-api"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(services["query-api"]["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["migrate"]["restart"] == "no"
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
    assert services["command-api"]["ports"] == ["8000:8000"]
    assert services["query-api"]["ports"] == ["8001:8001"]


def test_dockerfile_builds_one_non_root_image_running_orderdesk() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    assert sum(line.startswith("FROM ") for line in lines) == 1
    assert any(line.startswith("RUN pip install .") for line in lines)
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in {"root", "0"}
    assert 'ENTRYPOINT ["orderdesk"]' in lines
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    for package in (
        "orderdesk",
        "command_side",
        "query_side",
        "projections",
        "shared_contracts",
        "migrations",
    ):
        assert package in copied, package
