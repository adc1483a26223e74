"""Kafka client configuration shared by producers, consumers and admin clients."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

from nova.config import KafkaConfig


def admin_client(config: KafkaConfig, **overrides: object) -> AdminClient:
    return AdminClient({**config.client_config(), **overrides})
