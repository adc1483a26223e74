"""Events consumer: `nova.events` → Redis dedup → ClickHouse `events`.

Per batch (the framework commits offsets only after `write` returns):
1. `decode` parses each message into an `events` row that carries its source
   topic, partition, offset and topic generation; malformed → dead letter;
2. `prepare` marks every event_id (one Lua call per 10,000); a message finding
   the mark of another message is a client retry and is dropped (counted), a
   message finding its own mark is a replay of a failed attempt and is
   inserted again (on its own thread, while the previous batch is inserted);
3. `write` inserts the rows (with an insert_deduplication_token where the
   server has it); the materialized views then add each event to the
   aggregates once. A retry of an insert whose outcome is unknown (a timeout
   after the server may have taken the block) first reads the partitions'
   offsets in ClickHouse and inserts only the rows above them; a value
   ClickHouse refuses raises RowsRejected (the runner isolates the row).
On assignment, `seek_positions` starts each partition past the highest offset
ClickHouse holds for it, so a crash between insert and commit never inserts a
message twice; if the message at that offset is no longer in the partition (or
is another message), the topic was recreated: say so loudly and read the new
log from its start.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from clickhouse_driver import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from monitoring import metrics
from monitoring.histograms import observe_many
from nova.clickhouse import is_data_error, server_version
from pipeline.consumers.faults import NONE as NO_FAULTS
from pipeline.consumers.faults import CrashPoint, Faults
from pipeline.consumers.framework import InvalidMessage, RowsRejected, position
from pipeline.consumers.log_probe import PartitionProbe
from pipeline.dedup import EventDedup, Seen, message_mark
from pipeline.event_schema import ROW_COLUMNS, message_to_row

logger = logging.getLogger(__name__)

# _inserted_at is sent, not left to the server's DEFAULT now(): a retry must send the
# identical block, which ClickHouse's block deduplication (replicated tables, or
# insert_deduplication_token) then drops; a default filled a second later would not be
INSERT_SQL = f"INSERT INTO events ({', '.join(ROW_COLUMNS)}, _inserted_at) VALUES"
SINK_OFFSETS_SQL = (
    "SELECT partition, generation, maxMerge(max_offset) FROM events_sink_offsets "
    "WHERE topic = %(topic)s GROUP BY partition, generation"
)
# the primary key (user_id, ts, event_id) makes this a point read
SINK_ROW_SQL = (
    "SELECT count() FROM events WHERE user_id = %(user_id)s AND ts = toDateTime(%(ts)s, 'UTC') "
    "AND event_id = toUUID(%(event_id)s) AND _topic = %(topic)s AND _partition = %(partition)s "
    "AND _offset = %(offset)s AND _generation = %(generation)s"
)
DEDUP_CHUNK = 10_000
# insert_deduplication_token arrived in ClickHouse 22.3 (docs/ranking.md, Portability)
DEDUP_TOKEN_MIN_VERSION = (22, 3)
_PARTITION, _OFFSET, _GENERATION = (
    ROW_COLUMNS.index("_partition"),
    ROW_COLUMNS.index("_offset"),
    ROW_COLUMNS.index("_generation"),
)
_RECEIVED_MS, _TOPIC = ROW_COLUMNS.index("received_at_ms"), ROW_COLUMNS.index("_topic")
_USER_ID = ROW_COLUMNS.index("user_id")


def _event_id(value: bytes | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(orjson.loads(value or b"")["event_id"])
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError):
        return None


def latest_sink_offsets(rows: list[tuple[int, int, int]]) -> dict[int, tuple[int, int]]:
    """[(partition, generation, max offset)] → {partition: (newest generation, its max offset)}."""
    latest: dict[int, tuple[int, int]] = {}
    for partition, generation, max_offset in rows:
        if partition not in latest or generation > latest[partition][0]:
            latest[partition] = (generation, max_offset)
    return latest


def start_position(
    sink: tuple[int, int] | None,
    sink_message_in_log: bool,
    committed: int,
    end: int,
    committed_generation: int | None = None,
) -> tuple[int, int, bool]:
    """(generation, start offset, topic recreated?) for one partition on assignment.

    `sink` is (generation, max offset) from ClickHouse; `sink_message_in_log`
    says whether the message at that offset is still in the partition and is
    the one ClickHouse holds; `committed` is the group's committed offset
    (< 0: none), `committed_generation` the generation the commit names in
    its metadata (None: a commit from before generations were committed),
    `end` the partition's exact end (last offset + 1).

    If the sink's last message is gone from the log, the topic was recreated
    (or the broker restarted and lost it): the sink's offsets say nothing about
    the new log, which is read from its start as a new generation. Otherwise
    start past the sink, or past the commit when that is further (batches of
    only client retries or dead letters commit without inserting), unless the
    commit is of another generation: its offset is in another log.
    """
    committed_valid = 0 <= committed <= end
    if sink is None:
        generation = committed_generation or 0
        return generation, committed if committed_valid else OFFSET_BEGINNING, False
    generation, max_offset = sink
    if not sink_message_in_log:
        return generation + 1, OFFSET_BEGINNING, True
    committed_valid &= committed_generation in (None, generation)
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


def commit_metadata(generation: int) -> str:
    """What a commit of a partition says beside its offset: the log (generation) the offset is in."""
    return f"generation={generation}"


def commit_generation(metadata: str | None) -> int | None:
    """The generation a commit names (None: a commit without one, from an older consumer)."""
    name, _, value = (metadata or "").partition("=")
    return int(value) if name == "generation" and value.isdigit() else None


@dataclass
class DedupedBatch:
    """A batch after the dedup marks: the rows to insert and what was dropped."""

    rows: list[tuple]
    retries: int
    replays: int
    dedup_seconds: float
    attempted: bool = False  # an insert of it was tried: a retry must first ask ClickHouse what landed
    inserted_at: datetime | None = None  # fixed at the first attempt, sent again by every retry


class EventsHandler:
    """Decode, dedup and insert. `faults`: TEST-ONLY switches (pipeline/consumers/faults.py)."""

    name = "events"

    def __init__(
        self, clickhouse: Client, dedup: EventDedup, probe: PartitionProbe, *, faults: Faults = NO_FAULTS
    ) -> None:
        self.clickhouse = clickhouse
        self.dedup = dedup
        self.probe = probe
        self.faults = faults
        self._prepared = 0
        self._writes = 0
        self._generation: dict[tuple[str, int], int] = {}
        self._last_offset: dict[tuple[str, int], int] = {}
        # per partition, a message known to belong to the log being read: (offset,
        # event_id), for check_sources. The sink's last message when the assignment
        # was verified, else the first one decoded; never a later one: a recreated
        # log that grew past our position would then be checked against itself
        self._anchor: dict[tuple[str, int], tuple[int, uuid.UUID]] = {}
        self._last_event: dict[tuple[str, int], tuple[int, uuid.UUID]] = {}  # the last decoded
        self._use_token: bool | None = None

    # -------------------------------------------------------------- decode
    def decode(self, message: Message) -> tuple:
        topic, partition, offset = position(message)
        key = (topic, partition)
        last = self._last_offset.get(key)
        if last is not None and offset <= last:
            # offsets went back without a new assignment: the topic was deleted
            # and recreated under us (librdkafka reset to the new log's start)
            self._topic_recreated(topic, partition, f"offset {offset} after {last}")
        self._last_offset[key] = offset
        try:
            row = message_to_row(message.value(), topic, partition, offset, self._generation.get(key, 0))
        except ValueError as exc:
            raise InvalidMessage(str(exc)) from exc
        self._last_event[key] = (offset, row[0])
        if key not in self._anchor:
            self._anchor[key] = (offset, row[0])
        return row

    def check_sources(self, assigned: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Is the anchor (a message of the log we read) still in its partition? If not, the topic was recreated.

        Returns {(topic, partition): offset to restart from} for recreated ones.
        A probe failure is logged and retried at the next check: guessing
        "recreated" on a timeout would re-read a healthy log as a new generation.
        """
        restart: dict[tuple[str, int], int] = {}
        for key in [key for key in self._anchor if key not in assigned]:
            del self._anchor[key]
        with self.probe:
            for (topic, partition), (offset, event_id) in list(self._anchor.items()):
                key = (topic, partition)
                try:
                    message = self.probe.message_at(topic, partition, offset)
                    same = message is not None and _event_id(message.value()) == event_id
                    low = 0 if same else self.probe.watermarks(topic, partition)[0]
                except (KafkaException, TimeoutError) as exc:
                    logger.warning("events: could not check %s[%d]: %s", topic, partition, exc)
                    continue
                if not same and message is None and low > offset and key in self._last_event:
                    # retention removed the anchor (a new log starts again below it)
                    self._anchor[key] = self._last_event[key]
                elif not same:
                    self._topic_recreated(topic, partition, f"offset {offset} no longer holds event {event_id}")
                    self._last_offset.pop(key, None)
                    restart[key] = low
        return restart

    def commit_metadata(self, topic: str, partition: int) -> str:
        """Committed with the partition's offset (runner's hook): a start ignores a commit of another log."""
        return commit_metadata(self._generation.get((topic, partition), 0))

    def _topic_recreated(self, topic: str, partition: int, why: str) -> None:
        self._anchor.pop((topic, partition), None)
        self._last_event.pop((topic, partition), None)
        key = (topic, partition)
        self._generation[key] = self._generation.get(key, 0) + 1
        metrics.SOURCE_TOPIC_RESETS.labels(self.name, topic).inc()
        logger.error(
            "events: %s[%d] was RECREATED (%s): consuming the new log from its start as generation %d",
            topic,
            partition,
            why,
            self._generation[key],
        )

    # -------------------------------------------------------------- write
    def prepare(self, items: list[tuple]) -> DedupedBatch:
        """Mark every event id (one Lua call per DEDUP_CHUNK) and drop client retries.

        Runs on the framework's prepare thread while the previous batch is
        being inserted. Marking before the previous insert landed is safe: a
        replay finds its own marks and is inserted again.
        """
        started = time.monotonic()
        self._prepared += 1
        seen: list[Seen] = []
        for start in range(0, len(items), DEDUP_CHUNK):
            # one Lua call blocks Redis while it runs: keep each call short
            chunk = items[start : start + DEDUP_CHUNK]
            marks = [message_mark(row[_GENERATION], row[_PARTITION], row[_OFFSET]) for row in chunk]
            seen += self.dedup.classify([(row[_USER_ID], row[0].hex) for row in chunk], marks)
        rows = [row for row, verdict in zip(items, seen, strict=True) if verdict is not Seen.RETRY]
        replays = sum(1 for verdict in seen if verdict is Seen.REPLAY)
        self._maybe_crash("after-dedup", self._prepared)
        return DedupedBatch(rows, len(items) - len(rows), replays, time.monotonic() - started)

    def write(self, batch: DedupedBatch | list[tuple]) -> int:
        """Insert what `prepare` kept (a plain list of rows is prepared here first); returns the rows inserted."""
        if isinstance(batch, list):
            batch = self.prepare(batch)
        started = time.monotonic()
        self._writes += 1
        rows = self._not_in_sink(batch.rows) if batch.attempted else batch.rows
        batch.attempted = True
        if batch.inserted_at is None:
            batch.inserted_at = datetime.now(UTC).replace(microsecond=0)
        if rows:
            self._insert(rows[0][_TOPIC], rows, batch.inserted_at)
        self._maybe_crash("after-insert", self._writes)
        # counted after the insert: a failed attempt is retried and recounted
        metrics.DEDUP_DUPLICATES.inc(batch.retries)
        metrics.DEDUP_REPLAYS.inc(batch.replays)
        now_ms = time.time() * 1000
        observe_many(metrics.EVENT_TO_VISIBLE, [max(now_ms - row[_RECEIVED_MS], 0) / 1000 for row in batch.rows])
        metrics.EVENTS_PROCESSING_DURATION.observe(batch.dedup_seconds + time.monotonic() - started)
        return len(batch.rows)

    def _not_in_sink(self, rows: list[tuple]) -> list[tuple]:
        """The rows of a batch whose earlier insert failed that ClickHouse does not hold.

        An insert that failed on a client timeout (or a view after the base
        table took the block) may have landed: inserting it again would count
        its events twice. Each partition is written in offset order, so a row
        at or below the partition's highest offset in the sink is there.
        """
        if not rows:
            return rows
        held = {
            (partition, generation): offset
            for partition, generation, offset in self.clickhouse.execute(SINK_OFFSETS_SQL, {"topic": rows[0][_TOPIC]})
        }
        missing = [row for row in rows if row[_OFFSET] > held.get((row[_PARTITION], row[_GENERATION]), -1)]
        if len(missing) < len(rows):
            logger.warning(
                "events: %d of %d rows of a retried insert are already in ClickHouse: not inserted again",
                len(rows) - len(missing),
                len(rows),
            )
        return missing

    def _maybe_crash(self, point: str, batch: int) -> None:
        if self.faults.crash_at == CrashPoint(point, batch):
            logger.error("events: TEST fault injection: SIGKILL %s of batch %d", point, batch)
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def _insert(self, topic: str, rows: list[tuple], inserted_at: datetime) -> None:
        try:
            if self._use_token is None:
                self._use_token = server_version(self.clickhouse) >= DEDUP_TOKEN_MIN_VERSION
            settings = {"insert_deduplication_token": insert_token(topic, rows)} if self._use_token else {}
            self.clickhouse.execute(INSERT_SQL, [(*row, inserted_at) for row in rows], settings=settings)
        except Exception as exc:
            metrics.CLICKHOUSE_INSERT_ERRORS.labels("events").inc()
            if is_data_error(exc):
                raise RowsRejected(str(exc)) from exc
            raise

    # -------------------------------------------------------------- assignment
    def seek_positions(self, consumer: Consumer, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        """Offsets in the sink: start past what ClickHouse already holds.

        1. read the newest (generation, max offset) per partition from
           `events_sink_offsets` (one small query per topic);
        2. per partition, find the log's exact end and check that the message
           at the sink's max offset is still there and is the row ClickHouse
           holds (same event_id, user, ts, offset and generation);
        3. start past it, or, if it is gone or different (topic recreated),
           say so loudly and read the new log from its start as a new generation.
        """
        positions: dict[tuple[str, int], int] = {}
        committed = {
            (tp.topic, tp.partition): (tp.offset, commit_generation(tp.metadata))
            for tp in consumer.committed(partitions, timeout=10)
        }
        with self.probe:
            for topic in sorted({tp.topic for tp in partitions}):
                sink = latest_sink_offsets(self.clickhouse.execute(SINK_OFFSETS_SQL, {"topic": topic}))
                for tp in (tp for tp in partitions if tp.topic == topic):
                    key = (topic, tp.partition)
                    self._last_offset.pop(key, None)
                    self._last_event.pop(key, None)
                    self._anchor.pop(key, None)
                    low, end = self.probe.end_offset(topic, tp.partition)
                    held = sink.get(tp.partition)
                    in_log = held is not None and self._sink_message_in_log(topic, tp.partition, held, low, end)
                    offset, offset_generation = committed.get(key, (-1, None))
                    generation, position, recreated = start_position(held, in_log, offset, end, offset_generation)
                    if recreated:
                        assert held is not None
                        self._generation[key] = generation - 1
                        self._topic_recreated(
                            topic,
                            tp.partition,
                            f"ClickHouse holds offset {held[1]} of generation "
                            f"{held[0]}, the partition ends at {end} without it",
                        )
                    self._generation[key] = generation
                    if not self.faults.no_sink_seek:
                        positions[key] = position
        return positions

    def _sink_message_in_log(self, topic: str, partition: int, held: tuple[int, int], low: int, end: int) -> bool:
        generation, max_offset = held
        if max_offset < low <= end and end > max_offset + 1:
            # retention removed it: the log is older than our last write, not new
            logger.warning(
                "events: %s[%d]: offset %d is below the log start %d (retention); keeping generation %d",
                topic,
                partition,
                max_offset,
                low,
                generation,
            )
            return True
        message = self.probe.message_at(topic, partition, max_offset, end)
        if message is None:
            return False
        try:
            row = message_to_row(message.value(), topic, partition, max_offset, generation)
        except ValueError:
            return False
        found = self.clickhouse.execute(
            SINK_ROW_SQL,
            {
                "user_id": row[ROW_COLUMNS.index("user_id")],
                "ts": row[ROW_COLUMNS.index("ts")],
                "event_id": str(row[0]),
                "topic": topic,
                "partition": partition,
                "offset": max_offset,
                "generation": generation,
            },
        )
        if found and found[0][0]:
            self._anchor[(topic, partition)] = (max_offset, row[0])  # what check_sources checks from now on
            return True
        return False


def build_events_handler(faults: Faults = NO_FAULTS) -> EventsHandler:
    from django.conf import settings

    from nova.clickhouse import make_client

    clickhouse = make_client(settings.CLICKHOUSE, timeout=settings.CLICKHOUSE.send_receive_timeout)
    dedup = EventDedup(
        settings.EVENTS_DEDUP_REDIS_URL,
        settings.REDIS_KEY_PREFIX,
        settings.EVENTS_DEDUP_TTL_SECONDS,
        mark_identity=not faults.no_mark_identity,
    )
    probe = PartitionProbe(settings.KAFKA.client_config(), f"{settings.EVENTS_CONSUMER_GROUP}-probe")
    return EventsHandler(clickhouse, dedup, probe, faults=faults)
