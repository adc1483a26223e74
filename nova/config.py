"""Frozen groups of connection settings, built once in settings.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClickHouseConfig:
    host: str
    port: int
    database: str
    user: str
    password: str
    connect_timeout: float
    send_receive_timeout: float
    query_timeout: float
    # a cluster of the servers' <remote_servers> (docs/operations/scaling.md); "" = one server
    cluster: str = ""
    # ZooKeeper path of a Replicated table's replicas; {shard}/{replica} are the servers' macros
    replica_path: str = "/clickhouse/tables/{shard}/{database}/{table}"


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    # Debezium's topic.prefix: CDC topics are "<prefix>.<schema>.<table>",
    # the others "<prefix>.events", "<prefix>.dlq.<source>".
    topic_prefix: str
    partitions: int
    replication_factor: int
    session_timeout_ms: int
    security_protocol: str

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    def client_config(self) -> dict[str, str | int | float]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }


@dataclass(frozen=True)
class CdcConfig:
    """The CDC relay (pgoutput slot -> Kafka) and the CDC consumer (Kafka -> ClickHouse)."""

    # one slot per source database; the publication names the tables and columns
    slot_name: str
    publication_name: str
    # rows per pg_logical_slot_peek_binary_changes call (whole transactions are
    # never split, so a big one can overshoot); the slot advances per call
    peek_max_rows: int
    poll_interval: float
    # how often the relay confirms progress when the published tables are idle,
    # so the slot does not pin WAL written for other tables
    idle_confirm_interval: float
    reconnect_max_backoff: float
    relay_metrics_port: int


@dataclass(frozen=True)
class BreakerSettings:
    """nova/breaker.py's thresholds."""

    failure_threshold: int  # consecutive failures or timeouts that open the breaker
    cool_down_seconds: float  # open this long before one probe query is let through
    probe_timeout_seconds: float  # a probe that never reports back frees its slot after this
