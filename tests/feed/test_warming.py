"""feed/warming.py against real Redis and ClickHouse: who is warmed, who is not."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from feed import cache
from feed.read import read_feed
from feed.warming import warm_feed_caches
from nova import redis as nova_redis
from nova.breaker import breaker_for
from tests.support.feed_world import Mirror, flush_feed_keys, make_post, make_reader

pytestmark = [pytest.mark.requires_clickhouse, pytest.mark.requires_redis, pytest.mark.requires_postgres]
HOUR, DAY = 3600, 86400


@pytest.fixture
def readers(world_db, settings, db):
    settings.CLICKHOUSE = replace(settings.CLICKHOUSE, database=world_db.connection.database, query_timeout=10.0)
    flush_feed_keys()
    breaker_for("clickhouse").store.set_closed()
    author = make_reader("author")
    readers = [make_reader(f"reader{i}") for i in range(4)]
    for reader in readers:
        reader.user.following.create(followee=author.user)
    for i in range(3):
        make_post(author.user, timedelta(hours=i + 1))
    Mirror(world_db).sync()
    yield readers
    flush_feed_keys()


def _warm(**overrides):
    options = dict(active_window_s=HOUR, forget_after_s=7 * DAY, refresh_below_s=90, batch_size=2, max_users=100)
    return warm_feed_caches(timezone.now(), **{**options, **overrides})


def _has_snapshot(user_id: int) -> bool:
    return cache.first_page_state(user_id).snapshot is not None


def _snapshot_id(user_id: int) -> str:
    snapshot = cache.first_page_state(user_id).snapshot
    assert snapshot is not None, user_id
    return snapshot.id


def test_warms_users_active_in_the_last_hour_only(readers):
    recent, also_recent, two_hours_ago, eight_days_ago = readers
    now = time.time()
    client = nova_redis.client()
    assert client is not None
    read_feed(recent.id, 5)
    read_feed(also_recent.id, 5)
    client.zadd(
        nova_redis.key("feed", "active"), {str(two_hours_ago.id): now - 2 * HOUR, str(eight_days_ago.id): now - 8 * DAY}
    )
    for reader in readers:
        cache.invalidate_feed(reader.id)

    result = _warm()
    assert (result.active, result.warmed, result.still_fresh, result.failed) == (2, 2, 0, 0)
    assert _has_snapshot(recent.id) and _has_snapshot(also_recent.id)
    assert not _has_snapshot(two_hours_ago.id) and not _has_snapshot(eight_days_ago.id)
    # the 8-day-old entry is forgotten for good; the 2-hour one stays for now
    assert client.zscore(nova_redis.key("feed", "active"), str(eight_days_ago.id)) is None
    assert client.zscore(nova_redis.key("feed", "active"), str(two_hours_ago.id)) is not None
    # and the next page is a hit
    assert read_feed(recent.id, 5).source == "cache"


def test_a_fresh_snapshot_is_left_alone_one_about_to_expire_is_refreshed(readers):
    reader = readers[0]
    read_feed(reader.id, 5)
    first = _snapshot_id(reader.id)
    assert _warm().still_fresh == 1
    assert _snapshot_id(reader.id) == first
    result = _warm(refresh_below_s=10_000)  # every TTL is under this: refresh
    assert result.warmed == 1
    assert _snapshot_id(reader.id) != first


def test_nothing_is_warmed_while_the_breaker_is_open(readers):
    reader = readers[0]
    read_feed(reader.id, 5)
    cache.invalidate_feed(reader.id)
    breaker_for("clickhouse").store.set_open(time.time())
    try:
        result = _warm()
    finally:
        breaker_for("clickhouse").store.set_closed()
    assert result.breaker_open and result.warmed == 0
    assert not _has_snapshot(reader.id)


def test_a_run_stops_starting_rankings_when_its_budget_is_spent(readers):
    for reader in readers[:2]:
        read_feed(reader.id, 5)
        cache.invalidate_feed(reader.id)
    result = _warm(budget_s=0.0)
    assert result.out_of_time and result.warmed == 0
