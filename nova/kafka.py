"""Kafka client configuration shared by producers, consumers and admin clients."""

from __future__ import annotations

from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from nova.config import KafkaConfig


def admin_client(config: KafkaConfig, **overrides: str | int | float) -> AdminClient:
    return AdminClient({**config.client_config(), **overrides})


def produce_waiting(
    producer: Producer, topic: str, key: bytes | None, value: bytes | None, poll_seconds: float = 0.05, **kwargs: Any
) -> None:
    """`producer.produce`, waiting while the local queue is full: polling serves
    delivery reports, which frees room, then the same message is tried again."""
    while True:
        try:
            producer.produce(topic, key=key, value=value, **kwargs)
            return
        except BufferError:
            producer.poll(poll_seconds)
