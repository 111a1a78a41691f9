"""docker-compose.yml can't be run here (no Docker engine): check that it names only things
that exist, and let `docker compose config` validate it where the client has compose."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

ROOT = Path(settings.BASE_DIR)
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def test_the_expected_services_exist():
    assert {"postgres", "redis", "migrate", "web", "workers", "flower"} <= set(SERVICES)
    assert "healthcheck" in SERVICES["postgres"] and "healthcheck" in SERVICES["redis"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_command_names_something_that_exists(name):
    service = SERVICES[name]
    if "build" not in service:
        return  # a stock image (postgres, redis)
    command = service["command"]
    text = " ".join(command) if isinstance(command, list) else command
    manage = re.findall(r"manage\.py\s+([a-z_]+)", text)
    for subcommand in manage:
        assert subcommand in get_commands(), f"{name}: no manage.py command {subcommand!r}"
    assert manage, f"{name}: runs no manage.py command"


def test_dependencies_and_files_exist():
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
        if "build" in service:
            assert (ROOT / "Dockerfile").exists()
            assert service.get("env_file") == ".env"
    for path in re.findall(r"^COPY (\S+) ", (ROOT / "Dockerfile").read_text(), re.M):
        assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"


def test_env_example_sets_what_the_services_read():
    text = (ROOT / "docker-compose.yml").read_text()
    for variable in re.findall(r"\$\{(\w+)(?::[?-][^}]*)?\}", text):
        assert variable in ENV_EXAMPLE, f"{variable} is used but not in .env.example"
    for variable in (
        "SECRET_KEY",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "REDIS_URL",
        "FLOWER_BASIC_AUTH",
        "WRITE_PARTITIONS",
    ):
        assert variable in ENV_EXAMPLE
    assert len(ENV_EXAMPLE["SECRET_KEY"]) >= 50  # production settings refuse shorter


def test_the_workers_scale_as_identical_replicas():
    workers = SERVICES["workers"]
    command = " ".join(workers["command"])
    assert "--processes" in command and "--partitions" not in command
    assert "container_name" not in workers and "ports" not in workers  # --scale must work
    assert not any(name.startswith("workers-") for name in SERVICES)  # no per-host variants


def test_flower_is_not_published_to_the_world():
    assert all(port.startswith("127.0.0.1:") for port in SERVICES["flower"]["ports"])


@pytest.mark.skipif(
    not shutil.which("docker")
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="no docker compose client here",
)
def test_docker_compose_config_validates(tmp_path):
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    result = subprocess.run(
        [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(tmp_path / ".env"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
