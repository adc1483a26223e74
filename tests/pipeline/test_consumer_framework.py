"""The consumer framework against the real broker: commit after write, DLQ,
the drain guard and the negative-control switch. The sink here is a list (the
framework is what is under test; real sinks are tested with their handlers)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Set as AbstractSet

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from django.conf import settings

from nova.kafka import admin_client
from pipeline.consumers.faults import Faults
from pipeline.consumers.framework import (
    ConsumerRunner,
    ConsumerSpec,
    DeadLetterFlood,
    InvalidMessage,
    RowsRejected,
    RunnerOptions,
)
from pipeline.topics import ensure_topics

pytestmark = pytest.mark.requires_kafka


def headers_of(message: Message) -> dict[str, bytes]:
    """A consumed message's headers (all bytes here) as a dict."""
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return {key: value for key, value in pairs if isinstance(value, bytes)}


class ListSink:
    """Decodes {"n": int}; write() appends, or fails while `down`."""

    def __init__(self, stop_after: int | None = None, down: bool = False) -> None:
        self.written: list[int] = []
        self.down = down
        self.stop_after = stop_after
        self.runner: ConsumerRunner | None = None

    def decode(self, message: Message) -> int:
        try:
            return int(json.loads(message.value() or b"")["n"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidMessage(f"not a counter message: {exc}") from exc

    def write(self, items: list[int]) -> None:
        if self.down:
            raise ConnectionError("sink is down")
        self.written.extend(items)
        if self.stop_after is not None and len(self.written) >= self.stop_after and self.runner:
            self.runner.stop()


@pytest.fixture
def kafka(unique_name):
    config = dataclasses.replace(settings.KAFKA, topic_prefix=unique_name)
    ensure_topics(
        admin_client(config), [config.topic("in"), config.topic("dlq.test")], partitions=2, replication_factor=1
    )
    return config


def _spec(kafka) -> ConsumerSpec:
    return ConsumerSpec(
        name="test",
        topics=lambda k: [k.topic("in")],
        group_id=f"{kafka.topic_prefix}-group",
        dlq_topic=lambda k: k.topic("dlq.test"),
        handler_factory=ListSink,
    )


def _produce(kafka, values: list[bytes]) -> None:
    producer = Producer({**kafka.client_config(), "acks": "all"})
    for i, value in enumerate(values):
        producer.produce(kafka.topic("in"), key=str(i % 7).encode(), value=value)
    assert producer.flush(10) == 0


def _runner(kafka, sink: ListSink, **options) -> ConsumerRunner:
    opts = RunnerOptions(
        max_batch_size=options.pop("max_batch_size", 20),
        max_batch_time_ms=100,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.2,
        **options,
    )
    runner = ConsumerRunner(_spec(kafka), kafka, sink, opts)
    sink.runner = runner
    return runner


def _committed(kafka) -> int:
    """Sum of committed offsets of the group over both partitions."""
    consumer = Consumer({**kafka.client_config(), "group.id": f"{kafka.topic_prefix}-group"})
    try:
        parts = consumer.committed([TopicPartition(kafka.topic("in"), p) for p in (0, 1)], timeout=10)
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        consumer.close()


def _topic_size(kafka, topic: str) -> int:
    consumer = Consumer({**kafka.client_config(), "group.id": f"{kafka.topic_prefix}-sizer"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in (0, 1))
    finally:
        consumer.close()


def _read_all(kafka, topic: str, expected: int) -> list[Message]:
    consumer = Consumer(
        {
            **kafka.client_config(),
            "group.id": f"{kafka.topic_prefix}-reader",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    got: list[Message] = []
    try:
        for _ in range(40):
            got.extend(m for m in consumer.consume(100, timeout=0.5) if m.error() is None)
            if len(got) >= expected:
                break
    finally:
        consumer.close()
    return got


def test_writes_every_message_then_commits(kafka) -> None:
    _produce(kafka, [json.dumps({"n": i}).encode() for i in range(100)])
    sink = ListSink(stop_after=100)
    _runner(kafka, sink).run(max_seconds=30)
    assert sorted(sink.written) == list(range(100))
    assert _committed(kafka) == 100


def test_nothing_is_committed_while_the_sink_is_down_and_a_restart_rereads_it(kafka) -> None:
    _produce(kafka, [json.dumps({"n": i}).encode() for i in range(30)])
    down = ListSink(down=True)
    _runner(kafka, down).run(max_seconds=6)
    assert down.written == [] and _committed(kafka) == 0

    up = ListSink(stop_after=30)
    _runner(kafka, up).run(max_seconds=30)
    assert sorted(up.written) == list(range(30))
    assert _committed(kafka) == 30


def test_negative_control_commit_before_write_loses_the_batch(kafka) -> None:
    _produce(kafka, [json.dumps({"n": i}).encode() for i in range(30)])
    down = ListSink(down=True)
    _runner(kafka, down, faults=Faults(commit_before_write=True)).run(max_seconds=6)
    # the switch committed offsets nothing was written for: a restart would skip them
    assert down.written == [] and _committed(kafka) > 0


def test_poison_message_goes_to_the_dlq_with_its_reason_and_the_partition_flows(kafka) -> None:
    values = [json.dumps({"n": i}).encode() for i in range(40)]
    values[17] = b"\xff not json"
    _produce(kafka, values)
    sink = ListSink(stop_after=39)
    _runner(kafka, sink).run(max_seconds=30)
    assert sorted(sink.written) == [i for i in range(40) if i != 17]
    assert _committed(kafka) == 40

    [dead] = _read_all(kafka, kafka.topic("dlq.test"), 1)
    headers = headers_of(dead)
    assert dead.value() == b"\xff not json"
    assert b"not a counter message" in headers["error"]
    assert headers["source_topic"] == kafka.topic("in").encode()
    assert int(headers["source_offset"]) >= 0 and headers["source_partition"] in {b"0", b"1"}


def test_a_flood_of_garbage_stops_the_consumer_with_a_clear_error(kafka) -> None:
    values = [json.dumps({"n": i}).encode() for i in range(200)]
    for i in range(0, 200, 10):
        values[i] = b"garbage"  # 10 %
    _produce(kafka, values)
    sink = ListSink()
    with pytest.raises(DeadLetterFlood, match=r"messages in one batch are invalid"):
        _runner(kafka, sink, max_batch_size=200).run(max_seconds=30)
    assert sink.written == [] and _committed(kafka) == 0
    assert _topic_size(kafka, kafka.topic("dlq.test")) == 0


def test_consecutive_garbage_trips_the_guard_even_in_small_batches(kafka) -> None:
    _produce(kafka, [b"garbage"] * 60)
    with pytest.raises(DeadLetterFlood, match="invalid messages in a row"):
        _runner(kafka, ListSink(), dlq_max_consecutive=50, max_batch_size=5).run(max_seconds=30)


class RefusingSink(ListSink):
    """Refuses (RowsRejected) any write holding a value in `refused`, as ClickHouse
    refuses a block with one value its column cannot hold; fails (an outage) any
    write holding a value in `broken`."""

    def __init__(
        self, refused: AbstractSet[int] = frozenset(), broken: AbstractSet[int] = frozenset(), **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.refused, self.broken = refused, broken
        self.attempts = 0

    def write(self, items: list[int]) -> None:
        self.attempts += 1
        if self.refused & set(items):
            raise RowsRejected(f"Column n: {sorted(self.refused & set(items))[0]} does not fit")
        if self.broken & set(items):
            raise ConnectionError("sink is down for this batch")
        super().write(items)


def _produce_in_order(kafka, values: list[bytes]) -> None:
    """One key: every message in one partition, in this order."""
    producer = Producer({**kafka.client_config(), "acks": "all"})
    for value in values:
        producer.produce(kafka.topic("in"), key=b"one", value=value)
    assert producer.flush(10) == 0


def test_rows_the_sink_refuses_are_isolated_and_dead_lettered_and_the_rest_is_written(kafka) -> None:
    # issue 12: one row ClickHouse refuses used to fail its batch's insert for ever
    _produce_in_order(kafka, [json.dumps({"n": i}).encode() for i in range(40)])
    sink = RefusingSink(refused={13, 27}, stop_after=38)
    _runner(kafka, sink, max_batch_size=40).run(max_seconds=30)
    assert sorted(sink.written) == [i for i in range(40) if i not in (13, 27)]
    assert len(sink.written) == len(set(sink.written))  # halves are written once each
    assert _committed(kafka) == 40
    dead = sorted(_read_all(kafka, kafka.topic("dlq.test"), 2), key=lambda m: int(headers_of(m)["source_offset"]))
    assert [json.loads(m.value() or b"")["n"] for m in dead] == [13, 27]
    assert headers_of(dead[0])["error"] == b"rejected by the sink: Column n: 13 does not fit"


def test_an_outage_is_retried_not_dead_lettered(kafka) -> None:
    _produce_in_order(kafka, [json.dumps({"n": i}).encode() for i in range(10)])
    sink = RefusingSink(broken={3})
    _runner(kafka, sink).run(max_seconds=4)
    assert sink.attempts > 3 and sink.written == [] and _committed(kafka) == 0
    assert _topic_size(kafka, kafka.topic("dlq.test")) == 0


def test_nothing_behind_a_batch_that_gave_up_is_written(kafka) -> None:
    # issue 12: batch N gave up at the stop while N+1 was already queued behind
    # it, and N+1 was written: with offsets kept in the sink, the next start
    # seeks past N+1 and N is lost
    _produce_in_order(kafka, [json.dumps({"n": i}).encode() for i in range(60)])
    sink = RefusingSink(broken={0})  # the first batch can never be written
    runner = _runner(kafka, sink, max_batch_size=10)
    runner.run(max_seconds=4)
    assert sink.attempts > 1 and sink.written == []
    assert _committed(kafka) == 0


def test_lag_counts_what_the_member_holds_unwritten(kafka) -> None:
    # issue 12: lag was the log's end minus the fetch position, so messages read
    # into a batch the sink could not take showed as no lag at all
    from prometheus_client import REGISTRY

    _produce_in_order(kafka, [json.dumps({"n": i}).encode() for i in range(10)])
    seen: list[float | None] = []

    class Watching(RefusingSink):
        def write(self, items: list[int]) -> None:
            seen.append(
                max(
                    (
                        REGISTRY.get_sample_value(
                            "consumer_lag", {"consumer": "test", "topic": kafka.topic("in"), "partition": str(p)}
                        )
                        or 0
                    )
                    for p in (0, 1)
                )
            )
            super().write(items)

    _runner(kafka, Watching(broken={3}), lag_interval_seconds=0.05).run(max_seconds=4)
    assert seen and seen[-1] == 10
