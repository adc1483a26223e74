"""pipeline/producer.py against real sockets: the broker's acknowledgement is
what makes a batch "taken"; an unreachable broker or a full local queue is a
PublishFailed (the API's 503), never a silent success."""

from __future__ import annotations

import dataclasses
import socket
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from django.conf import settings

from monitoring import metrics
from nova.kafka import admin_client
from pipeline.producer import EventPublisher, PublishFailed, producer_config
from pipeline.topics import ensure_topics


def test_producer_config_is_idempotent_acks_all_and_compressed() -> None:
    config = producer_config(settings.KAFKA, queue_max_messages=7)
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["compression.type"] == "lz4"
    assert config["queue.buffering.max.messages"] == 7
    assert config["bootstrap.servers"] == settings.KAFKA.bootstrap_servers


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends: nothing listens


def _failures(reason: str) -> float:
    return metrics.EVENTS_PRODUCE_FAILURES.labels(reason)._value.get()


@pytest.fixture
def dead_broker_publisher():
    kafka = dataclasses.replace(settings.KAFKA, bootstrap_servers=f"127.0.0.1:{_closed_port()}")
    publishers = []

    def make(queue_max_messages: int = 1000) -> EventPublisher:
        publishers.append(EventPublisher(kafka, "nowhere", queue_max_messages))
        return publishers[-1]

    yield make
    for publisher in publishers:
        publisher.producer.purge()
        publisher.producer.flush(0)


def test_unreachable_broker_fails_within_the_timeout(dead_broker_publisher) -> None:
    publisher = dead_broker_publisher()
    before = _failures("timeout")
    started = time.monotonic()
    with pytest.raises(PublishFailed, match=r"3 of 3 events unacknowledged after 0.5s"):
        publisher.publish([(b"1", b"a"), (b"1", b"b"), (b"2", b"c")], timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2.0
    assert _failures("timeout") - before == 3


def test_full_local_queue_fails_at_once(dead_broker_publisher) -> None:
    publisher = dead_broker_publisher(queue_max_messages=2)
    before = _failures("queue_full")
    started = time.monotonic()
    with pytest.raises(PublishFailed, match="local queue is full"):
        publisher.publish([(b"1", b"x")] * 5, timeout=5)
    assert time.monotonic() - started < 1.0  # no waiting for a broker that cannot help
    assert _failures("queue_full") - before == 3


@pytest.mark.requires_kafka
def test_acknowledged_batch_is_on_the_topic_in_order(unique_name) -> None:
    kafka = dataclasses.replace(settings.KAFKA, topic_prefix=unique_name)
    topic = kafka.topic("events")
    ensure_topics(admin_client(kafka), [topic], partitions=3, replication_factor=1)
    publisher = EventPublisher(kafka, topic, 1000)
    values = [uuid.uuid4().hex.encode() for _ in range(50)]
    publisher.publish([(b"42", value) for value in values], timeout=10)

    consumer = Consumer({**kafka.client_config(), "group.id": f"{unique_name}-probe", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    got: list[Message] = []
    deadline = time.monotonic() + 10
    try:
        while len(got) < len(values) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                got.append(message)
    finally:
        consumer.close()
    assert [m.value() for m in got] == values  # one key: one partition, in order
    assert {m.key() for m in got} == {b"42"}
