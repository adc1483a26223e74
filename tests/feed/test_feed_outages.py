"""The feed with ClickHouse or Redis really stopped, frozen and started again.

Each test runs its own ClickHouse or Redis server (infra/local/services.sh with
a private var/ directory and free ports), so stopping it disturbs nobody else."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from django.conf import settings as django_settings

from feed import cache
from monitoring import metrics
from nova.breaker import CLOSED, OPEN, breaker_for
from nova.clickhouse import make_client
from pipeline.clickhouse_migrations import MigrationRunner
from tests.support.feed_world import Mirror, flush_feed_keys, make_post, make_reader
from tests.support.private_services import PrivateServer

pytestmark = [pytest.mark.requires_redis, pytest.mark.requires_postgres]


def _get(reader, **params):
    response = reader.api.get("/api/v1/feed/", params)
    assert response.status_code == 200, response.content
    return response.json()


def _world(mirror: Mirror):
    alice = make_reader("alice")
    bob = make_reader("bob")
    alice.user.following.create(followee=bob.user)
    for i in range(6):
        make_post(bob.user, timedelta(hours=i + 1))
    mirror.sync()
    return alice


@pytest.fixture
def private_clickhouse(tmp_path, settings) -> Iterator[PrivateServer]:
    server = PrivateServer("clickhouse", tmp_path / "var")
    server.up()
    try:
        settings.CLICKHOUSE = replace(
            settings.CLICKHOUSE, host="127.0.0.1", port=server.port, database="nova_outage", query_timeout=0.5
        )
        settings.CIRCUIT_BREAKER = replace(settings.CIRCUIT_BREAKER, failure_threshold=2, cool_down_seconds=1.0)
        flush_feed_keys()
        yield server
    finally:
        server.signal(signal.SIGCONT) if server.pid_file.exists() else None
        server.down()
        flush_feed_keys()


@pytest.mark.requires_clickhouse
def test_clickhouse_stopped_then_started_fallback_throughout_then_ranked(private_clickhouse, transactional_db):
    config = django_settings.CLICKHOUSE
    admin = make_client(config, database="default")
    MigrationRunner(make_client(config), admin, config.database, django_settings.CLICKHOUSE_SQL_DIR).apply()
    alice = _world(Mirror(make_client(config)))
    breaker = breaker_for("clickhouse")
    breaker.store.set_closed()

    assert _get(alice)["source"] == "ranked"

    private_clickhouse.down()
    sources = []
    for _ in range(4):
        cache.invalidate_feed(alice.id)
        page = _get(alice)
        sources.append(page["source"])
        assert [item["score"] for item in page["items"]] == [None] * 6
    assert sources == ["fallback"] * 4
    assert breaker.state() == OPEN
    assert metrics.CIRCUIT_BREAKER_STATE.labels(datasource="clickhouse")._value.get() == 2

    private_clickhouse.up()
    deadline = time.monotonic() + 30
    while True:
        cache.invalidate_feed(alice.id)
        page = _get(alice)
        if page["source"] == "ranked":
            break
        assert page["source"] == "fallback"
        assert time.monotonic() < deadline, "the breaker never closed after ClickHouse came back"
        time.sleep(0.2)
    assert breaker.state() == CLOSED


@pytest.mark.requires_clickhouse
def test_a_frozen_clickhouse_costs_one_query_timeout_then_nothing(private_clickhouse, transactional_db):
    config = django_settings.CLICKHOUSE
    admin = make_client(config, database="default")
    MigrationRunner(make_client(config), admin, config.database, django_settings.CLICKHOUSE_SQL_DIR).apply()
    alice = _world(Mirror(make_client(config)))
    breaker_for("clickhouse").store.set_closed()
    assert _get(alice)["source"] == "ranked"

    timeouts = metrics.CLICKHOUSE_QUERY_TIMEOUTS.labels(datasource="clickhouse")
    timeouts_before = timeouts._value.get()
    private_clickhouse.signal(signal.SIGSTOP)
    try:
        timings = []
        for _ in range(4):
            cache.invalidate_feed(alice.id)
            started = time.monotonic()
            assert _get(alice)["source"] == "fallback"
            timings.append(time.monotonic() - started)
        # two timeouts open the breaker (threshold 2); then no ClickHouse call at all
        assert all(t < config.query_timeout + 1.0 for t in timings[:2]), timings
        assert all(t < 0.25 for t in timings[2:]), timings
        # what the ClickHouseQueryTimeout alert reads
        assert timeouts._value.get() - timeouts_before == 2
    finally:
        private_clickhouse.signal(signal.SIGCONT)


@pytest.mark.requires_clickhouse
def test_redis_stopped_the_feed_still_answers_uncached(private_redis, world_db, settings, transactional_db):
    settings.CLICKHOUSE = replace(settings.CLICKHOUSE, database=world_db.connection.database, query_timeout=10.0)
    alice = _world(Mirror(world_db))
    assert _get(alice, limit=3)["source"] == "ranked"
    assert _get(alice, limit=3)["source"] == "cache"

    private_redis.down()
    first = _get(alice, limit=3)
    assert first["source"] == "ranked"  # ranked every time, nothing to cache it in
    again = _get(alice, limit=3)
    assert again["source"] == "ranked"
    assert [i["id"] for i in again["items"]] == [i["id"] for i in first["items"]]
    # without a stored snapshot the next pages are the backfill, none twice
    rest = _get(alice, limit=50, cursor=first["next_cursor"])
    served = [i["id"] for i in first["items"] + rest["items"]]
    assert len(served) == len(set(served)) == 6

    private_redis.up()
    deadline = time.monotonic() + 10
    while _get(alice, limit=3)["source"] != "cache":
        assert time.monotonic() < deadline, "the cache never came back with Redis"
        time.sleep(0.3)
