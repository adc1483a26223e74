"""`manage.py run_events_consumer` as a real process against the real broker,
Redis and ClickHouse: rows with their source offsets, client retries dropped
and counted, poison messages dead-lettered while the partition keeps flowing."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.pipeline.events_harness import (
    ConsumerProcess,
    check_sink,
    make_topics,
    plan_events,
    produce,
    wait_for,
    wait_until_caught_up,
)

pytestmark = [pytest.mark.requires_kafka, pytest.mark.requires_clickhouse, pytest.mark.requires_redis]


@pytest.fixture
def topics(unique_name):
    return make_topics(unique_name, partitions=2)


@pytest.fixture
def consumer(topics, tmp_path):
    process = ConsumerProcess(topics, tmp_path / "consumer.log")
    yield process
    process.stop()


def _rows(clickhouse, topic: str) -> list[tuple]:
    return clickhouse.execute(
        "SELECT toString(event_id), user_id, post_id, author_id, toString(event_type), toUInt32(ts), received_at_ms, "
        "dwell_ms, position, surface, _topic, _partition, _offset, _generation FROM events WHERE _topic = %(t)s",
        {"t": topic})


def test_events_land_with_their_source_offsets(topics, consumer, clickhouse) -> None:
    plan = plan_events(300, retry_ratio=0.0, seed=1)
    produce(topics.kafka, topics.events, plan.messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    rows = _rows(clickhouse, topics.events)
    assert len(rows) == 300
    by_id = {row[0]: row for row in rows}
    event = next(iter(plan.unique.values()))
    got = by_id[event.event_id]
    assert got[1:5] == (event.user_id, event.post_id, event.author_id, event.event_type)
    assert got[5] == int(event.ts.timestamp())
    assert got[9] == "home" and got[10] == topics.events
    # (partition, offset) pairs are exactly the topic's: each message once, none invented
    offsets = sorted((row[11], row[12]) for row in rows)
    assert len(set(offsets)) == 300
    for partition in (0, 1):
        mine = [offset for p, offset in offsets if p == partition]
        assert mine == list(range(len(mine)))
    assert {row[13] for row in rows} == {0}
    report = check_sink(clickhouse, topics.events, plan)
    assert report.ok, report
    assert consumer.metric_when("consumer_messages_total", 300) == 300
    assert consumer.metric_when("event_to_visible_seconds_count", 300) == 300


def test_client_retries_are_dropped_and_counted(topics, consumer, clickhouse) -> None:
    plan = plan_events(400, retry_ratio=0.25, seed=2)
    produce(topics.kafka, topics.events, plan.messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    report = check_sink(clickhouse, topics.events, plan)
    assert report.ok, report
    assert report.rows == 400 - plan.retries
    assert consumer.metric("dedup_detected_duplicates_total") == plan.retries
    assert consumer.metric("dedup_replays_total") == 0


def test_poison_message_goes_to_the_dlq_with_its_reason_and_the_partition_flows(topics, consumer, clickhouse):
    good = plan_events(60, retry_ratio=0.0, seed=3)
    poison = [(b"1", b"{not json"), (b"1", b'{"event_id": "nope"}')]
    # same key as the good events around them: the same partition must keep flowing
    key = good.messages[0][0]
    messages = [*good.messages[:30], *((key, value) for _k, value in poison), *good.messages[30:]]
    produce(topics.kafka, topics.events, messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    report = check_sink(clickhouse, topics.events, good)
    assert report.ok, report
    dlq = Consumer({**topics.kafka.client_config(), "group.id": f"{topics.group}-dlq-reader",
                    "auto.offset.reset": "earliest"})
    dlq.assign([TopicPartition(topics.dlq, p, 0) for p in range(2)])
    dead: list = []
    wait_for(lambda: dead.extend(m for m in dlq.consume(100, 0.5) if not m.error()) or len(dead) >= 2,
             timeout=20, what="two dead letters")
    dlq.close()
    assert sorted(m.value() for m in dead) == sorted(value for _k, value in poison)
    for message in dead:
        headers = dict(message.headers())
        assert headers["source_topic"] == topics.events.encode()
        assert headers["error"].decode().startswith(("not JSON", "event_id:"))
        assert int(headers["source_offset"]) >= 0
    assert consumer.metric_when("dlq_messages_total", 2) == 2
