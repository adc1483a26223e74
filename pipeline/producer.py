"""The events producer: one per process, and a batch is only "taken" when the
broker acknowledged every message of it.

Idempotent (`enable.idempotence`: no duplicates or reordering from librdkafka's
own retries), `acks=all`, lz4-compressed, keyed by user id (one user's events
stay ordered in one partition). A message that times out in the local queue may
still be delivered later; the API has then answered 503 and the client retries
with the same event_ids, which the consumer's dedup makes harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from monitoring import metrics
from nova.config import KafkaConfig

logger = logging.getLogger(__name__)


class PublishFailed(Exception):
    """The broker did not acknowledge the whole batch in time (or refused some)."""


@dataclass
class _Delivery:
    expected: int
    acked: int = 0
    errors: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    # callbacks run in whichever request thread happens to call poll(), so two
    # threads may report on the same batch at once
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        with self.lock:
            if err is None:
                self.acked += 1
            else:
                self.errors.append(str(err))
            finished = self.acked + len(self.errors) >= self.expected
        if err is not None:
            metrics.EVENTS_PRODUCE_FAILURES.labels("delivery_error").inc()
        if finished:
            self.done.set()


def producer_config(kafka: KafkaConfig, queue_max_messages: int) -> dict[str, object]:
    return {
        **kafka.client_config(),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
        "queue.buffering.max.messages": queue_max_messages,
        # a frozen broker must not pin requests: the API waits for at most its
        # own timeout; the message itself may be delivered later (then deduped)
        "message.timeout.ms": 120_000,
    }


class EventPublisher:
    def __init__(self, kafka: KafkaConfig, topic: str, queue_max_messages: int) -> None:
        self.topic = topic
        self.producer = Producer(producer_config(kafka, queue_max_messages))

    def publish(self, messages: list[tuple[bytes, bytes]], timeout: float) -> None:
        """Produce (key, value) pairs and wait until the broker acked all of them.

        Raises PublishFailed on a full local queue, a delivery error or the timeout.
        """
        delivery = _Delivery(expected=len(messages))
        for index, (key, value) in enumerate(messages):
            try:
                self.producer.produce(self.topic, key=key, value=value, on_delivery=delivery.on_delivery)
            except BufferError:
                metrics.EVENTS_PRODUCE_FAILURES.labels("queue_full").inc(len(messages) - index)
                raise PublishFailed("the producer's local queue is full") from None
            except KafkaException as exc:
                # any other local refusal: still "not taken", never a 500
                metrics.EVENTS_PRODUCE_FAILURES.labels("produce_error").inc(len(messages) - index)
                raise PublishFailed(f"the producer refused the batch: {exc}") from None
        deadline = time.monotonic() + timeout
        # poll() runs delivery callbacks (of any thread's batch) until ours are all in
        while not delivery.done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                missing = delivery.expected - delivery.acked - len(delivery.errors)
                metrics.EVENTS_PRODUCE_FAILURES.labels("timeout").inc(missing)
                raise PublishFailed(f"{missing} of {delivery.expected} events unacknowledged after {timeout}s")
            self.producer.poll(min(left, 0.05))
        if delivery.errors:
            raise PublishFailed(f"the broker refused {len(delivery.errors)} events: {delivery.errors[0]}")


_publisher: EventPublisher | None = None
_publisher_lock = threading.Lock()


def get_publisher() -> EventPublisher:
    """The process's one publisher (librdkafka producers are thread-safe)."""
    global _publisher
    if _publisher is None:
        with _publisher_lock:
            if _publisher is None:
                from django.conf import settings

                from pipeline.topics import events_topic

                _publisher = EventPublisher(
                    settings.KAFKA, events_topic(settings.KAFKA), settings.EVENTS_PRODUCER_QUEUE_MAX_MESSAGES
                )
    return _publisher
