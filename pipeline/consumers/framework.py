"""The consumer framework every Nova consumer runs on.

A consumer is a `ConsumerSpec` (registry in pipeline/consumers/__init__.py) plus
a handler that knows its messages and its sink. The runner owns Kafka:

1. subscribe, with rebalance callbacks; on assignment the handler may choose
   start offsets (`seek_positions`, for offsets kept in the sink);
2. poll messages into a batch: `handler.decode` each one; `InvalidMessage`
   (or any exception: decode is pure, so an exception there is bad input)
   puts it on the dead-letter list;
3. when the batch is full or old enough, flush it:
   a. produce the dead letters and wait until the broker acknowledged them
      (before the write: a crash after the write would otherwise lose them,
      as the next start seeks past the written offsets);
   b. `handler.write(items)`: retried with backoff until it succeeds (an
      outage of the sink never dead-letters good data); if the sink refuses
      rows for what they hold (`RowsRejected`), the batch is halved until the
      refused rows stand alone: those are dead-lettered with the sink's
      message, the rest is written, in offset order;
   c. commit the batch's offsets, synchronously, with what the optional
      `handler.commit_metadata(topic, partition)` said when the batch was
      handed over (events: the topic generation the offsets belong to);
   an optional `handler.prepare(items)` runs first on a prepare thread, a and
   b on a writer thread, while the next batch is polled and decoded (at most
   two batches in flight, prepared and written in order; a batch is not
   written if the one before it gave up); c runs on the consumer's thread
   once a and b returned;
4. every 30 s, `handler.check_sources` (optional) may report
   partitions whose log was replaced (topic recreated) and where to restart;
5. on revoke, flush before the partitions go; if that fails, drop the batch
   uncommitted (the next owner re-reads it: sinks are replay-safe);
   on a lost assignment (evicted: frozen past the session timeout, or no poll
   for max.poll.interval.ms), another member already owns the partitions and
   writes from the sink's position: abandon everything unwritten, the batch
   being built and those in flight (a write checks its batch was handed over
   under the current assignment), instead of writing it a second time;
6. on SIGTERM/SIGINT, stop polling, flush once, close.

Offsets are committed only in step 3c (`enable.auto.commit=false`,
`enable.auto.offset.store=false`), so every committed message has been written
or dead-lettered: at-least-once delivery, made exactly-once by the sinks.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from monitoring import metrics
from nova.config import KafkaConfig
from pipeline.consumers.faults import NONE as NO_FAULTS
from pipeline.consumers.faults import Faults

logger = logging.getLogger(__name__)

T = TypeVar("T")
# batches between the consumer's thread and the sink: one being prepared, one written
MAX_IN_FLIGHT = 2


class InvalidMessage(Exception):
    """A message that can never be processed: it goes to the dead-letter topic."""


class DeadLetterFlood(Exception):
    """Too many invalid messages: stop rather than drain a topic into the DLQ."""


class _Fenced(Exception):
    """The batch was handed over before the member lost its partitions: never write it."""


class RowsRejected(Exception):
    """Raised by `handler.write`: the sink refused these rows for what they hold.

    Not an outage: the same rows would fail the same way for ever. The runner
    splits the batch to find the refused rows and dead-letters them with this
    message. Anything else a write raises is taken for an outage and retried.
    """


class Handler(Protocol[T]):
    def decode(self, message: Message) -> T:
        """Turn one message into an item, or raise InvalidMessage. No I/O."""

    def write(self, items: list[T]) -> int | None:
        """Write a batch to the sink; raise on infrastructure failure (retried),
        RowsRejected when the sink refuses the rows themselves. Returns how many
        rows it wrote (None: all; fewer when it drops duplicates).

        A handler may also have any of the hooks below (the runner checks with
        isinstance). prepare, write and decode run on three threads at once:
        they must not share mutable state.
        """


@runtime_checkable
class Prepares(Protocol):
    def prepare(self, items: list[Any]) -> Any:
        """Run on the prepare thread (retried like write) while the previous batch is being
        written; `write` gets what it returns (events: the dedup marks)."""


@runtime_checkable
class KeepsPositions(Protocol):
    def seek_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """On assignment: where each partition starts (offsets kept in the sink)."""


@runtime_checkable
class ChecksSources(Protocol):
    def check_sources(self, assigned: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Every source_check_interval_seconds: partitions whose log was replaced, and where to restart."""


@runtime_checkable
class NamesCommits(Protocol):
    def commit_metadata(self, topic: str, partition: int) -> str:
        """Committed with the partition's offset (events: the topic generation)."""


@dataclass(frozen=True)
class ConsumerSpec:
    """One registry entry: what `manage.py run_consumer NAME` runs."""

    name: str
    topics: Callable[[KafkaConfig], list[str]]
    group_id: str
    dlq_topic: Callable[[KafkaConfig], str]
    handler_factory: Callable[[], Handler[Any]]
    max_batch_size: int = 10_000
    max_batch_time_ms: int = 500
    # where a group without committed offsets starts: never skip data
    auto_offset_reset: str = "earliest"
    # librdkafka settings for this consumer only (e.g. a short fetch.wait.max.ms
    # for a latency-bound consumer)
    consumer_overrides: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RunnerOptions:
    """Tuning knobs, with the limits of the DLQ-drain guard.

    The ratio rule only applies to batches of at least `dlq_ratio_min_batch`
    messages, so one bad message in a quiet moment (a batch of one) is dead-
    lettered instead of stopping the consumer; a slow flood still trips the
    consecutive rule.
    """

    max_batch_size: int
    max_batch_time_ms: int
    dlq_max_ratio: float = 0.01
    dlq_ratio_min_batch: int = 100
    dlq_max_consecutive: int = 1000
    retry_initial_seconds: float = 0.2
    retry_max_seconds: float = 5.0
    revoke_flush_attempts: int = 3
    lag_interval_seconds: float = 5.0
    # how often a handler with `check_sources` verifies that it still reads the
    # log it was reading (a topic recreated under a running consumer); a check
    # blocks the loop for a few small fetches (~0.3 s for 6 partitions here)
    source_check_interval_seconds: float = 30.0
    poll_timeout_seconds: float = 0.1
    # TEST-ONLY fault injection (pipeline/consumers/faults.py); the runner reads commit_before_write
    faults: Faults = NO_FAULTS


@dataclass
class _Batch(Generic[T]):
    items: list[T] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)  # the message of each item (to dead-letter it)
    dead_letters: list[tuple[Message, str]] = field(default_factory=list)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    commit_metadata: dict[tuple[str, int], str] = field(default_factory=dict)  # from `handler.commit_metadata`
    dead_lettered: int = 0  # already acknowledged by the DLQ (a retried flush sends none twice)
    prepared: Any = None  # what `handler.prepare(items)` returned (else the items): what `write` gets
    written: int = 0  # rows the sink took (items minus dropped duplicates and rejected rows)
    rejected: int = 0  # items the sink refused, dead-lettered
    epoch: int = 0  # the runner's assignment epoch when the batch was handed to the writer
    size: int = 0
    started: float = 0.0

    @property
    def dead_letter_count(self) -> int:
        return self.dead_lettered + len(self.dead_letters)

    def add(self, message: Message, now: float) -> None:
        if self.size == 0:
            self.started = now
        self.size += 1
        topic, partition, offset = position(message)
        self.first_offsets.setdefault((topic, partition), offset)
        self.next_offsets[(topic, partition)] = offset + 1


def position(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed message. confluent-kafka types them
    as optional (a message it builds for an error has none); a message a
    consumer hands out for a partition always has all three."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError(f"a consumed message without a position: {topic!r} [{partition!r}] @ {offset!r}")
    return topic, partition, offset


def tune_gc_for_batches() -> None:
    """Make the garbage collector fit a process that builds big, short-lived batches.

    A batch allocates several containers per message (decoded dicts, row
    tuples, ids); with the default threshold (700) CPython runs a young
    collection every ~150 messages and regularly a full one that walks every
    live batch: measured here, about a quarter of the events consumer's CPU.
    Objects that live as long as the process (modules, settings, clients) are
    frozen out of the collector's view; the rows themselves hold no cycles.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 1000)


def dead_letter_headers(message: Message, reason: str) -> list[tuple[str, str | bytes | None]]:
    """Dead letters (docs/architecture/consumers.md): the original bytes with the headers
    error, source_topic, source_partition, source_offset."""
    topic, partition, offset = position(message)
    return [
        *(message.headers() or []),
        ("error", reason.encode("utf-8", "replace")[:2000]),
        ("source_topic", topic.encode()),
        ("source_partition", str(partition).encode()),
        ("source_offset", str(offset).encode()),
    ]


class ConsumerRunner(Generic[T]):
    def __init__(
        self,
        spec: ConsumerSpec,
        kafka: KafkaConfig,
        handler: Handler[T],
        options: RunnerOptions,
        *,
        consumer_overrides: dict[str, object] | None = None,
        consumer_factory: Callable[[dict[str, object]], Consumer] = Consumer,
        producer_factory: Callable[[dict[str, object]], Producer] = Producer,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """The Kafka clients come from the factories and time from `clock` (tests pass
        stand-ins to check the runner's rules without a broker)."""
        self.spec = spec
        self.clock = clock
        self.kafka = kafka
        self.handler = handler
        self.options = options
        self.stopping = False
        self._deadline: float | None = None
        self._consecutive_invalid = 0
        self._batch: _Batch[T] = _Batch()
        # batches handed to the prepare/writer threads, oldest first: (batch, started, future of its write)
        self._in_flight: deque[tuple[_Batch[T], float, Future[bool]]] = deque()
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{spec.name}-prepare")
        self._write_gave_up = False
        # goes up when the assignment is lost: batches of an older epoch are not written
        self._epoch = 0
        self._abandoned: list[Future[bool]] = []  # writes of a lost assignment, maybe still running
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{spec.name}-writer")
        self._last_lag_check = 0.0
        self._last_source_check = clock()
        self.consumer = consumer_factory(
            {
                **kafka.client_config(),
                "group.id": spec.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": spec.auto_offset_reset,
                "session.timeout.ms": kafka.session_timeout_ms,
                "enable.partition.eof": False,
                **spec.consumer_overrides,
                **(consumer_overrides or {}),
            }
        )
        self.dlq_producer = producer_factory(
            {
                **kafka.client_config(),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )
        self.dlq_topic = spec.dlq_topic(kafka)

    # ------------------------------------------------------------------ loop
    def run(self, max_seconds: float | None = None) -> None:
        """Consume until stopped (SIGTERM/SIGINT, `stop()`, or max_seconds)."""
        self._deadline = None if max_seconds is None else self.clock() + max_seconds
        self.consumer.subscribe(
            self.spec.topics(self.kafka), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        try:
            while not self.stop_requested:
                self.poll_step()
                if self._batch_due():
                    self.flush(wait=False)
                else:
                    self._finish_in_flight(block=False)
                self.report_lag()
                self.check_sources()
            self.flush(attempts=self.options.revoke_flush_attempts)
        except BaseException:
            # stopping on an error: the batch being built stays uncommitted
            # (and is not flushed by the revoke that close() triggers)
            self._batch = _Batch()
            raise
        finally:
            self.consumer.close()
            self._preparer.shutdown(wait=True)
            self._writer.shutdown(wait=True)
            self.dlq_producer.flush(5)

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def stop(self) -> None:
        self.stopping = True

    @property
    def stop_requested(self) -> bool:
        return self.stopping or (self._deadline is not None and self.clock() >= self._deadline)

    # ------------------------------------------------------------------ steps
    def poll_step(self) -> None:
        room = self.options.max_batch_size - self._batch.size
        messages = self.consumer.consume(num_messages=max(room, 1), timeout=self.options.poll_timeout_seconds)
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                logger.warning("%s: consumer error: %s", self.spec.name, error)
                continue
            self._batch.add(message, self.clock())
            try:
                self._batch.items.append(self.handler.decode(message))
                self._batch.messages.append(message)
                self._consecutive_invalid = 0
            except Exception as exc:  # decode is pure: any failure is bad input
                reason = str(exc) if isinstance(exc, InvalidMessage) else f"{type(exc).__name__}: {exc}"
                self._batch.dead_letters.append((message, reason))
                self._consecutive_invalid += 1
                if self._consecutive_invalid > self.options.dlq_max_consecutive:
                    raise DeadLetterFlood(
                        f"{self.spec.name}: more than {self.options.dlq_max_consecutive} invalid messages in a row "
                        f"(last at {message.topic()}[{message.partition()}]@{message.offset()}: {reason}); "
                        "stopping instead of draining the topic into the DLQ"
                    ) from exc

    def _batch_due(self) -> bool:
        batch = self._batch
        if batch.size == 0:
            return False
        if batch.size >= self.options.max_batch_size:
            return True
        return (self.clock() - batch.started) * 1000 >= self.options.max_batch_time_ms

    def flush(self, attempts: int | None = None, wait: bool = True) -> bool:
        """Prepare, write, dead-letter, commit. Returns False if it gave up (attempts ran out).

        With `wait=False` (the main loop) the batch goes down a pipeline while
        the next one is polled and decoded: `handler.prepare` on the prepare
        thread (events: the dedup marks), then `handler.write` and the dead
        letters on the writer thread. At most MAX_IN_FLIGHT batches are in
        it; they are prepared and written in order, and each is committed here
        (the consumer's thread) only after its write returned. The sink's waits
        (Redis, ClickHouse) then overlap with decoding instead of adding to it.
        """
        if self._write_gave_up:
            return False
        batch = self._batch
        if batch.size == 0:
            return self._finish_in_flight(attempts)
        self._check_dead_letter_ratio(batch)
        if self.options.faults.commit_before_write:
            if not self._finish_in_flight(attempts) or not self._prepare(batch, attempts):
                return False
            self._batch = _Batch()
            self._hand_over(batch)
            self._commit(batch)
            if not self._write_batch(batch, attempts):
                return False
            self._batch_done(batch, self.clock())
            return True
        while len(self._in_flight) >= MAX_IN_FLIGHT:
            if not self._finish_oldest(attempts):
                return False
        self._batch = _Batch()
        self._hand_over(batch)
        previous = self._in_flight[-1][2] if self._in_flight else None
        prepared = self._preparer.submit(self._prepare, batch, attempts)
        written = self._writer.submit(self._write_prepared, batch, prepared, previous, attempts)
        self._in_flight.append((batch, self.clock(), written))
        return self._finish_in_flight(attempts) if wait else True

    def _hand_over(self, batch: _Batch[T]) -> None:
        """On the consumer's thread, as the batch leaves it: what its commit will say."""
        batch.epoch = self._epoch
        if isinstance(self.handler, NamesCommits):
            batch.commit_metadata = {key: self.handler.commit_metadata(*key) for key in batch.next_offsets}

    def _prepare(self, batch: _Batch[T], attempts: int | None) -> bool:
        if batch.prepared is not None:
            return True
        if not isinstance(self.handler, Prepares):
            batch.prepared = batch.items
            return True
        prepare = self.handler.prepare

        def run() -> None:
            batch.prepared = prepare(batch.items)

        return not batch.items or self._retry(run, "prepare", attempts)

    def _write_prepared(
        self, batch: _Batch[T], prepared: Future[bool], previous: Future[bool] | None, attempts: int | None
    ) -> bool:
        # a batch that gave up leaves its offsets unwritten: writing the one
        # behind it would move the sink's offsets past them, and the next start
        # (which seeks past the sink's offsets) would never read them again
        if previous is not None and not previous.result():
            return False
        return prepared.result() and self._write_batch(batch, attempts)

    def _write_batch(self, batch: _Batch[T], attempts: int | None) -> bool:
        """The sink's part of a flush (the writer thread): dead letters, then the write."""
        try:
            if not self._dead_letter(batch, attempts):
                return False
            return not batch.items or self._write_span(batch, 0, len(batch.items), attempts)
        except _Fenced:
            logger.warning("%s: assignment lost; a batch of %d messages is left unwritten", self.spec.name, batch.size)
            return False

    def _write_span(self, batch: _Batch[T], start: int, end: int, attempts: int | None) -> bool:
        """Write items[start:end]; if the sink refuses them, halve until the refused rows stand alone.

        Halves are written in order, so each partition's offsets are written
        or dead-lettered from low to high (the sink's offsets never pass a row
        that is neither). A span is prepared again (events: its marks are the
        span's own, a replay) unless it is the whole batch.
        """
        payload: list[Any] = []  # prepared once: a retry passes the same object (events: it knows it was tried)

        def write() -> None:
            self._check_owner(batch)
            if not payload:
                whole = start == 0 and end == len(batch.items)
                payload.append(batch.prepared if whole else self._prepared_items(batch.items[start:end]))
            written = self.handler.write(payload[0])
            batch.written += end - start if written is None else written

        try:
            return self._retry(write, "write", attempts, passes=(RowsRejected, _Fenced))
        except RowsRejected as exc:
            if end - start > 1:
                middle = (start + end) // 2
                return self._write_span(batch, start, middle, attempts) and self._write_span(
                    batch, middle, end, attempts
                )
            dead_letter = (batch.messages[start], f"rejected by the sink: {exc}")
            self._check_dead_letter_ratio(batch, dead_letter)
            batch.rejected += 1
            batch.dead_letters.append(dead_letter)
            return self._dead_letter(batch, attempts)

    def _prepared_items(self, items: list[T]) -> Any:
        return self.handler.prepare(items) if isinstance(self.handler, Prepares) else items

    def _dead_letter(self, batch: _Batch[T], attempts: int | None) -> bool:
        def send() -> None:
            self._check_owner(batch)
            self._send_dead_letters(batch)

        return not batch.dead_letters or self._retry(send, "dead-letter", attempts, passes=(_Fenced,))

    def _check_owner(self, batch: _Batch[T]) -> None:
        """Before each attempt: raise _Fenced if the assignment the batch was read under is lost."""
        if batch.epoch != self._epoch:
            raise _Fenced()

    def _finish_in_flight(self, attempts: int | None = None, block: bool = True) -> bool:
        """Commit the batches in flight whose writes returned, oldest first (all of
        them if `block`). False: a write gave up, see `_finish_oldest`."""
        while self._in_flight:
            if not block and not self._in_flight[0][2].done():
                return True
            if not self._finish_oldest(attempts):
                return False
        return True

    def _finish_oldest(self, attempts: int | None) -> bool:
        batch, started, written = self._in_flight.popleft()
        if not written.result():
            # Never commit past a batch that was not written: nothing more is
            # written or committed until a rebalance hands out fresh positions
            # (or the process stops and the next one replays from the commits).
            self._write_gave_up = True
            self._in_flight.clear()  # later batches may not commit either
            return False
        self._commit(batch)
        self._batch_done(batch, started)
        return True

    def _batch_done(self, batch: _Batch[T], started: float) -> None:
        name = self.spec.name
        metrics.CONSUMER_MESSAGES.labels(name, "written").inc(batch.written)
        # duplicates the handler dropped (events: client retries)
        metrics.CONSUMER_MESSAGES.labels(name, "dropped").inc(len(batch.items) - batch.written - batch.rejected)
        metrics.CONSUMER_MESSAGES.labels(name, "dead_lettered").inc(batch.dead_letter_count)
        metrics.CONSUMER_BATCH_SIZE.labels(name).observe(batch.size)
        metrics.CONSUMER_BATCH_DURATION.labels(name).observe(self.clock() - started)

    def _check_dead_letter_ratio(self, batch: _Batch[T], rejected: tuple[Message, str] | None = None) -> None:
        """Raise DeadLetterFlood if the batch's dead letters (with one more row the sink `rejected`) are too many."""
        invalid = batch.dead_letter_count + (rejected is not None)
        if batch.size >= self.options.dlq_ratio_min_batch and invalid > self.options.dlq_max_ratio * batch.size:
            example = batch.dead_letters[0] if batch.dead_letters else rejected
            where = ""
            if example is not None:  # none when every dead letter of the batch was already sent
                topic, partition, offset = position(example[0])
                where = f"; first unsent at {topic}[{partition}]@{offset}: {example[1]}"
            raise DeadLetterFlood(
                f"{self.spec.name}: {invalid} of {batch.size} messages in one batch are invalid "
                f"(> {self.options.dlq_max_ratio:.0%}{where}); stopping instead of draining the topic into the DLQ"
            )

    def _retry(
        self, action: Callable[[], None], what: str, attempts: int | None, passes: tuple[type[Exception], ...] = ()
    ) -> bool:
        """Run `action` until it succeeds; False if attempts ran out or a stop came.
        `passes`: exceptions that are no failure of the sink, raised to the caller."""
        delay = self.options.retry_initial_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                action()
                return True
            except Exception as exc:
                if isinstance(exc, passes):
                    raise
                metrics.CONSUMER_WRITE_ERRORS.labels(self.spec.name).inc()
                logger.exception("%s: %s failed (attempt %d); retrying in %.1fs", self.spec.name, what, attempt, delay)
                if self.stop_requested or (attempts is not None and attempt >= attempts):
                    return False
                time.sleep(delay)
                delay = min(delay * 2, self.options.retry_max_seconds)

    def _send_dead_letters(self, batch: _Batch[T]) -> None:
        failures: list[str] = []

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        for message, reason in batch.dead_letters:
            self.dlq_producer.produce(
                self.dlq_topic,
                key=message.key(),
                value=message.value(),
                headers=dead_letter_headers(message, reason),
                on_delivery=on_delivery,
            )
        remaining = self.dlq_producer.flush(30)
        if remaining or failures:
            raise RuntimeError(f"DLQ {self.dlq_topic}: {remaining} unacknowledged, errors: {failures[:3]}")
        for message, reason in batch.dead_letters:
            logger.warning(
                "%s: dead-lettered %s[%d]@%d: %s",
                self.spec.name,
                message.topic(),
                message.partition(),
                message.offset(),
                reason,
            )
        metrics.DLQ_MESSAGES.labels(self.spec.name, self.dlq_topic).inc(len(batch.dead_letters))
        # only the DLQ copies of *this* batch were acknowledged; a later retry
        # of the same batch must not produce them again
        batch.dead_lettered += len(batch.dead_letters)
        batch.dead_letters = []

    def _commit(self, batch: _Batch[T]) -> None:
        offsets = [
            TopicPartition(topic, partition, offset, batch.commit_metadata.get((topic, partition), ""))
            for (topic, partition), offset in batch.next_offsets.items()
        ]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The batch is written; a refused commit (we lost the partition in a
            # rebalance) only means its next owner replays it into replay-safe sinks.
            metrics.CONSUMER_COMMIT_ERRORS.labels(self.spec.name).inc()
            logger.warning("%s: commit refused: %s", self.spec.name, exc)

    # ------------------------------------------------------------------ rebalance
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # the handler's seek reads its sink: nothing of ours may still be writing to it
        self._finish_in_flight(self.options.revoke_flush_attempts)
        for abandoned in self._abandoned:
            abandoned.exception()  # waits; an insert already under way when the loss came ends first
        self._abandoned = []
        if not isinstance(self.handler, KeepsPositions):
            return
        positions = self.handler.seek_positions(consumer, partitions)
        if positions:
            for tp in partitions:
                if (tp.topic, tp.partition) in positions:
                    tp.offset = positions[(tp.topic, tp.partition)]
            consumer.assign(partitions)
        logger.info("%s: assigned %s", self.spec.name, [(tp.topic, tp.partition, tp.offset) for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        if not self.flush(attempts=self.options.revoke_flush_attempts):
            logger.warning("%s: could not flush before revoke; dropping the batch uncommitted", self.spec.name)
            self._batch = _Batch()
            # eager rebalancing: every partition goes, and the next assignment
            # starts from committed (or sink) offsets, behind anything dropped
            self._write_gave_up = False
        self._forget_lag(revoked)
        logger.info("%s: revoked %s", self.spec.name, sorted(revoked))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Evicted: the partitions may already be another member's, which writes from the sink's
        position. Writing (or committing) our unwritten batches now would write them twice."""
        lost = {(tp.topic, tp.partition) for tp in partitions}
        self._epoch += 1
        dropped = self._batch.size + sum(batch.size for batch, _started, _written in self._in_flight)
        self._abandoned += [written for _batch, _started, written in self._in_flight]
        self._in_flight.clear()
        self._batch = _Batch()
        self._write_gave_up = False
        self._forget_lag(lost)
        logger.warning(
            "%s: assignment LOST %s: %d messages read and not yet written are abandoned (the next owner reads them)",
            self.spec.name,
            sorted(lost),
            dropped,
        )

    def _forget_lag(self, partitions: set[tuple[str, int]]) -> None:
        for topic, partition in partitions:
            try:
                metrics.CONSUMER_LAG.remove(self.spec.name, topic, str(partition))
            except KeyError:
                pass

    # ------------------------------------------------------------------ sources
    def check_sources(self) -> None:
        """Ask the handler whether a partition's log was replaced; seek where it says.

        The broker does not always tell: a recreated topic whose new log is
        still shorter than our position just looks idle (tansu), or longer,
        looks normal. Handlers that keep offsets in their sink must not miss it.
        """
        now = self.clock()
        if (
            not isinstance(self.handler, ChecksSources)
            or now - self._last_source_check < self.options.source_check_interval_seconds
        ):
            return
        self._last_source_check = now
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for (topic, partition), offset in self.handler.check_sources(assigned).items():
            self.consumer.seek(TopicPartition(topic, partition, offset))
            logger.warning("%s: %s[%d]: seeking to %d", self.spec.name, topic, partition, offset)

    # ------------------------------------------------------------------ lag
    def report_lag(self) -> None:
        now = self.clock()
        if now - self._last_lag_check < self.options.lag_interval_seconds:
            return
        self._last_lag_check = now
        # read but not yet written: held in memory, still lag (a crash re-reads it)
        unwritten: dict[tuple[str, int], int] = {}
        for batch in [self._batch, *(batch for batch, _started, _written in self._in_flight)]:
            for key, offset in batch.first_offsets.items():
                unwritten[key] = min(offset, unwritten.get(key, offset))
        try:
            assignment = self.consumer.assignment()
            for tp in self.consumer.position(assignment):
                if tp.offset < 0:
                    continue
                _low, high = self.consumer.get_watermark_offsets(tp, timeout=1.0, cached=False)
                done = min(tp.offset, unwritten.get((tp.topic, tp.partition), tp.offset))
                # the local broker (tansu) may report a high watermark short of what we already read
                end = max(high, tp.offset)
                metrics.CONSUMER_LAG.labels(self.spec.name, tp.topic, str(tp.partition)).set(end - done)
        except KafkaException as exc:
            logger.debug("%s: lag check failed: %s", self.spec.name, exc)
