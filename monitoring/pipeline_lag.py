"""The web's /metrics view of the lag the `report_pipeline_lag` task stores in Redis.

A custom collector reads the report at scrape time. Names are distinct from the
consumers' and the relay's own gauges (`consumer_lag{consumer,...}` measured by a
running consumer, `cdc_slot_lag_bytes{slot}` by the relay), which stay as they
are on those processes' endpoints:

- `consumer_group_lag{group,topic,partition}`: high watermark − committed offset;
- `cdc_replication_slot_lag_bytes{slot}`: WAL bytes the slot has not confirmed;
- `pipeline_lag_report_age_seconds`: how old the report is.

A report older than PIPELINE_LAG_MAX_AGE_SECONDS exports only its age: a
stopped worker must not leave a frozen, reassuring lag behind. Redis being down
exports nothing of these and never fails the scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitoring.metrics import CDC_REPLICATION_SLOT_LAG_BYTES as SLOT_LAG_BYTES
from monitoring.metrics import CONSUMER_GROUP_LAG
from monitoring.metrics import PIPELINE_LAG_REPORT_AGE as REPORT_AGE
from nova import redis as nova_redis
from pipeline.lag import LagReport, load_lag_report

log = logging.getLogger(__name__)


def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily(
            CONSUMER_GROUP_LAG,
            "Messages a consumer group has still to read (high watermark - "
            "committed offset), as the report_pipeline_lag task last measured.",
            labels=["group", "topic", "partition"],
        ),
        GaugeMetricFamily(
            SLOT_LAG_BYTES,
            "WAL bytes between the server's position and the CDC slot's "
            "confirmed position, as the report_pipeline_lag task last measured.",
            labels=["slot"],
        ),
        GaugeMetricFamily(REPORT_AGE, "Seconds since the report_pipeline_lag task measured the pipeline lag."),
    )


def lag_families(report: LagReport | None, now: float, max_age: float) -> list[GaugeMetricFamily]:
    """The families to export for `report` at `now` (pure)."""
    if report is None:
        return []
    group_lag, slot_lag, age = _families()
    age_seconds = max(now - report.reported_at, 0.0)
    age.add_metric([], age_seconds)
    if age_seconds > max_age:
        return [age]
    for item in report.consumer_lag:
        group_lag.add_metric([item.group, item.topic, str(item.partition)], item.lag)
    for slot, lag_bytes in sorted(report.slot_lag_bytes.items()):
        slot_lag.add_metric([slot], lag_bytes)
    return [group_lag, slot_lag, age]


def _read_report() -> LagReport | None:
    client = nova_redis.client()
    if client is None:  # Redis failed a moment ago (nova/redis.py)
        return None
    try:
        return load_lag_report(client)
    except nova_redis.REDIS_ERRORS as exc:
        nova_redis.mark_down()
        log.warning("pipeline lag report unavailable: %s", exc)
        return None


class PipelineLagCollector(Collector):
    def __init__(
        self, read_report: Callable[[], LagReport | None] = _read_report, clock: Callable[[], float] = time.time
    ) -> None:
        self.read_report = read_report
        self.clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        # the names, for the registry's duplicate check, without a Redis call
        return list(_families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from lag_families(self.read_report(), self.clock(), settings.PIPELINE_LAG_MAX_AGE_SECONDS)


_registered: set[int] = set()
_lock = threading.Lock()


def register_pipeline_lag_collector(registry: CollectorRegistry = REGISTRY) -> None:
    """Add the collector to `registry` once (a second call is a no-op). Raises
    ValueError if one of its names is already taken by another metric."""
    with _lock:
        if id(registry) not in _registered:
            registry.register(PipelineLagCollector())
            _registered.add(id(registry))
