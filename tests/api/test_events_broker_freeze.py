"""Broker outage: the web app in-process, a real `run_events_consumer`
subprocess, and the local broker frozen with SIGSTOP.

While frozen the API answers 503 with Retry-After and never 202; after SIGCONT
the client retries the same event_ids and gets 202, without restarting web or
consumer, and every event that got a 202 is in ClickHouse `events` exactly once
(messages queued during the freeze that the broker takes later are removed as
client retries by the consumer's dedup)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from django.conf import settings

from pipeline.topics import events_topic
from tests.support.processes import listener_pid

pytestmark = [
    pytest.mark.requires_postgres,
    pytest.mark.requires_kafka,
    pytest.mark.requires_redis,
    pytest.mark.requires_clickhouse,
    pytest.mark.slow,
]

URL = "/api/v1/events/"


def batch(post_id: int, size: int) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [{"event_id": str(uuid.uuid4()), "post_id": post_id, "event_type": "view", "ts": now} for _ in range(size)]


def post_events(client, events):
    return client.post(URL, data=json.dumps({"events": events}), content_type="application/json")


def counts_in_clickhouse(clickhouse, event_ids: list[str]) -> dict[str, int]:
    # no FINAL: the ReplacingMergeTree backstop must not hide a double insert
    rows = clickhouse.execute(
        # UUID literals in IN do not convert on 18.16: compare as strings
        "SELECT toString(event_id) AS id, count() FROM events WHERE toString(event_id) IN %(ids)s GROUP BY id",
        {"ids": tuple(event_ids)},
    )
    return dict(rows)


def copies_on_topic(event_ids: set[str], timeout: float = 20.0) -> dict[str, int]:
    """How many messages of the events topic carry each of `event_ids` (whole log, to its end)."""
    topic = events_topic(settings.KAFKA)
    consumer = Consumer(
        {
            **settings.KAFKA.client_config(),
            "group.id": f"probe-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    copies: dict[str, int] = {}
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if (error := message.error()) is not None:
                if error.code() == KafkaError._PARTITION_EOF and (partition := message.partition()) is not None:
                    at_end.add(partition)
                continue
            # the shared topic may hold anything another run wrote: only count our ids
            try:
                event_id = orjson.loads(message.value() or b"null").get("event_id")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if event_id in event_ids:
                copies[event_id] = copies.get(event_id, 0) + 1
    finally:
        consumer.close()
    return copies


def wait_for_events(clickhouse, event_ids: list[str], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        counts = counts_in_clickhouse(clickhouse, event_ids)
        if len(counts) == len(event_ids) or time.monotonic() > deadline:
            return counts
        time.sleep(0.3)


@pytest.fixture
def events_consumer(clickhouse_db, kafka_topics, tmp_path):
    """`manage.py run_events_consumer` with the suite's settings and its own group."""
    log = tmp_path / "consumer.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "EVENTS_CONSUMER_GROUP": f"freeze-{uuid.uuid4().hex[:8]}",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_events_consumer", "--metrics-port", "0", "--max-batch-time-ms", "200"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log.read_text(errors="replace")[-4000:])  # shown by pytest when the test failed


def test_frozen_broker_gives_503_and_every_202_reaches_clickhouse_once(world, events_consumer, clickhouse, settings):
    settings.EVENTS_PRODUCE_TIMEOUT_SECONDS = 1.0
    client = world.client_for(world.alice)
    post_id = world.bob_post.id

    # the pipeline works before the outage (and the consumer has joined its group)
    warm_up = batch(post_id, 2)
    assert post_events(client, warm_up).status_code == 202
    warm_ids = [e["event_id"] for e in warm_up]
    assert wait_for_events(clickhouse, warm_ids, timeout=60) == dict.fromkeys(warm_ids, 1), "consumer never caught up"

    # by its socket, not var/kafka/tansu.pid: a CI clone may find the broker started by another checkout
    tansu = listener_pid(int(settings.KAFKA.bootstrap_servers.rsplit(":", 1)[1]))
    frozen_batches = [batch(post_id, 5) for _ in range(3)]
    os.kill(tansu, signal.SIGSTOP)
    try:
        for events in frozen_batches:
            started = time.monotonic()
            response = post_events(client, events)
            assert response.status_code == 503, response.content
            assert response["Retry-After"] == str(settings.EVENTS_RETRY_AFTER_SECONDS)
            assert "retry with the same event_ids" in response.json()["detail"]
            assert time.monotonic() - started < 5  # bounded by the produce timeout, not the broker
    finally:
        os.kill(tansu, signal.SIGCONT)

    # the client retries the same event_ids (the web process was not restarted)
    accepted: list[str] = list(warm_ids)
    for events in frozen_batches:
        deadline = time.monotonic() + 30
        while (response := post_events(client, events)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert response.status_code == 202, response.content
        assert response.json()["accepted"] == len(events)
        accepted += [e["event_id"] for e in events]
    fresh = batch(post_id, 5)
    assert post_events(client, fresh).status_code == 202
    accepted += [e["event_id"] for e in fresh]

    # the same consumer process, never restarted, delivers each exactly once
    counts = wait_for_events(clickhouse, accepted, timeout=60)
    time.sleep(2)  # let any late copy (queued during the freeze) reach the consumer too
    counts = counts_in_clickhouse(clickhouse, accepted)
    assert events_consumer.poll() is None, "the consumer exited"
    assert {event_id: counts.get(event_id, 0) for event_id in accepted} == dict.fromkeys(accepted, 1)
    # and the outage really did put duplicates on the topic for dedup to remove:
    # the frozen attempt's messages were delivered late, beside the retry's
    frozen_ids = {e["event_id"] for events in frozen_batches for e in events}
    copies = copies_on_topic(frozen_ids)
    assert set(copies) == frozen_ids
    assert sum(copies.values()) > len(frozen_ids), copies
