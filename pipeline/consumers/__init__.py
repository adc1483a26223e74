"""The registry of Nova's consumers: `manage.py run_consumer NAME` runs one.

Each entry says which topics, which group, where dead letters go and which
handler turns messages into sink writes; the runner in framework.py does the
rest. Handlers are imported lazily so a registry import stays cheap.
"""

from __future__ import annotations

from typing import Any

from pipeline.consumers.framework import ConsumerSpec, Handler
from pipeline.topics import CDC_TABLES, cdc_topic, dlq_topic, events_topic

CONSUMERS: dict[str, ConsumerSpec] = {}


def register(spec: ConsumerSpec) -> ConsumerSpec:
    if spec.name in CONSUMERS:
        raise ValueError(f"consumer {spec.name!r} is registered twice")
    CONSUMERS[spec.name] = spec
    return spec


def _group(setting: str) -> str:
    from django.conf import settings

    return str(getattr(settings, setting))


# ---------------------------------------------------------------- cdc (pipeline/consumers/cdc.py)
def _cdc_handler() -> Handler[Any]:
    from pipeline.consumers.cdc import build_cdc_handler

    return build_cdc_handler()


register(
    ConsumerSpec(
        name="cdc",
        topics=lambda kafka: [cdc_topic(kafka, table) for table in CDC_TABLES],
        group_id=_group("CDC_CONSUMER_GROUP"),
        dlq_topic=lambda kafka: dlq_topic(kafka, "cdc"),
        handler_factory=_cdc_handler,
        # small batches keep change -> visible well under a second at steady load;
        # a backlog still fills them up to max_batch_size
        max_batch_size=5_000,
        max_batch_time_ms=200,
        # the broker may hold an empty fetch this long: librdkafka's 500 ms default
        # alone would eat half of the 1 s change -> visible budget
        consumer_overrides={"fetch.wait.max.ms": 50},
    )
)


# ---------------------------------------------------------------- events (pipeline/consumers/events.py)
def _events_handler() -> Handler[Any]:
    from pipeline.consumers.events import build_events_handler

    return build_events_handler()


register(
    ConsumerSpec(
        name="events",
        topics=lambda kafka: [events_topic(kafka)],
        group_id=_group("EVENTS_CONSUMER_GROUP"),
        dlq_topic=lambda kafka: dlq_topic(kafka, "events"),
        handler_factory=_events_handler,
        # big blocks: ClickHouse spends ~16 µs a row on 10,000-row inserts (new
        # parts in `events` and in every view's table, then merges) and ~5 µs on
        # 50,000-row ones (docs/benchmarks.md); the 500 ms bound keeps latency
        max_batch_size=50_000,
        max_batch_time_ms=500,
        # a caught-up fetch otherwise waits up to 500 ms for data on the local
        # broker: ~200 ms of event-to-visible latency for nothing
        consumer_overrides={"fetch.wait.max.ms": 50},
    )
)
