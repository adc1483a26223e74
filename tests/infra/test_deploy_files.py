"""docker-compose.yml and the Procfile cannot be run here (no Docker engine):
check that every Nova process they start runs a command that exists."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]


def _assert_nova_command_exists(argv: list[str]) -> None:
    if argv[:2] == ["sh", "-c"]:
        for part in argv[2].split("&&"):
            _assert_nova_command_exists(shlex.split(part))
        return
    if argv[:2] == ["python", "manage.py"]:
        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"
    elif argv[0] == "gunicorn":
        module, _, attr = argv[1].partition(":")
        assert hasattr(importlib.import_module(module), attr or "application")
    elif argv[0] == "celery":
        assert argv[1] == "-A" and hasattr(importlib.import_module(argv[2]), "celery_app")
        assert argv[3] in {"worker", "beat"}
    else:
        pytest.fail(f"unknown Nova command {argv}")


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_nova_services_run_existing_commands() -> None:
    services = _compose()["services"]
    nova = {name: s for name, s in services.items() if s.get("build") == "."}
    assert {"migrate", "web", "worker", "beat"} <= set(nova)
    for name, service in nova.items():
        assert service["image"] == "nova:latest", name
        _assert_nova_command_exists(service["command"])


def test_compose_backing_services_match_design() -> None:
    services = _compose()["services"]
    assert "wal_level=logical" in services["postgres"]["command"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["clickhouse"]["image"].split(":")[1].startswith("24.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["redis"]["image"] == "redis:7"


def test_procfile_processes_run_existing_commands() -> None:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip():
            continue
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv[0] == "env":  # the line's own environment (ports, PROMETHEUS_MULTIPROC_DIR)
            argv = argv[1:]
            while "=" in argv[0]:
                argv = argv[1:]
        if argv[0] == "python":
            argv = ["python", *argv[1:]]
        _assert_nova_command_exists(argv)


def test_dockerfile_runs_as_non_root_with_gunicorn() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER nova\n" in text
    assert 'CMD ["gunicorn", "nova.wsgi"' in text
