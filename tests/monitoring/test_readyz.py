"""/readyz against the real services: reused clients, a short cache, details only for
staff or DEBUG; /metrics restricted by METRICS_ALLOWED_NETWORKS."""

from __future__ import annotations

import time

import pytest

from feed.models import User
from monitoring import health

pytestmark = [
    pytest.mark.requires_postgres,
    pytest.mark.requires_redis,
    pytest.mark.requires_clickhouse,
    pytest.mark.requires_kafka,
]


@pytest.fixture
def counted_runs(monkeypatch) -> list[float]:
    """Records when the real Postgres check runs (it still runs)."""
    runs: list[float] = []
    real = health.CHECKS["postgres"]

    def counting(timeout: float) -> str:
        runs.append(time.monotonic())
        return real(timeout)

    monkeypatch.setitem(health.CHECKS, "postgres", counting)
    monkeypatch.setattr(health, "_last", None)
    return runs


def test_anonymous_readyz_shows_no_versions(client, counted_runs, settings):
    settings.DEBUG = False
    body = client.get("/readyz").json()
    assert body["status"] == "ready", body
    assert body["checks"]["postgres"] == {"ok": True}


def test_staff_and_debug_see_details(client, db, counted_runs, settings):
    settings.DEBUG = False
    client.force_login(User.objects.create_user("ops", password="x", is_staff=True))
    assert client.get("/readyz").json()["checks"]["postgres"]["detail"].startswith("PostgreSQL")
    client.logout()
    settings.DEBUG = True
    assert "detail" in client.get("/readyz").json()["checks"]["redis"]


def test_answers_are_cached_for_at_most_a_second(client, counted_runs):
    for _ in range(5):
        assert client.get("/readyz").status_code == 200
    assert len(counted_runs) == 1
    time.sleep(1.05)
    client.get("/readyz")
    assert len(counted_runs) == 2


def test_clients_are_reused(counted_runs):
    health.run_checks(2.0)
    first = {name: client for name, (_, client) in health._clients.items()}
    health.run_checks(2.0)
    assert set(first) == {"postgres", "redis", "clickhouse", "kafka"}
    assert all(health._clients[name][1] is client for name, client in first.items())


def test_metrics_can_be_restricted_to_networks(client, settings):
    assert client.get("/metrics").status_code == 200
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8", "fd00::/8"]
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200 and b"feed_api_requests_total" in response.content
