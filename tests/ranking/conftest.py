"""A private ClickHouse database per test (migrations applied), for worlds
written with ranking.world: each test's world is alone in its tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from nova.clickhouse import make_client
from pipeline.clickhouse_migrations import MigrationRunner


@pytest.fixture
def world_db() -> Iterator:
    name = f"nova_rank_{uuid.uuid4().hex[:10]}"
    admin = make_client(settings.CLICKHOUSE, database="default")
    client = make_client(settings.CLICKHOUSE, database=name)
    MigrationRunner(client, admin, name, settings.CLICKHOUSE_SQL_DIR).apply()
    yield client
    client.disconnect()
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.disconnect()
