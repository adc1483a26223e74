"""Every Prometheus metric Nova exports, declared once (names fixed by DESIGN.md:
dashboards and alerts use them). Each block belongs to one subsystem; keep new
metrics in their subsystem's block."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# ---------------------------------------------------------------- CDC (relay + consumer)
CDC_MESSAGES_PROCESSED = Counter(
    "cdc_messages_processed", "CDC change events written to ClickHouse replicas", ["table"]
)
CDC_PROCESSING_DURATION = Histogram(
    "cdc_processing_duration_seconds",
    "Time to decode and write one CDC batch to ClickHouse",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CDC_DLQ_MESSAGES = Counter("cdc_dlq_messages", "CDC messages sent to the dead-letter topic", ["reason"])
CDC_RELAY_CHANGES = Counter("cdc_relay_changes", "Change events the relay produced to Kafka", ["table", "op"])
CDC_SLOT_LAG_BYTES = Gauge(
    "cdc_slot_lag_bytes", "WAL bytes between the server's position and the slot's confirmed position", ["slot"]
)
CDC_SLOT_LAG_SECONDS = Gauge(
    "cdc_slot_lag_seconds", "Seconds since the relay last caught up with the WAL written before it looked", ["slot"]
)
CDC_RELAY_RECONNECTS = Counter("cdc_relay_reconnects", "Relay reconnects after a Postgres or Kafka failure", ["cause"])
# ---------------------------------------------------------------- end CDC
