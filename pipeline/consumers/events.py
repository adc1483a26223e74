"""Events consumer: `nova.events` → Redis dedup → ClickHouse `events`.

Per batch (the framework commits offsets only after `write` returns):
1. `decode` parses each message into an `events` row that carries its source
   topic, partition, offset and topic generation; malformed → dead letter;
2. `write` marks every event_id in one Lua call; a message finding the mark of
   another message is a client retry and is dropped (counted), a message
   finding its own mark is a replay of a failed attempt and is inserted again;
3. inserts the rows (with an insert_deduplication_token where the server has it);
   the materialized views then add each event to the aggregates once.
On assignment, `seek_positions` starts each partition past the highest offset
ClickHouse holds for it, so a crash between insert and commit never inserts a
message twice; a sink offset beyond the partition's end means the topic was
recreated: say so loudly and read the new log from its start.
"""

from __future__ import annotations

import logging
import time

from clickhouse_driver import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from monitoring import metrics
from nova.clickhouse import server_version
from pipeline.consumers.framework import InvalidMessage
from pipeline.dedup import EventDedup, Seen, message_mark
from pipeline.event_schema import ROW_COLUMNS, message_to_row

logger = logging.getLogger(__name__)

INSERT_SQL = f"INSERT INTO events ({', '.join(ROW_COLUMNS)}) VALUES"
SINK_OFFSETS_SQL = (
    "SELECT partition, generation, maxMerge(max_offset) FROM events_sink_offsets "
    "WHERE topic = %(topic)s GROUP BY partition, generation"
)
# insert_deduplication_token arrived in ClickHouse 22.3 (DESIGN.md portability table)
DEDUP_TOKEN_MIN_VERSION = (22, 3)
_PARTITION, _OFFSET, _GENERATION = ROW_COLUMNS.index("_partition"), ROW_COLUMNS.index("_offset"), ROW_COLUMNS.index("_generation")
_RECEIVED_MS = ROW_COLUMNS.index("received_at_ms")


def latest_sink_offsets(rows: list[tuple[int, int, int]]) -> dict[int, tuple[int, int]]:
    """[(partition, generation, max offset)] → {partition: (newest generation, its max offset)}."""
    latest: dict[int, tuple[int, int]] = {}
    for partition, generation, max_offset in rows:
        if partition not in latest or generation > latest[partition][0]:
            latest[partition] = (generation, max_offset)
    return latest


def start_position(sink: tuple[int, int] | None, committed: int, high: int) -> tuple[int, int, bool]:
    """(generation, start offset, topic recreated?) for one partition on assignment.

    `sink` is (generation, max offset) from ClickHouse, `committed` the group's
    committed offset (< 0: none), `high` the partition's high watermark.
    """
    committed_valid = 0 <= committed <= high
    if sink is None:
        return 0, committed if committed_valid else OFFSET_BEGINNING, False
    generation, max_offset = sink
    if max_offset + 1 > high:
        return generation + 1, OFFSET_BEGINNING, True
    return generation, max(max_offset + 1, committed if committed_valid else 0), False


def insert_token(topic: str, rows: list[tuple]) -> str:
    """Same rows from the same offsets → same token: a retried insert is a no-op."""
    ranges: dict[tuple[int, int], list[int]] = {}
    for row in rows:
        key = (row[_GENERATION], row[_PARTITION])
        span = ranges.setdefault(key, [row[_OFFSET], row[_OFFSET]])
        span[0] = min(span[0], row[_OFFSET])
        span[1] = max(span[1], row[_OFFSET])
    return topic + "|" + ";".join(f"g{g}p{p}:{a}-{b}" for (g, p), (a, b) in sorted(ranges.items()))


class EventsHandler:
    """Decode, dedup and insert. `sink_seek=False` is a TEST-ONLY negative control."""

    name = "events"

    def __init__(self, clickhouse: Client, dedup: EventDedup, *, sink_seek: bool = True) -> None:
        self.clickhouse = clickhouse
        self.dedup = dedup
        self.sink_seek = sink_seek
        self._generation: dict[tuple[str, int], int] = {}
        self._last_offset: dict[tuple[str, int], int] = {}
        self._use_token: bool | None = None

    # -------------------------------------------------------------- decode
    def decode(self, message: Message) -> tuple:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        key = (topic, partition)
        last = self._last_offset.get(key)
        if last is not None and offset <= last:
            # offsets went back without a new assignment: the topic was deleted
            # and recreated under us (librdkafka reset to the new log's start)
            self._topic_recreated(topic, partition, f"offset {offset} after {last}")
        self._last_offset[key] = offset
        try:
            return message_to_row(message.value(), topic, partition, offset, self._generation.get(key, 0))
        except ValueError as exc:
            raise InvalidMessage(str(exc)) from exc

    def _topic_recreated(self, topic: str, partition: int, why: str) -> None:
        key = (topic, partition)
        self._generation[key] = self._generation.get(key, 0) + 1
        metrics.SOURCE_TOPIC_RESETS.labels(self.name, topic).inc()
        logger.error(
            "events: %s[%d] was RECREATED (%s): consuming the new log from its start as generation %d",
            topic, partition, why, self._generation[key],
        )

    # -------------------------------------------------------------- write
    def write(self, items: list[tuple]) -> None:
        started = time.monotonic()
        marks = [message_mark(row[_GENERATION], row[_PARTITION], row[_OFFSET]) for row in items]
        seen = self.dedup.classify([row[0] for row in items], marks)
        rows = [row for row, verdict in zip(items, seen) if verdict is not Seen.RETRY]
        retries = len(items) - len(rows)
        replays = sum(1 for verdict in seen if verdict is Seen.REPLAY)
        if rows:
            self._insert(items[0][ROW_COLUMNS.index("_topic")], rows)
        # counted after the insert: a failed attempt is retried and recounted
        metrics.DEDUP_DUPLICATES.inc(retries)
        metrics.DEDUP_REPLAYS.inc(replays)
        now_ms = time.time() * 1000
        for row in rows:
            metrics.EVENT_TO_VISIBLE.observe(max(now_ms - row[_RECEIVED_MS], 0) / 1000)
        metrics.EVENTS_PROCESSING_DURATION.observe(time.monotonic() - started)

    def _insert(self, topic: str, rows: list[tuple]) -> None:
        try:
            if self._use_token is None:
                self._use_token = server_version(self.clickhouse) >= DEDUP_TOKEN_MIN_VERSION
            settings = {"insert_deduplication_token": insert_token(topic, rows)} if self._use_token else {}
            self.clickhouse.execute(INSERT_SQL, rows, settings=settings)
        except Exception:
            metrics.CLICKHOUSE_INSERT_ERRORS.labels("events").inc()
            raise

    # -------------------------------------------------------------- assignment
    def seek_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """Offsets in the sink: start past what ClickHouse already holds."""
        positions: dict[tuple[str, int], int] = {}
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=10)}
        for topic in sorted({tp.topic for tp in partitions}):
            sink = latest_sink_offsets(self.clickhouse.execute(SINK_OFFSETS_SQL, {"topic": topic}))
            for tp in (tp for tp in partitions if tp.topic == topic):
                key = (topic, tp.partition)
                self._last_offset.pop(key, None)
                _low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                generation, position, recreated = start_position(sink.get(tp.partition), committed.get(key, -1), high)
                if recreated:
                    self._generation[key] = generation - 1
                    self._topic_recreated(topic, tp.partition, f"ClickHouse holds offset {sink[tp.partition][1]}, "
                                                               f"the partition ends at {high}")
                self._generation[key] = generation
                if self.sink_seek:
                    positions[key] = position
        return positions


def build_events_handler(*, sink_seek: bool = True, mark_identity: bool = True) -> EventsHandler:
    from django.conf import settings

    from nova.clickhouse import make_client

    clickhouse = make_client(settings.CLICKHOUSE, timeout=settings.CLICKHOUSE.send_receive_timeout)
    dedup = EventDedup(settings.REDIS_URL, settings.REDIS_KEY_PREFIX, settings.EVENTS_DEDUP_TTL_SECONDS,
                       mark_identity=mark_identity)
    return EventsHandler(clickhouse, dedup, sink_seek=sink_seek)
