"""Shared fixtures. Integration tests use the real local services started by
`make test` (infra/local/services.sh); a test marked requires_<service> fails at
once with a clear message when that service is down, instead of hanging."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from monitoring.health import CHECKS
from nova.clickhouse import make_client
from pipeline.clickhouse_migrations import MigrationRunner

_SERVICE_MARKERS = {f"requires_{name}": name for name in CHECKS}
_service_state: dict[str, str | None] = {}


def _service_down_reason(name: str) -> str | None:
    if name not in _service_state:
        try:
            CHECKS[name](2.0)
            _service_state[name] = None
        except Exception as exc:  # any failure means "down"; the message says which
            _service_state[name] = f"{type(exc).__name__}: {exc}"
    return _service_state[name]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers():
        service = _SERVICE_MARKERS.get(marker.name)
        if service and (reason := _service_down_reason(service)):
            pytest.fail(
                f"{service} is not reachable ({reason}); start the local services with "
                "`make services` (infra/local/services.sh up)",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def clickhouse_db() -> Iterator[str]:
    """A fresh ClickHouse database for this test session, with every migration applied."""
    config = settings.CLICKHOUSE
    admin = make_client(config, database="default")
    admin.execute(f"DROP DATABASE IF EXISTS `{config.database}`")
    MigrationRunner(make_client(config), admin, config.database, settings.CLICKHOUSE_SQL_DIR).apply()
    yield config.database


@pytest.fixture
def clickhouse(clickhouse_db: str):
    client = make_client(settings.CLICKHOUSE)
    yield client
    client.disconnect()


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def world_db() -> Iterator:
    """A private ClickHouse database per test (migrations applied), for worlds
    written with ranking.world: each test's world is alone in its tables."""
    name = f"nova_rank_{uuid.uuid4().hex[:10]}"
    admin = make_client(settings.CLICKHOUSE, database="default")
    client = make_client(settings.CLICKHOUSE, database=name)
    MigrationRunner(client, admin, name, settings.CLICKHOUSE_SQL_DIR).apply()
    yield client
    client.disconnect()
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.disconnect()
