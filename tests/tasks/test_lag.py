"""Pipeline lag: the arithmetic, the consumer groups, the Redis report and its
export on the web's /metrics (fresh, stale, Redis down)."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.test import Client
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from monitoring import metrics
from monitoring.pipeline_lag import PipelineLagCollector, lag_families, register_pipeline_lag_collector
from nova.periodic import task_redis
from pipeline.consumers import CONSUMERS
from pipeline.lag import (
    LagReport,
    PartitionLag,
    consumer_groups,
    lag_report_key,
    load_lag_report,
    partition_lag,
    store_lag_report,
)
from pipeline.topics import CDC_TABLES, cdc_topic, events_topic
from tests.support.redis_down import redis_down  # noqa: F401


@pytest.mark.parametrize(
    ("low", "high", "committed", "lag"),
    [
        (0, 10, 4, 6),
        (0, 10, 10, 0),
        (0, 10, -1001, 10),  # no commit: the group starts at the earliest message
        (5, 10, -1001, 5),
        (6, 10, 2, 4),  # retention deleted unread messages: count from what is left
        (0, 7, 9, 0),  # a commit past the reported watermark (tansu's per-batch watermark): never negative
        (0, 0, -1001, 0),
    ],
)
def test_partition_lag(low: int, high: int, committed: int, lag: int) -> None:
    assert partition_lag(low, high, committed) == lag


def test_the_groups_are_the_consumer_registry_s() -> None:
    groups = consumer_groups(CONSUMERS.values(), settings.KAFKA)
    assert groups == {
        settings.CDC_CONSUMER_GROUP: [cdc_topic(settings.KAFKA, table) for table in CDC_TABLES],
        settings.EVENTS_CONSUMER_GROUP: [events_topic(settings.KAFKA)],
    }


REPORT = LagReport(0.0, [PartitionLag("g", "t", 0, 7), PartitionLag("g", "t", 1, 0)], {"slot": 1234})


def _at(reported_at: float) -> LagReport:
    return LagReport(reported_at, REPORT.consumer_lag, REPORT.slot_lag_bytes)


def test_families_of_a_fresh_report() -> None:
    families = {family.name: family for family in lag_families(_at(100.0), now=110.0, max_age=90)}
    assert {s.labels["partition"]: s.value for s in families["consumer_group_lag"].samples} == {"0": 7, "1": 0}
    assert [(s.labels, s.value) for s in families["cdc_replication_slot_lag_bytes"].samples] == [
        ({"slot": "slot"}, 1234)
    ]
    assert families["pipeline_lag_report_age_seconds"].samples[0].value == 10.0


def test_a_stale_report_exports_only_its_age() -> None:
    families = lag_families(_at(100.0), now=191.0, max_age=90)
    assert [family.name for family in families] == ["pipeline_lag_report_age_seconds"]
    assert lag_families(None, now=191.0, max_age=90) == []


def test_names_are_not_taken_by_other_metrics() -> None:
    registry = CollectorRegistry()
    # the consumers' and the relay's own lag gauges live beside these
    Gauge("consumer_lag", "x", ["consumer", "topic", "partition"], registry=registry)
    Gauge("cdc_slot_lag_bytes", "x", ["slot"], registry=registry)
    register_pipeline_lag_collector(registry)
    register_pipeline_lag_collector(registry)  # once only
    assert metrics.CONSUMER_LAG._name == "consumer_lag" and metrics.CDC_SLOT_LAG_BYTES._name == "cdc_slot_lag_bytes"
    import nova.urls  # noqa: F401 - registers the collector on the web's registry

    assert isinstance(REGISTRY._names_to_collectors["consumer_group_lag"], PipelineLagCollector)


@pytest.mark.requires_redis
class TestReportInRedis:
    @pytest.fixture(autouse=True)
    def _clean(self):
        task_redis().delete(lag_report_key())
        yield
        task_redis().delete(lag_report_key())

    def _metrics(self) -> dict[str, list]:
        response = Client().get("/metrics")
        assert response.status_code == 200
        return {family.name: family.samples for family in text_string_to_metric_families(response.content.decode())}

    def test_round_trip(self) -> None:
        store_lag_report(task_redis(), _at(123.5))
        assert load_lag_report(task_redis()) == _at(123.5)
        task_redis().hset(lag_report_key(), "consumer_lag", "not json")
        assert load_lag_report(task_redis()) is None

    def test_metrics_show_a_fresh_report_and_hide_a_stale_one(self) -> None:
        store_lag_report(task_redis(), _at(time.time()))
        samples = self._metrics()
        assert {s.labels["partition"]: s.value for s in samples["consumer_group_lag"]} == {"0": 7, "1": 0}
        assert samples["cdc_replication_slot_lag_bytes"][0].value == 1234

        store_lag_report(task_redis(), _at(time.time() - settings.PIPELINE_LAG_MAX_AGE_SECONDS - 5))
        samples = self._metrics()
        assert not samples.get("consumer_group_lag") and not samples.get("cdc_replication_slot_lag_bytes")
        assert samples["pipeline_lag_report_age_seconds"][0].value > settings.PIPELINE_LAG_MAX_AGE_SECONDS

    def test_metrics_answer_with_redis_down(self, request) -> None:
        store_lag_report(task_redis(), _at(time.time()))
        request.getfixturevalue("redis_down")
        samples = self._metrics()
        assert not samples.get("consumer_group_lag")
        assert "python_info" in samples, "the rest of /metrics is served as usual"
