"""Read a partition's exact end and single messages by offset, outside any group.

The offsets-in-sink seek has to know two things the group consumer cannot tell
it cheaply inside an assignment callback: where a partition really ends, and
whether the message the sink says it wrote last is still the message at that
offset (if not, the topic was recreated). A separate, unsubscribed consumer
answers both with small fetches.

Why not the high watermark alone: the local broker (tansu) reports the base
offset of the last record batch + 1, not the last offset + 1, so a sink offset
inside the last batch would look "beyond the end" and a healthy partition would
be taken for a recreated one. Reading the last batch to its end is exact on
both tansu and Kafka (where the watermark is exact and the read returns one
message).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.consumers.framework import position


class PartitionProbe:
    def __init__(self, client_config: Mapping[str, object], group_id: str, timeout_seconds: float = 10.0) -> None:
        self._config = {
            **client_config,
            # never joins the group (assign only, never commits); librdkafka wants an id
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 10,
        }
        self.timeout_seconds = timeout_seconds
        self._consumer: Consumer | None = None

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(self._config)
        return self._consumer

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    # Used as `with probe:` around each round of reads, so no client lingers with
    # the topic's metadata between rounds: librdkafka 2.16 crashes (SIGSEGV) when
    # a topic it has fetched from is deleted on the local broker.
    def __enter__(self) -> PartitionProbe:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return self.consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=self.timeout_seconds, cached=False
        )

    def end_offset(self, topic: str, partition: int) -> tuple[int, int]:
        """(low watermark, exact end = last offset + 1) of one partition."""
        low, high = self.watermarks(topic, partition)
        if high <= low:
            return low, high
        last = high - 1
        for message in self._read_from(topic, partition, high - 1, limit=1_000_000):
            last = position(message)[2]
        return low, last + 1

    def message_at(self, topic: str, partition: int, offset: int, end: int | None = None) -> Message | None:
        """The message stored at `offset`, or None if the log has none there.

        `end` (the exact end) if the caller knows it; else it is found only when
        the offset is not below the reported watermark.
        """
        if end is None:
            low, high = self.watermarks(topic, partition)
            end = high if low <= offset < high else self.end_offset(topic, partition)[1]
        if offset >= end:
            return None
        for message in self._read_from(topic, partition, offset, limit=1_000_000):
            if (found := position(message)[2]) >= offset:
                return message if found == offset else None
        return None

    def _read_from(self, topic: str, partition: int, offset: int, limit: int) -> Iterator[Message]:
        """Messages from `offset` until the partition's end; raises TimeoutError when the broker stays silent.

        Only called for offsets known to exist (below the reported watermark), so
        silence is an outage, never "nothing there": a guess here could make a
        healthy partition look recreated.
        """
        consumer = self.consumer
        consumer.assign([TopicPartition(topic, partition, offset)])
        try:
            deadline = time.monotonic() + self.timeout_seconds
            seen = 0
            while seen < limit:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"reading {topic}[{partition}] from offset {offset}: no answer within {self.timeout_seconds}s"
                    )
                message = consumer.poll(0.02)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return
                    if error.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
                        return
                    if error.fatal():
                        raise KafkaException(error)
                    continue
                seen += 1
                deadline = time.monotonic() + self.timeout_seconds
                yield message
        finally:
            consumer.unassign()
