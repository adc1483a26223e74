"""Pipeline lag, measured by a periodic task and exported by the web's /metrics.

- Consumer-group lag per topic partition, for the group of every consumer in the
  registry (pipeline/consumers/__init__.py): high watermark − the group's
  committed offset, read from the broker (no group is joined, nothing is committed).
- CDC replication-slot lag: WAL bytes between the server's position and the
  slot's confirmed_flush_lsn.

The Celery worker that measures them is not scraped, so the report goes to a
Redis hash with the time it was taken; monitoring/pipeline_lag.py exports it on
the web's /metrics and leaves out a report older than PIPELINE_LAG_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from confluent_kafka import Consumer, TopicPartition

from nova import redis as nova_redis
from nova.config import KafkaConfig
from pipeline.consumers.framework import ConsumerSpec

log = logging.getLogger(__name__)

SLOT_LAG_SQL = (
    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
    "FROM pg_replication_slots WHERE slot_name = %s"
)
# the hash outlives many reports, but not forever once nothing writes it
REPORT_KEY_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    lag: int


@dataclass(frozen=True)
class LagReport:
    reported_at: float  # epoch seconds
    consumer_lag: list[PartitionLag]
    slot_lag_bytes: dict[str, int]  # slot -> bytes; empty when the slot does not exist


def partition_lag(low: int, high: int, committed: int) -> int:
    """Messages the group has still to read in one partition.

    No commit yet (librdkafka's negative offsets): the group would start at the
    earliest retained message (auto.offset.reset=earliest), so all of them. A
    commit below the low watermark (retention deleted unread messages) counts
    from the low watermark. Never negative: the local broker (tansu) reports the
    base offset of the last record batch + 1 as the high watermark, which can be
    below a commit (docs/architecture/tasks.md).
    """
    start = low if committed < 0 else max(committed, low)
    return max(high - start, 0)


def consumer_groups(specs: Iterable[ConsumerSpec], kafka: KafkaConfig) -> dict[str, list[str]]:
    """group id -> the topics its consumer reads (a group shared by two specs reads both)."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        topics = groups.setdefault(spec.group_id, [])
        topics.extend(topic for topic in spec.topics(kafka) if topic not in topics)
    return groups


def measure_consumer_lag(kafka: KafkaConfig, groups: dict[str, list[str]], timeout: float) -> list[PartitionLag]:
    """Lag of every partition of every existing topic of each group; topics not
    created yet are skipped. Raises KafkaException when the broker does not answer."""
    lags = []
    for group, topics in sorted(groups.items()):
        # a consumer that never subscribes: it only asks for the group's commits
        consumer = Consumer({**kafka.client_config(), "group.id": group, "enable.auto.commit": False})
        try:
            metadata = consumer.list_topics(timeout=timeout)
            partitions = [
                TopicPartition(topic, partition)
                for topic in topics
                if topic in metadata.topics and metadata.topics[topic].error is None
                for partition in sorted(metadata.topics[topic].partitions)
            ]
            if not partitions:
                continue
            for tp in consumer.committed(partitions, timeout=timeout):
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
                lags.append(PartitionLag(group, tp.topic, tp.partition, partition_lag(low, high, tp.offset)))
        finally:
            consumer.close()
    return lags


def measure_slot_lag(cursor: Any, slot_name: str) -> dict[str, int]:
    """{slot: WAL bytes behind}; {} when the slot does not exist (the relay has not created it)."""
    cursor.execute(SLOT_LAG_SQL, [slot_name])
    row = cursor.fetchone()
    if row is None or row[0] is None:
        return {}
    return {slot_name: max(int(row[0]), 0)}


def lag_report_key() -> str:
    return nova_redis.key("pipeline", "lag")


def store_lag_report(client: redis.Redis, report: LagReport) -> None:
    """Replace the stored report in one transaction (a reader never sees half of two)."""
    key = lag_report_key()
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(
        key,
        mapping={
            "reported_at": repr(report.reported_at),
            "consumer_lag": json.dumps([[p.group, p.topic, p.partition, p.lag] for p in report.consumer_lag]),
            "slot_lag_bytes": json.dumps(report.slot_lag_bytes),
        },
    )
    pipe.expire(key, REPORT_KEY_TTL_SECONDS)
    pipe.execute()


def parse_lag_report(fields: Mapping[bytes | str, bytes | str]) -> LagReport | None:
    """The stored hash, or None if it is absent or unreadable."""
    try:
        reported_at = float(fields[b"reported_at"])
        consumer_lag = [
            PartitionLag(str(group), str(topic), int(partition), int(lag))
            for group, topic, partition, lag in json.loads(fields[b"consumer_lag"])
        ]
        slot_lag = {str(slot): int(n) for slot, n in json.loads(fields[b"slot_lag_bytes"]).items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
    return LagReport(reported_at, consumer_lag, slot_lag)


def load_lag_report(client: redis.Redis) -> LagReport | None:
    return parse_lag_report(client.hgetall(lag_report_key()))


def report_pipeline_lag(
    client: redis.Redis,
    kafka: KafkaConfig,
    groups: dict[str, list[str]],
    cursor: Any,
    slot_name: str,
    now: float,
    timeout: float,
) -> LagReport:
    """Measure both lags and store the report; returns it."""
    report = LagReport(now, measure_consumer_lag(kafka, groups, timeout), measure_slot_lag(cursor, slot_name))
    store_lag_report(client, report)
    return report
