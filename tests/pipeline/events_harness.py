"""What the events consumer tests share: a test's own topics, the consumer as a
real subprocess (`manage.py run_events_consumer`, killable with SIGKILL), a
generator of events with client retries, and the check of ClickHouse against
the unique events computed in Python.

Each test gets its own topic prefix and consumer group, and its events use
their own user and post id ranges, so the shared `events` table and aggregates
can be compared exactly for the test's rows only.
"""

from __future__ import annotations

import dataclasses
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings

from nova.config import KafkaConfig
from nova.kafka import admin_client, produce_waiting
from pipeline.consumers.log_probe import PartitionProbe
from pipeline.event_schema import build_message
from pipeline.topics import dlq_topic, ensure_topics, events_topic

REPO = Path(__file__).resolve().parents[2]
HOURLY_COLUMNS = (
    "impressions",
    "views",
    "clicks",
    "likes",
    "comments",
    "shares",
    "hides",
    "dwell_events",
    "dwell_ms_total",
)
AFFINITY_COLUMNS = ("interactions", "clicks", "likes", "comments", "shares", "hides", "dwell_ms_total")
EVENT_TYPES = ("impression", "impression", "impression", "view", "click", "like", "comment", "share", "hide", "dwell")


# ---------------------------------------------------------------- topics
@dataclasses.dataclass(frozen=True)
class EventTopics:
    kafka: KafkaConfig
    group: str

    @property
    def events(self) -> str:
        return events_topic(self.kafka)

    @property
    def dlq(self) -> str:
        return dlq_topic(self.kafka, "events")


def make_topics(prefix: str, partitions: int) -> EventTopics:
    kafka = dataclasses.replace(settings.KAFKA, topic_prefix=prefix)
    topics = EventTopics(kafka, f"{prefix}-events")
    ensure_topics(admin_client(kafka), [topics.events, topics.dlq], partitions=partitions, replication_factor=1)
    return topics


# ---------------------------------------------------------------- events
@dataclasses.dataclass
class Event:
    event_id: str
    user_id: int
    post_id: int
    author_id: int
    event_type: str
    ts: datetime
    dwell_ms: int | None
    position: int | None


@dataclasses.dataclass
class EventPlan:
    """Messages to send, in order, and the unique events they carry."""

    messages: list[tuple[bytes, bytes]]  # (key, value)
    unique: dict[str, Event]
    retries: int
    id_base: int

    @staticmethod
    def joined(*plans: EventPlan) -> EventPlan:
        """Plans sent one after the other, as one (they must share an id_base)."""
        assert len({plan.id_base for plan in plans}) == 1
        return EventPlan(
            [m for plan in plans for m in plan.messages],
            {k: v for plan in plans for k, v in plan.unique.items()},
            sum(plan.retries for plan in plans),
            plans[0].id_base,
        )


def plan_events(
    count: int, retry_ratio: float, seed: int, users: int = 300, posts: int = 800, id_base: int | None = None
) -> EventPlan:
    """`count` messages; `retry_ratio` of them resend an earlier event (same event_id, new received_at).

    `seed` fixes the shape; event ids and the id range are fresh on every call,
    because Redis remembers event ids (48 h) across test sessions. Plans that
    share an `id_base` can be checked together (`EventPlan.joined`).
    """
    rng = random.Random(seed)
    id_base = random.SystemRandom().randrange(10**9, 10**12) if id_base is None else id_base
    now = datetime.now(UTC).replace(microsecond=0)
    n_retries = int(count * retry_ratio)
    sent: list[Event] = []
    messages: list[tuple[bytes, bytes]] = []
    retry_slots = set(rng.sample(range(1, count), n_retries))
    for i in range(count):
        if i in retry_slots:
            event = rng.choice(sent)
            received = now + timedelta(seconds=1 + rng.random())
        else:
            post = rng.randrange(posts)
            event_type = rng.choice(EVENT_TYPES)
            event = Event(
                event_id=str(uuid.uuid4()),
                user_id=id_base + rng.randrange(users),
                post_id=id_base + post,
                author_id=id_base + 10_000 + post % 40,
                event_type=event_type,
                ts=now - timedelta(seconds=rng.randrange(3 * 24 * 3600)),
                dwell_ms=rng.randrange(1, 60_000) if event_type == "dwell" else None,
                position=rng.randrange(50) if rng.random() < 0.7 else None,
            )
            sent.append(event)
            received = now
        messages.append((str(event.user_id).encode(), message_of(event, received)))
    return EventPlan(messages, {event.event_id: event for event in sent}, n_retries, id_base)


def message_of(event: Event, received_at: datetime) -> bytes:
    fields = {
        "event_id": event.event_id,
        "post_id": event.post_id,
        "event_type": event.event_type,
        "ts": event.ts,
        "dwell_ms": event.dwell_ms,
        "position": event.position,
        "surface": "home",
    }
    return build_message(fields, event.user_id, event.author_id, received_at)


def produce(kafka: KafkaConfig, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({**kafka.client_config(), "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    for key, value in messages:
        produce_waiting(producer, topic, key, value)
    assert producer.flush(30) == 0, "the broker did not acknowledge every test message"


# ---------------------------------------------------------------- the consumer process
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ConsumerProcess:
    """`manage.py run_events_consumer` for one test's topics; logs go to `log_path`."""

    def __init__(
        self,
        topics: EventTopics,
        log_path: Path,
        *args: str,
        batch_size: int = 500,
        batch_time_ms: int = 50,
        max_seconds: float = 300,
        env: dict[str, str] | None = None,
    ) -> None:
        self.topics = topics
        self.log_path = log_path
        self.env = env or {}
        self.log_start = 0
        self.args = [
            *args,
            "--max-batch-size",
            str(batch_size),
            "--max-batch-time-ms",
            str(batch_time_ms),
            "--max-seconds",
            str(max_seconds),
        ]
        self.metrics_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> ConsumerProcess:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.pipeline.consumer_settings",
            "NOVA_TEST_TOPIC_PREFIX": self.topics.kafka.topic_prefix,
            "NOVA_TEST_CONSUMER_GROUP": self.topics.group,
            "PYTHONFAULTHANDLER": "1",  # a crash in librdkafka leaves a Python traceback in the log
            **self.env,
        }
        with self.log_path.open("ab") as log:
            log.write(f"---- start {' '.join(extra)}\n".encode())
            log.flush()
            self.log_start = log.tell()
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(REPO / "manage.py"),
                    "run_events_consumer",
                    *self.args,
                    "--metrics-port",
                    str(self.metrics_port),
                    *extra,
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye to the group."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def metric(self, name: str) -> float:
        """Sum of the samples of one metric scraped from the process's /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
        return total

    def metric_when(self, name: str, expected: float, timeout: float = 10.0) -> float:
        """The metric once it equals `expected`, or its last value after `timeout`.

        Rows are visible in ClickHouse (which is what the waits above watch) a
        moment before the consumer counts them (after the insert returns, or after the commit)."""
        deadline = time.monotonic() + timeout
        while (value := self.metric(name)) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return value

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def has_partitions(self) -> bool:
        """This run of the process was assigned partitions at least once."""
        return b"events: assigned [(" in self.log_path.read_bytes()[self.log_start :]


# ---------------------------------------------------------------- waiting and checking
def partition_ends(topics: EventTopics) -> dict[int, int]:
    metadata = admin_client(topics.kafka).list_topics(topics.events, timeout=10)
    probe = PartitionProbe(topics.kafka.client_config(), f"{topics.group}-test-probe")
    try:
        return {p: probe.end_offset(topics.events, p)[1] for p in metadata.topics[topics.events].partitions}
    finally:
        probe.close()


def committed_offsets(topics: EventTopics, partitions: list[int]) -> dict[int, int]:
    consumer = Consumer({**topics.kafka.client_config(), "group.id": topics.group, "enable.auto.commit": False})
    try:
        answer = consumer.committed([TopicPartition(topics.events, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in answer}
    finally:
        consumer.close()


def sink_offsets(clickhouse: Any, topic: str) -> dict[int, int]:
    """{partition: max offset} of the newest generation held in ClickHouse."""
    rows = clickhouse.execute(
        "SELECT partition, generation, maxMerge(max_offset) FROM events_sink_offsets WHERE topic = %(t)s "
        "GROUP BY partition, generation",
        {"t": topic},
    )
    newest: dict[int, tuple[int, int]] = {}
    for partition, generation, offset in rows:
        if partition not in newest or generation > newest[partition][0]:
            newest[partition] = (generation, offset)
    return {partition: offset for partition, (_g, offset) in newest.items()}


def wait_until_caught_up(topics: EventTopics, clickhouse: Any, timeout: float) -> None:
    """Every partition consumed to its end: committed there, or written there (a crash
    after the last insert leaves the commit behind and the seek past it)."""
    deadline = time.monotonic() + timeout
    ends = partition_ends(topics)
    while True:
        committed = committed_offsets(topics, list(ends))
        written = sink_offsets(clickhouse, topics.events)
        behind = {
            p: end for p, end in ends.items() if end > 0 and max(committed.get(p, -1), written.get(p, -1) + 1) < end
        }
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"consumer did not catch up in {timeout}s: behind on {behind}, committed {committed}, written {written}"
            )
        time.sleep(0.5)


def dead_letters(topics: EventTopics) -> list[Any]:
    """Every message in the test's DLQ (up to each partition's end), by source offset."""
    metadata = admin_client(topics.kafka).list_topics(topics.dlq, timeout=10)
    reader = Consumer(
        {**topics.kafka.client_config(), "group.id": f"{topics.group}-dlq-reader", "enable.auto.commit": False}
    )
    try:
        ends = {
            p: reader.get_watermark_offsets(TopicPartition(topics.dlq, p), timeout=10)[1]
            for p in metadata.topics[topics.dlq].partitions
        }
        reader.assign([TopicPartition(topics.dlq, p, 0) for p, end in ends.items() if end])
        got: list[Any] = []
        deadline = time.monotonic() + 20
        while len(got) < sum(ends.values()):
            assert time.monotonic() < deadline, f"read {len(got)} of {sum(ends.values())} dead letters"
            got.extend(m for m in reader.consume(100, 0.5) if m.error() is None)
    finally:
        reader.close()
    return sorted(
        got, key=lambda m: (int(dict(m.headers())["source_partition"]), int(dict(m.headers())["source_offset"]))
    )


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclasses.dataclass
class SinkReport:
    """ClickHouse against the unique events: every number but the first two must be 0.

    `events` is a ReplacingMergeTree, so a background merge may already have
    collapsed a duplicate row there (`duplicate_rows` can miss it); the
    aggregates are fed by the inserts themselves and never forget one:
    `aggregate_excess` is the number of events the hourly aggregate counted
    minus the number of unique events (> 0: counted twice, < 0: lost).
    """

    expected: int
    rows: int
    duplicate_rows: int
    missing: int
    unexpected: int
    hourly_mismatches: int
    affinity_mismatches: int
    aggregate_excess: int

    @property
    def ok(self) -> bool:
        return (
            not (
                self.duplicate_rows
                or self.missing
                or self.unexpected
                or self.hourly_mismatches
                or self.affinity_mismatches
                or self.aggregate_excess
            )
            and self.rows == self.expected
        )


def expected_hourly(events: list[Event]) -> dict[tuple, tuple]:
    table: dict[tuple, list[int]] = {}
    for e in events:
        hour = int(e.ts.timestamp()) // 3600 * 3600
        row = table.setdefault((e.post_id, e.author_id, hour), [0] * len(HOURLY_COLUMNS))
        column = {"impression": 0, "view": 1, "click": 2, "like": 3, "comment": 4, "share": 5, "hide": 6, "dwell": 7}[
            e.event_type
        ]
        row[column] += 1
        if e.event_type == "dwell":
            row[8] += e.dwell_ms or 0
    return {key: tuple(value) for key, value in table.items()}


def expected_affinity(events: list[Event]) -> dict[tuple, tuple]:
    table: dict[tuple, list[int]] = {}
    for e in events:
        row = table.setdefault((e.user_id, e.author_id, e.ts.date()), [0] * len(AFFINITY_COLUMNS))
        if e.event_type in ("click", "like", "comment", "share", "dwell"):
            row[0] += 1
        for i, event_type in enumerate(("click", "like", "comment", "share", "hide"), start=1):
            row[i] += e.event_type == event_type
        if e.event_type == "dwell":
            row[6] += e.dwell_ms or 0
    return {key: tuple(value) for key, value in table.items()}


def _mismatches(expected: dict[tuple, tuple], actual: dict[tuple, tuple]) -> int:
    """Keys whose sums differ. A SummingMergeTree merge deletes rows whose sums are all
    zero (an author's day of impressions only), so an absent row equals a row of zeros."""

    def nonzero(table: dict[tuple, tuple]) -> dict[tuple, tuple]:
        return {key: values for key, values in table.items() if any(values)}

    expected, actual = nonzero(expected), nonzero(actual)
    return sum(1 for key in expected.keys() | actual.keys() if expected.get(key) != actual.get(key))


def check_sink(clickhouse: Any, topic: str, plan: EventPlan, generation: int | None = None) -> SinkReport:
    """`generation`: compare only the rows of that topic generation (None: all)."""
    ids = Counter(
        str(row[0])
        for row in clickhouse.execute(
            "SELECT event_id FROM events WHERE _topic = %(t)s AND (%(g)s < 0 OR _generation = %(g)s)",
            {"t": topic, "g": -1 if generation is None else generation},
        )
    )
    low, high = plan.id_base, plan.id_base + 10**6
    hourly = {
        (post, author, hour): tuple(values)
        for post, author, hour, *values in clickhouse.execute(
            f"SELECT post_id, author_id, toUInt32(hour), {', '.join(f'sum({c})' for c in HOURLY_COLUMNS)} "
            "FROM post_engagement_hourly WHERE post_id BETWEEN %(low)s AND %(high)s "
            "GROUP BY post_id, author_id, hour",
            {"low": low, "high": high},
        )
    }
    affinity = {
        (user, author, day): tuple(values)
        for user, author, day, *values in clickhouse.execute(
            f"SELECT user_id, author_id, day, {', '.join(f'sum({c})' for c in AFFINITY_COLUMNS)} "
            "FROM user_author_affinity_daily WHERE user_id BETWEEN %(low)s AND %(high)s "
            "GROUP BY user_id, author_id, day",
            {"low": low, "high": high},
        )
    }
    events = list(plan.unique.values())
    counted = sum(sum(values[:8]) for values in hourly.values())
    return SinkReport(
        expected=len(plan.unique),
        rows=sum(ids.values()),
        duplicate_rows=sum(n - 1 for n in ids.values() if n > 1),
        missing=len(plan.unique.keys() - ids.keys()),
        unexpected=len(ids.keys() - plan.unique.keys()),
        hourly_mismatches=_mismatches(expected_hourly(events), hourly),
        affinity_mismatches=_mismatches(expected_affinity(events), affinity),
        aggregate_excess=counted - len(events),
    )
