"""The events consumer against a private ClickHouse that is frozen (SIGSTOP) while
events arrive: inserts time out on the client (2 s) while the frozen server may
still hold the whole block and take it once thawed (an ambiguous insert), and the
consumer is stopped with SIGTERM while its sink fails. After a thaw and a restart
every event must be in ClickHouse exactly once and every aggregate exact.

The shared ClickHouse is never frozen: this one runs from the test's own var/
directory (tests/support/private_services.py)."""

from __future__ import annotations

import dataclasses
import signal
import time

import pytest
from django.conf import settings

from nova.clickhouse import make_client
from pipeline.clickhouse_migrations import MigrationRunner
from tests.pipeline.events_harness import (
    ConsumerProcess,
    EventPlan,
    check_sink,
    make_topics,
    plan_events,
    produce,
    wait_for,
    wait_until_caught_up,
)
from tests.support.private_services import PrivateServer

pytestmark = [pytest.mark.requires_kafka, pytest.mark.requires_clickhouse, pytest.mark.requires_redis, pytest.mark.slow]


@pytest.fixture
def private_clickhouse(tmp_path):
    server = PrivateServer("clickhouse", tmp_path / "var")
    server.up()
    try:
        yield server
    finally:
        if server.pid_file.exists():
            server.signal(signal.SIGCONT)
        server.down()


def test_frozen_sink_timeouts_and_a_sigterm_meanwhile_lose_nothing_and_count_nothing_twice(
    unique_name, private_clickhouse, tmp_path
) -> None:
    config = dataclasses.replace(settings.CLICKHOUSE, port=private_clickhouse.port)
    private, admin = make_client(config), make_client(config, database="default")
    MigrationRunner(private, admin, config.database, settings.CLICKHOUSE_SQL_DIR).apply()

    topics = make_topics(unique_name, partitions=2)
    env = {
        "CLICKHOUSE_PORT": str(private_clickhouse.port),
        "CLICKHOUSE_SEND_RECEIVE_TIMEOUT": "2",
        "CLICKHOUSE_CONNECT_TIMEOUT": "2",
    }
    consumer = ConsumerProcess(topics, tmp_path / "consumer.log", batch_size=300, env=env)
    first = plan_events(3000, retry_ratio=0.05, seed=21)
    second, third = (plan_events(3000, retry_ratio=0.05, seed=seed, id_base=first.id_base) for seed in (22, 23))
    try:
        consumer.start()
        produce(topics.kafka, topics.events, first.messages)
        wait_until_caught_up(topics, private, timeout=60)

        # 1. frozen while a stream of inserts is under way; thawed; no restart
        private_clickhouse.signal(signal.SIGSTOP)
        produce(topics.kafka, topics.events, second.messages)
        wait_for(lambda: consumer.log().count("write failed") >= 2, timeout=60, what="inserts failing")
        private_clickhouse.signal(signal.SIGCONT)
        wait_until_caught_up(topics, private, timeout=90)

        # 2. frozen again, SIGTERM while the writes fail, thawed, restarted
        private_clickhouse.signal(signal.SIGSTOP)
        produce(topics.kafka, topics.events, third.messages)
        failures = consumer.log().count("write failed")
        wait_for(lambda: consumer.log().count("write failed") >= failures + 2, timeout=60, what="inserts failing")
        started = time.monotonic()
        assert consumer.stop(timeout=60) == 0
        stop_seconds = time.monotonic() - started
        private_clickhouse.signal(signal.SIGCONT)
        consumer.start()
        wait_until_caught_up(topics, private, timeout=90)
    finally:
        consumer.stop()

    report = check_sink(private, topics.events, EventPlan.joined(first, second, third))
    print(report, f"stopped in {stop_seconds:.1f}s")
    assert report.ok, report
