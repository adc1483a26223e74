"""Dedup marks (pipeline/dedup.py): they outlive every retry the API accepts,
are keyed by (user_id, event_id), and no eviction reaches them: not a cache
that fills its server to maxmemory, not a server whose policy evicts (refused).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django_redis.cache import RedisCache

from pipeline.dedup import DedupStoreEvicts, EventDedup, Seen, dedup_key, mark_ttl_seconds, message_mark
from tests.pipeline.events_harness import (
    ConsumerProcess,
    Event,
    EventPlan,
    check_sink,
    make_topics,
    message_of,
    produce,
    wait_until_caught_up,
)
from tests.support.private_services import PrivateServer

HOUR = 3600


def test_mark_ttl_covers_the_oldest_accepted_retry_plus_the_margin() -> None:
    assert mark_ttl_seconds(7 * 24 * HOUR, 300, 24 * HOUR) == 8 * 24 * HOUR + 300
    # the settings derive it: a retry up to max age after ts, ts up to the skew ahead of the first copy
    accepted = settings.EVENTS_MAX_AGE_SECONDS + settings.EVENTS_MAX_FUTURE_SKEW_SECONDS
    assert settings.EVENTS_DEDUP_TTL_SECONDS >= accepted
    assert settings.EVENTS_DEDUP_REDIS_URL != settings.REDIS_URL


def _marks(url: str) -> EventDedup:
    return EventDedup(url, f"{settings.REDIS_KEY_PREFIX}:{uuid.uuid4().hex[:8]}", settings.EVENTS_DEDUP_TTL_SECONDS)


@pytest.mark.requires_redis
def test_marks_are_per_user_and_live_as_long_as_an_accepted_retry() -> None:
    dedup = _marks(settings.EVENTS_DEDUP_REDIS_URL)
    event_id = uuid.uuid4().hex
    # the same event_id from another user is another event
    assert dedup.classify([(1, event_id), (2, event_id)], [message_mark(0, 0, 1), message_mark(0, 0, 2)]) == [
        Seen.NEW,
        Seen.NEW,
    ]
    assert dedup.classify([(2, event_id)], [message_mark(0, 0, 3)]) == [Seen.RETRY]
    ttl = dedup.client.ttl(dedup_key(dedup.key_prefix, 1, event_id))
    assert settings.EVENTS_DEDUP_TTL_SECONDS - 5 <= ttl <= settings.EVENTS_DEDUP_TTL_SECONDS


@pytest.fixture
def lru_cache_server(tmp_path):
    """A private Redis shaped like a production cache: small maxmemory, allkeys-lru."""
    server = PrivateServer("redis", tmp_path / "cache-var")
    server.up()
    client = redis.Redis(port=server.port)
    client.config_set("maxmemory", 4 * 1024 * 1024)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        yield server
    finally:
        client.close()
        server.down()


@pytest.fixture
def marks_server(tmp_path):
    """A private Redis as the marks need it: noeviction (the default)."""
    server = PrivateServer("redis", tmp_path / "marks-var")
    server.up()
    try:
        yield server
    finally:
        server.down()


def _fill_to_maxmemory(server: PrivateServer) -> int:
    """Write through Django's cache backend until the server evicts; the keys it evicted."""
    cache = RedisCache(f"redis://127.0.0.1:{server.port}/0", {"KEY_PREFIX": "cache"})
    info = redis.Redis(port=server.port)
    value = "x" * 4096
    for i in range(20_000):  # ~80 MB offered to a 4 MB server
        cache.set(f"page:{i}", value, timeout=3600)
        if i % 500 == 0 and info.info("stats")["evicted_keys"] > 0:
            break
    evicted = info.info("stats")["evicted_keys"]
    assert evicted > 0, "the cache never reached maxmemory"
    return evicted


MARKS = 10_000


def _write_marks(dedup: EventDedup) -> list[tuple[int, str]]:
    events = [(i % 97, uuid.uuid4().hex) for i in range(MARKS)]
    assert set(dedup.classify(events, [message_mark(0, 0, i) for i in range(MARKS)])) == {Seen.NEW}
    return events


@pytest.mark.requires_redis
@pytest.mark.timeout(180)
def test_a_cache_filled_to_maxmemory_evicts_no_mark(lru_cache_server, marks_server) -> None:
    dedup = _marks(f"redis://127.0.0.1:{marks_server.port}/1")
    events = _write_marks(dedup)
    _fill_to_maxmemory(lru_cache_server)
    # every message is still known: a replay of the same offset, never NEW
    assert set(dedup.classify(events, [message_mark(0, 0, i) for i in range(MARKS)])) == {Seen.REPLAY}
    assert redis.Redis(port=marks_server.port).info("stats")["evicted_keys"] == 0


@pytest.mark.requires_redis
@pytest.mark.timeout(180)
def test_negative_control_marks_on_the_caches_server_are_evicted_and_refused(lru_cache_server) -> None:
    url = f"redis://127.0.0.1:{lru_cache_server.port}/1"
    with pytest.raises(DedupStoreEvicts, match="allkeys-lru"):
        _marks(url).classify([(1, uuid.uuid4().hex)], [message_mark(0, 0, 0)])
    # what the check prevents: marks in another database of the cache's server
    # (the layout before this change) are evicted when the cache fills up
    client = redis.Redis.from_url(url)
    pipe = client.pipeline(transaction=False)
    for i in range(MARKS):
        pipe.set(f"mark:{i}", "0:0:0", ex=settings.EVENTS_DEDUP_TTL_SECONDS)
    pipe.execute()
    _fill_to_maxmemory(lru_cache_server)
    assert client.dbsize() < MARKS
    client.close()


@pytest.mark.requires_kafka
@pytest.mark.requires_clickhouse
@pytest.mark.requires_redis
def test_a_retry_49_hours_after_the_first_copy_is_not_counted_twice(unique_name, tmp_path, clickhouse) -> None:
    topics = make_topics(unique_name, partitions=1)
    now = datetime.now(UTC).replace(microsecond=0)
    id_base = uuid.uuid4().int % 10**11 + 10**9
    event = Event(
        str(uuid.uuid4()), id_base + 1, id_base + 2, id_base + 10_002, "like", now - timedelta(days=5), None, None
    )
    plan = EventPlan([(b"k", message_of(event, now))], {event.event_id: event}, 1, id_base)
    consumer = ConsumerProcess(topics, tmp_path / "consumer.log")
    try:
        produce(topics.kafka, topics.events, plan.messages)
        consumer.start()
        wait_until_caught_up(topics, clickhouse, timeout=60)
        # 49 hours pass: the mark's remaining life shrinks by as much
        client = redis.Redis.from_url(settings.EVENTS_DEDUP_REDIS_URL)
        key = dedup_key(settings.REDIS_KEY_PREFIX, event.user_id, uuid.UUID(event.event_id).hex)
        remaining = client.pttl(key)
        assert remaining > 49 * HOUR * 1000, f"the mark would be gone before a 49 h retry ({remaining} ms left)"
        client.pexpire(key, remaining - 49 * HOUR * 1000)
        # the client retries the 5-day-old event, 49 hours later (the API still accepts it: < 7 days)
        produce(topics.kafka, topics.events, [(b"k", message_of(event, now + timedelta(hours=49)))])
        wait_until_caught_up(topics, clickhouse, timeout=60)
        report = check_sink(clickhouse, topics.events, plan)
        assert report.ok and report.rows == 1, report
        assert consumer.metric_when("dedup_detected_duplicates_total", 1) == 1
    finally:
        consumer.stop()
