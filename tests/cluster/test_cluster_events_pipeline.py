"""The events pipeline (`manage.py run_events_consumer`, Redis dedup, Kafka) into
the replicated cluster, with one replica killed mid-stream and restarted: every
unique event lands once, the aggregates are exact, the replica catches up."""

from __future__ import annotations

import pytest

from tests.cluster.conftest import REPLICATED
from tests.cluster.test_cluster_writes import totals
from tests.pipeline.cdc.conftest import wait_until
from tests.pipeline.events_harness import (
    ConsumerProcess,
    check_sink,
    make_topics,
    plan_events,
    produce,
    wait_until_caught_up,
)

pytestmark = [pytest.mark.requires_cluster, pytest.mark.requires_kafka, pytest.mark.requires_redis]


def test_events_into_the_replicated_cluster_with_a_replica_killed_mid_stream(
    local_cluster, cluster_db, unique_name, tmp_path
) -> None:
    database = cluster_db(REPLICATED)
    topics = make_topics(unique_name, partitions=2)
    plan = plan_events(3000, retry_ratio=0.05, seed=16)
    half = len(plan.messages) // 2
    # tests/settings.py names the consumer's ClickHouse database after its namespace
    consumer = ConsumerProcess(
        topics,
        tmp_path / "consumer.log",
        env={
            "NOVA_TEST_NAMESPACE": database.removeprefix("nova_"),
            "CLICKHOUSE_PORT": str(local_cluster.ports["ch1"]),
            "CLICKHOUSE_CLUSTER": REPLICATED.cluster,
            "CLICKHOUSE_REPLICA_PATH": REPLICATED.replica_path,
        },
    )
    ch1 = local_cluster.client("ch1", REPLICATED, database)
    try:
        consumer.start()
        produce(topics.kafka, topics.events, plan.messages[:half])
        wait_until(lambda: totals(ch1)[0] > 0, 60, message="the consumer never wrote to the cluster")

        local_cluster.kill("ch2")  # while the consumer writes the first half
        produce(topics.kafka, topics.events, plan.messages[half:])
        wait_until_caught_up(topics, ch1, timeout=90)
        assert consumer.alive
        report = check_sink(ch1, topics.events, plan)
        assert report.ok, report

        local_cluster.run("up", "ch2")
        ch2 = local_cluster.client("ch2", REPLICATED, database)
        wait_until(
            lambda: totals(ch2, "_local") == totals(ch1, "_local"), 60, message="the restarted replica did not catch up"
        )
        assert check_sink(ch2, topics.events, plan).ok
    finally:
        consumer.stop()
