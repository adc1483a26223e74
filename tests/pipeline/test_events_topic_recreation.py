"""A topic deleted and recreated under the events consumer (offsets start again
at 0, as after a restart of the local broker) must not make the offsets-in-sink
seek skip the new log: the consumer says so (log line and
`source_topic_resets_total`) and consumes the new log from its start."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from prometheus_client import REGISTRY

from nova.kafka import admin_client
from pipeline.consumers.events import build_events_handler
from pipeline.topics import ensure_topics
from tests.pipeline.events_harness import (
    ConsumerProcess,
    EventTopics,
    check_sink,
    make_topics,
    plan_events,
    produce,
    wait_for,
    wait_until_caught_up,
)

pytestmark = [pytest.mark.requires_kafka, pytest.mark.requires_clickhouse, pytest.mark.requires_redis]


@pytest.fixture
def topics(unique_name) -> EventTopics:
    return make_topics(unique_name, partitions=1)


@pytest.fixture
def consumer(topics, tmp_path):
    process = ConsumerProcess(topics, tmp_path / "consumer.log")
    yield process
    process.stop()


def _recreate(topics: EventTopics) -> None:
    admin = admin_client(topics.kafka)
    admin.delete_topics([topics.events], operation_timeout=10)[topics.events].result(10)
    wait_for(lambda: topics.events not in admin.list_topics(timeout=5).topics, timeout=10, what="topic deletion")
    ensure_topics(admin, [topics.events], partitions=1, replication_factor=1)


def _generation_rows(clickhouse, topic: str, generation: int) -> int:
    return clickhouse.execute(
        "SELECT count() FROM events WHERE _topic = %(t)s AND _generation = %(g)s", {"t": topic, "g": generation}
    )[0][0]


@pytest.mark.parametrize("new_log_size", [20, 150], ids=["shorter-new-log", "new-log-past-the-sink-offset"])
def test_consumer_restarted_on_a_recreated_topic_reads_the_new_log_from_its_start(
    topics, consumer, clickhouse, new_log_size
) -> None:
    old = plan_events(60, retry_ratio=0.0, seed=11)
    produce(topics.kafka, topics.events, old.messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)
    consumer.stop()

    _recreate(topics)
    # a new log longer than the old one has a message at the sink's offset: only
    # its content tells the logs apart
    new = plan_events(new_log_size, retry_ratio=0.0, seed=12)
    produce(topics.kafka, topics.events, new.messages)
    consumer.start()
    wait_for(
        lambda: _generation_rows(clickhouse, topics.events, 1) >= new_log_size, timeout=60, what="the new log's events"
    )
    time.sleep(0.5)  # nothing more may arrive

    assert _generation_rows(clickhouse, topics.events, 0) == 60
    assert _generation_rows(clickhouse, topics.events, 1) == new_log_size
    assert check_sink(clickhouse, topics.events, new, generation=1).ok
    assert "was RECREATED" in consumer.log()
    assert consumer.metric("source_topic_resets_total") == 1


def test_topic_recreated_under_a_running_consumer(topics, consumer, clickhouse) -> None:
    """librdkafka 2.16 crashes (SIGSEGV) when a topic it is fetching is deleted on the
    local broker; a supervisor restarts it, as Procfile/compose do. Either way (the
    process survives and notices in `check_sources`, or it is restarted and notices
    on assignment) every event of the new log must land."""
    old = plan_events(60, retry_ratio=0.0, seed=13)
    produce(topics.kafka, topics.events, old.messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    _recreate(topics)
    new = plan_events(20, retry_ratio=0.0, seed=14)
    produce(topics.kafka, topics.events, new.messages)

    def landed() -> bool:
        if not consumer.alive:
            consumer.start()  # the supervisor's job
        return _generation_rows(clickhouse, topics.events, 1) >= 20

    wait_for(landed, timeout=60, what="the new log's events")
    time.sleep(0.5)

    assert _generation_rows(clickhouse, topics.events, 0) == 60
    assert _generation_rows(clickhouse, topics.events, 1) == 20
    assert check_sink(clickhouse, topics.events, new, generation=1).ok
    assert "was RECREATED" in consumer.log()
    assert consumer.metric("source_topic_resets_total") == 1


def test_check_sources_notices_a_recreated_topic_without_a_rebalance(topics, clickhouse) -> None:
    """The in-process check, driven directly (no group consumer fetching the topic,
    which the local broker's deletion would crash): a new log shorter or longer than
    our position is told apart from the old one by the message at our last offset."""
    handler = build_events_handler()
    key = (topics.events, 0)

    def read_into_handler(count: int, start: int = 0) -> None:
        reader = Consumer(
            {**topics.kafka.client_config(), "group.id": f"{topics.group}-reader", "enable.auto.commit": False}
        )
        reader.assign([TopicPartition(topics.events, 0, start)])
        messages: list[Message] = []

        def read_more() -> bool:
            messages.extend(m for m in reader.consume(100, 0.5) if not m.error())
            return len(messages) >= count

        wait_for(
            read_more,
            timeout=20,
            what=f"{count} messages",
        )
        reader.close()
        for message in messages:
            handler.decode(message)

    resets = REGISTRY.get_sample_value("source_topic_resets_total", {"consumer": "events", "topic": topics.events})
    produce(topics.kafka, topics.events, plan_events(60, 0.0, seed=17).messages)
    read_into_handler(60)
    assert handler.check_sources({key}) == {}

    _recreate(topics)
    produce(topics.kafka, topics.events, plan_events(100, 0.0, seed=18).messages)
    # issue 12: librdkafka goes on at its position (60) in the new, longer log; a
    # check against the last message decoded then compared the new log with itself
    read_into_handler(40, start=60)
    assert handler.check_sources({key}) == {key: 0}
    assert handler._generation[key] == 1
    after = REGISTRY.get_sample_value("source_topic_resets_total", {"consumer": "events", "topic": topics.events})
    assert (after or 0) - (resets or 0) == 1
    # reading the new log from its start: the new generation, and quiet checks again
    read_into_handler(100)
    assert handler.check_sources({key}) == {}
    assert handler._generation[key] == 1


def test_a_healthy_partition_is_not_taken_for_a_recreated_one(topics, consumer, clickhouse) -> None:
    """The broker's batches make its reported high watermark fall short of the log's end
    (tansu); restarts must still resume past the sink, in the same generation."""
    first = plan_events(80, retry_ratio=0.0, seed=15)
    produce(topics.kafka, topics.events, first.messages)  # one batch: the watermark says 1
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)
    consumer.stop()
    consumer.start()
    second = plan_events(10, retry_ratio=0.0, seed=16)
    produce(topics.kafka, topics.events, second.messages)
    wait_for(lambda: _generation_rows(clickhouse, topics.events, 0) >= 90, timeout=60, what="the second batch")
    time.sleep(0.5)

    assert _generation_rows(clickhouse, topics.events, 0) == 90
    assert _generation_rows(clickhouse, topics.events, 1) == 0
    assert "RECREATED" not in consumer.log()
