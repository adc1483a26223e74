"""The Kafka topics (docs/architecture/), named from the configured prefix."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from nova.config import KafkaConfig

# Tables published by the CDC relay, in the order a snapshot emits them.
CDC_TABLES = ("users", "posts", "follows", "likes", "comments", "mutes")


def cdc_topic(kafka: KafkaConfig, table: str, schema: str = "public") -> str:
    """Debezium's `<topic.prefix>.<schema>.<table>`."""
    return kafka.topic(f"{schema}.{table}")


def events_topic(kafka: KafkaConfig) -> str:
    return kafka.topic("events")


def dlq_topic(kafka: KafkaConfig, source: str) -> str:
    return kafka.topic(f"dlq.{source}")


def all_topics(kafka: KafkaConfig) -> list[str]:
    return [
        *(cdc_topic(kafka, table) for table in CDC_TABLES),
        events_topic(kafka),
        dlq_topic(kafka, "cdc"),
        dlq_topic(kafka, "events"),
    ]


def ensure_topics(
    admin: AdminClient, names: list[str], partitions: int, replication_factor: int, timeout: float = 15.0
) -> tuple[list[str], dict[str, int]]:
    """Create the missing topics; return (created, {existing topic: partition count})."""
    metadata = admin.list_topics(timeout=timeout)
    existing = {name: len(metadata.topics[name].partitions) for name in names if name in metadata.topics}
    missing = [name for name in names if name not in existing]
    created = []
    if missing:
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor) for name in missing],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout)
                created.append(name)
            except KafkaException as exc:
                # another process created it between our listing and our request
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
                existing[name] = partitions
    return created, existing
