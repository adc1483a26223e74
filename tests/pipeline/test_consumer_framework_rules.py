"""The runner's fencing rule and what it commits, without a broker: the runner's
Kafka clients are stand-ins from its factories (commits are recorded), batches
are put together by hand, and the sink is a list whose writes can be held at a
gate, so the test decides what is in flight when the assignment is lost."""

from __future__ import annotations

import threading
from typing import cast

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from django.conf import settings

from pipeline.consumers.framework import ConsumerRunner, ConsumerSpec, RunnerOptions, position

TOPIC = "rules.in"


class FakeMessage:
    def __init__(self, offset: int, partition: int = 0) -> None:
        self._offset, self._partition = offset, partition

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """The runner's consumer where no broker is asked: commits are recorded."""

    def __init__(self, config: dict[str, object]) -> None:
        self.config = config
        self.commits: list[list[tuple[str, int, int, str | None]]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        self.commits.append([(tp.topic, tp.partition, tp.offset, tp.metadata) for tp in offsets])

    def close(self) -> None:
        pass


class NoProducer:
    def __init__(self, config: dict[str, object]) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return 0


class GatedSink:
    """write() appends; the first write waits at `gate` (it is under way when the test acts)."""

    def __init__(self) -> None:
        self.written: list[list[int]] = []
        self.gate = threading.Event()
        self.first_write_started = threading.Event()

    def decode(self, message: Message) -> int:
        return position(message)[2]

    def commit_metadata(self, topic: str, partition: int) -> str:
        return f"generation={partition + 7}"

    def write(self, items: list[int]) -> None:
        if not self.first_write_started.is_set():
            self.first_write_started.set()
            assert self.gate.wait(10)
        self.written.append(list(items))


def _runner(sink: GatedSink) -> tuple[ConsumerRunner, FakeConsumer]:
    spec = ConsumerSpec(
        name="rules",
        topics=lambda k: [TOPIC],
        group_id="rules",
        dlq_topic=lambda k: "rules.dlq",
        handler_factory=GatedSink,
    )
    options = RunnerOptions(max_batch_size=10, max_batch_time_ms=100, retry_initial_seconds=0.01)
    made: list[FakeConsumer] = []

    def consumer(config: dict[str, object]) -> Consumer:
        made.append(FakeConsumer(config))
        return cast(Consumer, made[-1])  # a stand-in: only what this test drives exists

    def producer(config: dict[str, object]) -> Producer:
        return cast(Producer, NoProducer(config))  # idem: nothing is dead-lettered here

    runner = ConsumerRunner(spec, settings.KAFKA, sink, options, consumer_factory=consumer, producer_factory=producer)
    return runner, made[0]


def _read(runner: ConsumerRunner, offsets: range) -> None:
    for offset in offsets:
        message = cast(Message, FakeMessage(offset))  # a stand-in with a position only
        runner._batch.add(message, runner.clock())
        runner._batch.items.append(runner.handler.decode(message))
        runner._batch.messages.append(message)


def test_a_lost_assignment_abandons_what_was_read_and_not_yet_written() -> None:
    # issue 12: an evicted member (frozen past the session timeout) thawed and wrote
    # its in-flight batches, then its current one in the revoke: all were also read
    # and written by the partitions' new owner
    sink = GatedSink()
    runner, consumer = _runner(sink)
    try:
        _read(runner, range(10))
        assert runner.flush(wait=False)
        assert sink.first_write_started.wait(10)  # batch 1 is being written
        _read(runner, range(10, 20))
        assert runner.flush(wait=False)  # batch 2 queued behind it
        _read(runner, range(20, 25))  # batch 3 being built

        runner._on_lost(runner.consumer, [TopicPartition(TOPIC, 0)])
        sink.gate.set()
        runner._on_assign(runner.consumer, [])  # waits for the abandoned writes to end

        # batch 1's insert was already under way (no client can take it back); 2 and 3 are not written
        assert sink.written == [list(range(10))]
        assert runner.flush()  # nothing left to write or commit
        assert sink.written == [list(range(10))]

        # the new assignment's batches are written as usual
        _read(runner, range(30, 33))
        assert runner.flush()
        assert sink.written == [list(range(10)), [30, 31, 32]]
        # committed with what the handler says of the partition (events: its topic generation)
        assert consumer.commits == [[(TOPIC, 0, 33, "generation=7")]]
    finally:
        sink.gate.set()
        runner._writer.shutdown(wait=True)
        runner._preparer.shutdown(wait=True)
    # the group settings the runner always sets
    assert consumer.config["enable.auto.commit"] is False
    assert consumer.config["enable.auto.offset.store"] is False
