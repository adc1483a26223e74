"""The local services script and /readyz, against the real services."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.private_services import PrivateServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "local" / "services.sh"


def services(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=180)


def test_up_twice_in_a_row_succeeds_and_status_reports_each_service() -> None:
    for _ in range(2):
        result = services("up")
        assert result.returncode == 0, result.stderr
    assert "already up" in result.stderr
    status = services("status")
    assert status.returncode == 0, status.stdout
    lines = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()}
    assert lines == {"postgres": "up", "redis": "up", "clickhouse": "up", "kafka": "up"}


def test_unknown_service_is_a_usage_error() -> None:
    result = services("up", "mysql")
    assert result.returncode == 2
    assert "unknown service 'mysql'" in result.stderr


def test_healthz_is_alive(client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.requires_postgres
@pytest.mark.requires_redis
@pytest.mark.requires_clickhouse
@pytest.mark.requires_kafka
def test_readyz_is_200_with_everything_up(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"postgres", "redis", "clickhouse", "kafka"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.parametrize("service", ["redis", "clickhouse"])
def test_readyz_is_503_naming_a_stopped_dependency(admin_client, settings, tmp_path, service: str) -> None:
    # a private server, stopped for real: the shared one serves other test sessions
    server = PrivateServer(service, tmp_path / "var")
    server.up()
    client = admin_client  # staff see each check's detail
    settings.READINESS_CACHE_SECONDS = 0  # every call checks again, not the last second's answer
    try:
        if service == "redis":
            settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
        else:
            settings.CLICKHOUSE = replace(settings.CLICKHOUSE, port=server.port)
        assert client.get("/readyz").status_code == 200
        server.down()
        status = server.run("status")
        assert status.returncode == 1 and " down " in status.stdout
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["failing"] == [service]
        assert body["checks"][service]["ok"] is False
        assert body["checks"][service]["detail"]
        server.up()
        assert client.get("/readyz").status_code == 200
    finally:
        server.down()
