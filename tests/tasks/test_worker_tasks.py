"""Each periodic task run by a real Celery worker (tests/tasks/conftest.py): sent
with `.delay()`, its effect awaited (bounded) in Redis, ClickHouse or /metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings
from django.test import Client
from django.utils import timezone as dj_timezone
from prometheus_client.parser import text_string_to_metric_families

from feed import cache as feed_cache
from feed.models import Follow, Post, User
from nova.kafka import admin_client
from nova.locks import RedisLock
from nova.periodic import SKIPPED, lock_for, task_redis
from pipeline.cdc.process import postgres_connector
from pipeline.lag import SLOT_LAG_SQL
from pipeline.retention import active_partition_ids
from pipeline.tasks import enforce_events_retention, report_pipeline_lag
from pipeline.topics import all_topics, ensure_topics, events_topic
from ranking.suggestions import cached_suggestions, suggested_authors, suggestions_key
from ranking.tasks import refresh_suggested_users, refresh_trending
from ranking.trending import trending_key, trending_post_ids
from ranking.world import WEvent, World, WPost, WRelation, WUser, write_world
from tests.tasks.conftest import lag_slot, wait_until

pytestmark = [
    pytest.mark.requires_postgres,
    pytest.mark.requires_redis,
    pytest.mark.requires_clickhouse,
    pytest.mark.django_db(transaction=True),
]
TASK_TIMEOUT = 60.0


def test_refresh_trending_stores_the_most_engaged_posts(celery_worker, clickhouse) -> None:
    now = dj_timezone.now()

    def ago(**delta: float) -> datetime:
        return now - timedelta(**delta)

    posts = [
        WPost(9001, 901, ago(hours=2)),
        WPost(9002, 902, ago(hours=3)),
        WPost(9003, 901, ago(hours=5)),
        WPost(9004, 903, ago(hours=1)),  # by an inactive author
        WPost(9005, 902, ago(hours=30)),
    ]  # older than the window
    author = {p.id: p.author_id for p in posts}
    events = [
        WEvent(950, post, author[post], kind, ago(minutes=30))
        for post, kind in ((9001, "click"), (9002, "share"), (9003, "click"), (9004, "share"), (9005, "share"))
    ]
    write_world(
        clickhouse,
        World(
            users=[WUser(901), WUser(902), WUser(903, active=False), WUser(950)],
            posts=posts,
            comments=[WRelation(1, 950, 9003, ago(minutes=20))],
            events=events,
        ),
    )
    store = task_redis()
    store.delete(trending_key())

    refresh_trending.delay()

    wait_until(lambda: store.exists(trending_key()), TASK_TIMEOUT, message="trending list in Redis")
    # weighted actions: 9002 share 4, 9003 click + comment 4 (tie: newer id first), 9001 click 1
    assert trending_post_ids() == [9003, 9002, 9001]
    assert 0 < store.ttl(trending_key()) <= settings.TRENDING_TTL_SECONDS


def test_a_run_is_skipped_while_another_holds_the_lock(celery_worker) -> None:
    store = task_redis()
    key, ttl = lock_for(refresh_trending)
    other_run = RedisLock(store, key, ttl)
    assert other_run.acquire()
    try:
        assert refresh_trending.delay().get(timeout=TASK_TIMEOUT) == SKIPPED
        assert store.get(key) == other_run.token.encode(), "the skipped run left the holder's lock alone"
    finally:
        assert other_run.release()
    assert "posts" in refresh_trending.delay().get(timeout=TASK_TIMEOUT)
    assert not store.exists(key), "a run releases its lock"


def test_refresh_suggested_users_caches_the_active_users(celery_worker) -> None:
    me, friend, fof, star, idle, reader = (
        User.objects.create_user(name) for name in ("me", "friend", "fof", "star", "idle", "reader")
    )
    Follow.objects.create(follower=me, followee=friend)
    Follow.objects.create(follower=friend, followee=fof)
    Follow.objects.create(follower=fof, followee=star)
    Post.objects.create(author=me, body="active now")
    User.objects.filter(pk=idle.pk).update(last_login=dj_timezone.now() - timedelta(hours=3))
    feed_cache.first_page_state(reader.pk, now_s=time.time())  # read a first page: the feed records the reader
    store = task_redis()
    store.delete(*(suggestions_key(u.pk) for u in (me, friend, fof, star, idle, reader)))

    refresh_suggested_users.delay()

    wait_until(lambda: store.exists(suggestions_key(me.pk)), TASK_TIMEOUT, message="suggestions in Redis")
    assert cached_suggestions(me.pk) == suggested_authors(me.pk, settings.SUGGESTIONS_MAX_LIMIT) == [fof.pk, star.pk]
    assert cached_suggestions(fof.pk) is not None, "following someone is activity"
    assert cached_suggestions(reader.pk) == [friend.pk, fof.pk, star.pk], "reading the feed is activity"
    assert cached_suggestions(idle.pk) is None and cached_suggestions(star.pk) is None
    assert 0 < store.ttl(suggestions_key(me.pk)) <= settings.SUGGESTIONS_TTL_SECONDS


def test_warm_feed_caches_ranks_the_active_users_feeds(celery_worker) -> None:
    from feed.tasks import warm_feed_caches
    from nova.breaker import breaker_for

    reader, author, gone = (User.objects.create_user(name) for name in ("warm_reader", "warm_author", "warm_gone"))
    Follow.objects.create(follower=reader, followee=author)
    feed_cache.first_page_state(reader.pk, now_s=time.time())  # read a first page a moment ago
    feed_cache.first_page_state(gone.pk, now_s=time.time() - 8 * 86400)  # inactive for 8 days
    for user in (reader, gone):
        feed_cache.invalidate_feed(user.pk)
    breaker_for("clickhouse").store.set_closed()

    warm_feed_caches.delay()

    wait_until(
        lambda: feed_cache.first_page_state(reader.pk).snapshot is not None,
        TASK_TIMEOUT,
        message="the active reader's snapshot in Redis",
    )
    assert feed_cache.first_page_state(gone.pk).snapshot is None


def _month_id(moment: datetime) -> str:
    return f"{moment.year:04d}{moment.month:02d}"


def test_enforce_events_retention_drops_the_old_months(celery_worker, clickhouse) -> None:
    now = datetime.now(UTC)
    old = [datetime(2020, 1, 31, 23, 59, 59, tzinfo=UTC), datetime(2020, 2, 1, tzinfo=UTC)]
    write_world(clickhouse, World(events=[WEvent(970, 999_999, 971, "impression", ts) for ts in (*old, now)]))
    assert {"202001", "202002", _month_id(now)} <= set(active_partition_ids(clickhouse))

    enforce_events_retention.delay()

    wait_until(
        lambda: not {"202001", "202002"} & set(active_partition_ids(clickhouse)),
        TASK_TIMEOUT,
        message="old partitions dropped",
    )
    assert _month_id(now) in active_partition_ids(clickhouse)
    old_rows = "SELECT count() FROM events WHERE ts < toDateTime('2020-03-01 00:00:00', 'UTC')"
    assert clickhouse.execute(old_rows) == [(0,)]
    # idempotent: the next run finds nothing to drop
    assert enforce_events_retention.delay().get(timeout=TASK_TIMEOUT) == {"dropped": []}


def _samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    body = Client().get("/metrics").content.decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name
    }


@pytest.fixture
def lag_slot_behind() -> Iterator[Callable[[], int]]:
    """The worker's replication slot on the test database, with WAL written after it;
    returns a function that measures the slot's lag now (it only grows: nothing consumes the slot)."""
    db = settings.DATABASES["default"]
    pg: psycopg.Connection = postgres_connector(db)()
    pg.autocommit = True
    slot = lag_slot()
    pg.execute("SET statement_timeout = '30s'")  # creating a slot waits for running transactions
    pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    pg.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    pg.execute("SELECT pg_logical_emit_message(false, 'nova-test', repeat('x', 100000))")

    def lag_now() -> int:
        row = pg.execute(SLOT_LAG_SQL, (slot,)).fetchone()
        assert row is not None, "the slot went away"
        return int(row[0])

    try:
        yield lag_now
    finally:
        pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        pg.close()


@pytest.mark.requires_kafka
def test_report_pipeline_lag_reaches_the_web_metrics(celery_worker, lag_slot_behind) -> None:
    kafka = settings.KAFKA
    ensure_topics(admin_client(kafka), all_topics(kafka), partitions=2, replication_factor=1)
    topic = events_topic(kafka)
    producer = Producer(kafka.client_config())
    for i in range(5):  # one batch each: the local broker's high watermark is exact per batch
        producer.produce(topic, value=b"lag-%d" % i, partition=0)
        producer.flush(10)
    group = settings.EVENTS_CONSUMER_GROUP
    consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)[1]
        consumer.commit(offsets=[TopicPartition(topic, 0, high - 3)], asynchronous=False)
    finally:
        consumer.close()
    slot_lag_before = lag_slot_behind()
    assert slot_lag_before > 0

    report_pipeline_lag.delay()

    labels = (("group", group), ("partition", "0"), ("topic", topic))
    lag = wait_until(
        lambda: _samples("consumer_group_lag").get(labels) == 3, TASK_TIMEOUT, message="consumer_group_lag on /metrics"
    )
    assert lag
    slot_lag = _samples("cdc_replication_slot_lag_bytes")
    assert slot_lag_before <= slot_lag[(("slot", lag_slot()),)] <= lag_slot_behind()
    assert _samples("pipeline_lag_report_age_seconds")[()] < settings.PIPELINE_LAG_MAX_AGE_SECONDS
    cdc_topics = {
        dict(key)["topic"]
        for key in _samples("consumer_group_lag")
        if dict(key)["group"] == settings.CDC_CONSUMER_GROUP
    }
    assert cdc_topics == {t for t in all_topics(kafka) if ".public." in t}, "every group of the consumer registry"
