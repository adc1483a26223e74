"""`manage.py run_events_consumer` as a real process against the real broker,
Redis and ClickHouse: rows with their source offsets, client retries dropped
and counted, poison messages dead-lettered while the partition keeps flowing."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from pipeline.consumers.events import build_events_handler
from pipeline.consumers.framework import RowsRejected
from pipeline.event_schema import ROW_COLUMNS, message_to_row
from tests.pipeline.events_harness import (
    ConsumerProcess,
    check_sink,
    dead_letters,
    make_topics,
    message_of,
    plan_events,
    produce,
    wait_for,
    wait_until_caught_up,
)

pytestmark = [pytest.mark.requires_kafka, pytest.mark.requires_clickhouse, pytest.mark.requires_redis]


@pytest.fixture
def topics(unique_name):
    return make_topics(unique_name, partitions=2)


@pytest.fixture
def consumer(topics, tmp_path):
    process = ConsumerProcess(topics, tmp_path / "consumer.log")
    yield process
    process.stop()


def _rows(clickhouse, topic: str) -> list[tuple]:
    return clickhouse.execute(
        "SELECT toString(event_id), user_id, post_id, author_id, toString(event_type), toUInt32(ts), received_at_ms, "
        "dwell_ms, position, surface, _topic, _partition, _offset, _generation FROM events WHERE _topic = %(t)s",
        {"t": topic},
    )


def test_events_land_with_their_source_offsets(topics, consumer, clickhouse) -> None:
    plan = plan_events(300, retry_ratio=0.0, seed=1)
    produce(topics.kafka, topics.events, plan.messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    rows = _rows(clickhouse, topics.events)
    assert len(rows) == 300
    by_id = {row[0]: row for row in rows}
    event = next(iter(plan.unique.values()))
    got = by_id[event.event_id]
    assert got[1:5] == (event.user_id, event.post_id, event.author_id, event.event_type)
    assert got[5] == int(event.ts.timestamp())
    assert got[9] == "home" and got[10] == topics.events
    # (partition, offset) pairs are exactly the topic's: each message once, none invented
    offsets = sorted((row[11], row[12]) for row in rows)
    assert len(set(offsets)) == 300
    for partition in (0, 1):
        mine = [offset for p, offset in offsets if p == partition]
        assert mine == list(range(len(mine)))
    assert {row[13] for row in rows} == {0}
    report = check_sink(clickhouse, topics.events, plan)
    assert report.ok, report
    assert consumer.metric_when("consumer_messages_total", 300) == 300
    assert consumer.metric_when("event_to_visible_seconds_count", 300) == 300


def test_client_retries_are_dropped_and_counted(topics, consumer, clickhouse) -> None:
    plan = plan_events(400, retry_ratio=0.25, seed=2)
    produce(topics.kafka, topics.events, plan.messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    report = check_sink(clickhouse, topics.events, plan)
    assert report.ok, report
    assert report.rows == 400 - plan.retries
    assert consumer.metric("dedup_detected_duplicates_total") == plan.retries
    assert consumer.metric("dedup_replays_total") == 0


def test_poison_message_goes_to_the_dlq_with_its_reason_and_the_partition_flows(topics, consumer, clickhouse):
    good = plan_events(60, retry_ratio=0.0, seed=3)
    poison = [(b"1", b"{not json"), (b"1", b'{"event_id": "nope"}')]
    # same key as the good events around them: the same partition must keep flowing
    key = good.messages[0][0]
    messages = [*good.messages[:30], *((key, value) for _k, value in poison), *good.messages[30:]]
    produce(topics.kafka, topics.events, messages)
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    report = check_sink(clickhouse, topics.events, good)
    assert report.ok, report
    dead = dead_letters(topics)
    assert sorted(m.value() for m in dead) == sorted(value for _k, value in poison)
    for message in dead:
        headers = dict(message.headers())
        assert headers["source_topic"] == topics.events.encode()
        assert headers["error"].decode().startswith(("not JSON", "event_id:"))
        assert int(headers["source_offset"]) >= 0
    assert consumer.metric_when("dlq_messages_total", 2) == 2


def _poison(plan, ts: datetime) -> bytes:
    """A message of a fresh event (not in `plan.unique`) whose ts ClickHouse's DateTime cannot hold."""
    event = dataclasses.replace(next(iter(plan.unique.values())), event_id=str(uuid.uuid4()), ts=ts)
    return message_of(event, datetime.now(UTC))


def test_a_timestamp_clickhouse_cannot_hold_is_dead_lettered_and_the_partition_flows(topics, consumer, clickhouse):
    # issue 12, confirmed: produced straight to the topic (not through the API),
    # this passed decode and then failed every insert of its batch for ever
    good = plan_events(60, retry_ratio=0.0, seed=4)
    poison = _poison(good, datetime(2200, 1, 1, tzinfo=UTC))
    key = good.messages[0][0]
    produce(topics.kafka, topics.events, [*good.messages[:30], (key, poison), *good.messages[30:]])
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    report = check_sink(clickhouse, topics.events, good)
    assert report.ok, report  # every good event once, the poison one not at all
    [dead] = dead_letters(topics)
    assert dead.value() == poison
    assert b"outside 1970-01-01..2105-12-31" in dict(dead.headers())["error"]
    assert consumer.metric_when("consumer_messages_total", 61) == 61


def test_rows_clickhouse_refuses_raise_rows_rejected_and_insert_nothing(topics, clickhouse):
    """Past decode (a check it lacks, a column changed under it), ClickHouse's own
    refusal is what the runner isolates: the handler must report it as RowsRejected."""
    from django.test import override_settings

    good = plan_events(3, retry_ratio=0.0, seed=5)
    rows = [message_to_row(value, topics.events, 0, offset, 0) for offset, (_k, value) in enumerate(good.messages)]
    ts = ROW_COLUMNS.index("ts")
    rows[1] = (*rows[1][:ts], 7_258_118_400, *rows[1][ts + 1 :])  # 2200-01-01: no UInt32
    with override_settings(KAFKA=topics.kafka, EVENTS_CONSUMER_GROUP=topics.group):
        handler = build_events_handler()
    try:
        with pytest.raises(RowsRejected, match="ts"):
            handler.write(rows)
        assert check_sink(clickhouse, topics.events, good).rows == 0
        assert handler.write([rows[0], rows[2]]) == 2  # the connection is usable after the refusal
    finally:
        handler.probe.close()


def test_dead_letters_are_acknowledged_before_their_batch_is_inserted(topics, consumer, clickhouse):
    # issue 12: written after the insert, a crash between the two lost them (the
    # restart seeks past the inserted offsets, the dead letter's among them)
    good = plan_events(2, retry_ratio=0.0, seed=6)
    key = good.messages[0][0]
    produce(topics.kafka, topics.events, [good.messages[0], (key, b"{not json"), (key, good.messages[1][1])])
    consumer.start("--test-crash-at", "after-insert:1")
    wait_for(lambda: not consumer.alive, timeout=60, what="the crash after the first insert")
    assert consumer.proc.returncode == -9
    consumer.start()
    wait_until_caught_up(topics, clickhouse, timeout=60)

    assert check_sink(clickhouse, topics.events, good).ok
    assert [m.value() for m in dead_letters(topics)] == [b"{not json"]


def test_a_retried_insert_that_had_landed_is_not_inserted_twice(topics, clickhouse):
    """An insert whose outcome is unknown (client timeout after the server took the
    block) is retried with the same prepared batch: the retry asks ClickHouse first."""
    from django.test import override_settings

    plan = plan_events(40, retry_ratio=0.0, seed=7)
    rows = [message_to_row(value, topics.events, 0, offset, 0) for offset, (_k, value) in enumerate(plan.messages)]
    with override_settings(KAFKA=topics.kafka, EVENTS_CONSUMER_GROUP=topics.group):
        handler = build_events_handler()
    try:
        first = handler.prepare(rows[:30])
        assert handler.write(first) == 30  # landed, but say the client never heard back
        retried = handler.prepare(rows)  # a replay: the marks are its own
        retried.attempted = True
        # inserts only the 10 rows above the sink's offset; all 40 count as written
        # (the first attempt raised, so nothing counted them)
        assert handler.write(retried) == 40
        report = check_sink(clickhouse, topics.events, plan)
        assert report.ok, report

        # negative control: the same retry without the check counts 30 events twice
        again = handler.prepare(rows[:30])
        handler.write(again)
        assert check_sink(clickhouse, topics.events, plan).aggregate_excess == 30
    finally:
        handler.probe.close()


def test_a_retry_sends_the_identical_block_for_clickhouse_to_deduplicate(topics, clickhouse):
    """Where the retry's read of the sink cannot see the first attempt (a replica
    behind on a cluster), it inserts the whole batch again: the block must be the
    same to the byte, `_inserted_at` included, so ClickHouse's block deduplication
    (replicated tables, insert_deduplication_token) drops it. A server-filled
    DEFAULT now() a second later would make it a different block."""
    import time

    from django.test import override_settings

    from pipeline.consumers.events import INSERT_SQL, SINK_OFFSETS_SQL

    plan = plan_events(20, retry_ratio=0.0, seed=11)
    rows = [message_to_row(value, topics.events, 0, offset, 0) for offset, (_k, value) in enumerate(plan.messages)]
    with override_settings(KAFKA=topics.kafka, EVENTS_CONSUMER_GROUP=topics.group):
        handler = build_events_handler()
    sent: list[list[tuple]] = []
    real_execute = handler.clickhouse.execute

    def execute(query, params=None, **kwargs):
        if query == SINK_OFFSETS_SQL:
            return []  # the read reaches a replica that has not seen the first attempt
        result = real_execute(query, params, **kwargs)
        if query == INSERT_SQL:
            sent.append(list(params))
            if len(sent) == 1:
                raise TimeoutError("the client never heard back")  # after the server took the block
        return result

    handler.clickhouse.execute = execute
    try:
        batch = handler.prepare(rows)
        with pytest.raises(TimeoutError):
            handler.write(batch)
        time.sleep(1.1)  # the retry comes in a later second
        handler.write(batch)
        assert len(sent) == 2 and sent[0] == sent[1]
        # on this single server (plain MergeTree, no block deduplication) both copies are
        # stored: they must hold the same _inserted_at, not two server clocks a second apart
        stored = clickhouse.execute(
            "SELECT count(), uniqExact(_inserted_at) FROM events WHERE _topic = %(topic)s", {"topic": topics.events}
        )
        assert stored == [(2 * len(rows), 1)]
    finally:
        handler.probe.close()
