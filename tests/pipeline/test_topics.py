from __future__ import annotations

import dataclasses
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from django.conf import settings
from django.core.management import call_command

from nova.kafka import admin_client
from pipeline.topics import all_topics

pytestmark = pytest.mark.requires_kafka


def test_topic_names_follow_debezium_and_design() -> None:
    kafka = dataclasses.replace(settings.KAFKA, topic_prefix="nova")
    assert all_topics(kafka) == [
        "nova.public.users",
        "nova.public.posts",
        "nova.public.follows",
        "nova.public.likes",
        "nova.public.comments",
        "nova.public.mutes",
        "nova.events",
        "nova.dlq.cdc",
        "nova.dlq.events",
    ]


def test_ensure_topics_creates_then_is_idempotent_and_topics_work(settings, unique_name, capsys) -> None:
    settings.KAFKA = dataclasses.replace(settings.KAFKA, topic_prefix=unique_name, partitions=3)
    call_command("ensure_topics")
    first = capsys.readouterr().out
    assert first.count("created ") == len(all_topics(settings.KAFKA))
    call_command("ensure_topics")
    second = capsys.readouterr().out
    assert "created" not in second and second.count("exists ") == len(all_topics(settings.KAFKA))

    metadata = admin_client(settings.KAFKA).list_topics(timeout=10)
    topic = settings.KAFKA.topic("events")
    assert len(metadata.topics[topic].partitions) == 3

    producer = Producer({**settings.KAFKA.client_config(), "acks": "all"})
    payloads = {f"m{i}-{uuid.uuid4().hex}".encode() for i in range(30)}
    for i, payload in enumerate(sorted(payloads)):
        producer.produce(topic, key=str(i).encode(), value=payload)
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            **settings.KAFKA.client_config(),
            "group.id": f"{unique_name}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": settings.KAFKA.session_timeout_ms,
        }
    )
    consumer.subscribe([topic])
    seen: set[bytes] = set()
    try:
        for _ in range(60):
            for message in consumer.consume(num_messages=100, timeout=0.5):
                value = message.value()
                assert message.error() is None and value is not None
                seen.add(value)
            if seen >= payloads:
                break
        assert seen == payloads
        consumer.commit(asynchronous=False)
        partitions = consumer.assignment()
        assert {tp.partition for tp in partitions} == {0, 1, 2}
    finally:
        consumer.close()
