"""Events consumer benchmark: nova.events → Redis dedup → ClickHouse, one process,
on the local services (make services).

    .venv/bin/python bench/events_consumer.py [--events 400000] [--partitions 6]
                                              [--rate 2000] [--seconds 20]

Own namespace, never dev data: ClickHouse database nova_bench (created and
migrated), topic prefix novabench<run>, Redis key prefix novabench<run>.

1. preload a topic with --events events (5 % client retries);
2. the ceiling, stage by stage, on the same messages: Kafka consume only,
   decode (the handler's own `decode`), the Redis dedup Lua call (10,000 ids
   a call), the clickhouse-driver insert (batches of 50,000, into `events`
   with its views),
   and a plain `clickhouse-client ... FORMAT TSV` insert of the same rows;
   one process does the stages one after another, so the ceiling is
   1 / (sum of the per-event costs);
(the throughput phase runs first, then ClickHouse is left to finish its merges)
3. throughput: `manage.py run_events_consumer` (default batch settings) reads
   the preloaded topic; sustained events/s = rows that became visible between
   the first and the last poll of ClickHouse, over that time;
4. latency: a fresh topic fed at a steady --rate per second for --seconds;
   a poller reads the newly visible rows every 50 ms and records
   received_at → visible (resolution: the poll interval), beside the consumer's
   own event_to_visible_seconds histogram.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

from benchenv import ROOT, bench_env  # bench/ is the script's own folder

sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:6]
# another bench (bench/cdc_pipeline.py) drops and recreates nova_bench: a run beside one sets its own
DATABASE = os.environ.get("NOVA_BENCH_CLICKHOUSE_DATABASE", "nova_bench")
EVENT_TYPES = ("impression", "impression", "impression", "view", "click", "like", "comment", "share", "hide", "dwell")


def load_env() -> dict[str, str]:
    return bench_env(
        CLICKHOUSE_DATABASE=DATABASE,
        KAFKA_TOPIC_PREFIX=f"novabench{RUN}",
        REDIS_KEY_PREFIX=f"novabench{RUN}",
        EVENTS_CONSUMER_GROUP=f"novabench{RUN}-events",
        LOG_LEVEL="WARNING",
    )


ENV = load_env()
os.environ.update(ENV)

import django  # noqa: E402
import orjson  # noqa: E402

django.setup()

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from django.conf import settings  # noqa: E402

from nova.clickhouse import make_client  # noqa: E402
from nova.kafka import admin_client, produce_waiting  # noqa: E402
from pipeline.clickhouse_migrations import MigrationRunner  # noqa: E402
from pipeline.consumers import CONSUMERS  # noqa: E402
from pipeline.consumers.events import INSERT_SQL, build_events_handler  # noqa: E402
from pipeline.consumers.framework import tune_gc_for_batches  # noqa: E402
from pipeline.dedup import EventDedup, message_mark  # noqa: E402
from pipeline.event_schema import ROW_COLUMNS, build_message  # noqa: E402
from pipeline.topics import ensure_topics  # noqa: E402

BATCH = 10_000


def say(text: str) -> None:
    print(text, flush=True)


def make_events(count: int, retry_ratio: float = 0.05) -> list[tuple[bytes, dict, int, int]]:
    """(key, fields, user_id, author_id); `retry_ratio` of them resend an earlier event."""
    rng = random.Random(6)
    now = datetime.now(UTC)
    sent: list[tuple[bytes, dict]] = []
    out: list[tuple[bytes, dict, int, int]] = []
    for _ in range(count):
        if sent and rng.random() < retry_ratio:
            key, fields = rng.choice(sent)
            user = int(key)
        else:
            user, post, kind = rng.randrange(1, 50_000), rng.randrange(1, 200_000), rng.choice(EVENT_TYPES)
            fields = {
                "event_id": str(uuid.uuid4()),
                "post_id": post,
                "event_type": kind,
                "ts": now - timedelta(seconds=rng.randrange(86_400)),
                "dwell_ms": rng.randrange(1, 60_000) if kind == "dwell" else None,
                "position": rng.randrange(50),
                "surface": "home",
            }
            key = str(user).encode()
            if len(sent) < 100_000:
                sent.append((key, fields))
        out.append((key, fields, user, fields["post_id"] % 5000 + 1))
    return out


def make_messages(count: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC)
    return [(key, build_message(fields, user, author, now)) for key, fields, user, author in make_events(count)]


def produce(topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    producer = Producer(
        {
            **settings.KAFKA.client_config(),
            "acks": "all",
            "linger.ms": 20,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 500_000,
        }
    )
    started = time.perf_counter()
    for key, value in messages:
        produce_waiting(producer, topic, key, value)
    assert producer.flush(60) == 0
    return time.perf_counter() - started


def fresh_topic(name: str, partitions: int) -> str:
    """<run's prefix>.<name>: a topic no earlier run has used."""
    topic = settings.KAFKA.topic(name)
    ensure_topics(admin_client(settings.KAFKA), [topic], partitions=partitions, replication_factor=1)
    return topic


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# ------------------------------------------------------------------ stages
def stage_consume(topic: str, partitions: int, expected: int) -> tuple[list, float]:
    consumer = Consumer(
        {**settings.KAFKA.client_config(), "group.id": f"novabench{RUN}-stage", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list = []
    while not messages:  # the first fetch pays for connection set-up: not counted
        messages.extend(m for m in consumer.consume(BATCH, 1.0) if not m.error())
    warm = len(messages)
    started = time.perf_counter()
    while len(messages) < expected:
        messages.extend(m for m in consumer.consume(BATCH, 1.0) if not m.error())
    seconds = time.perf_counter() - started
    consumer.close()
    return messages, rate(len(messages) - warm, seconds)


def stage_decode(messages: list) -> tuple[list[tuple], float]:
    handler = build_events_handler()
    started = time.perf_counter()
    rows = [handler.decode(m) for m in messages]
    return rows, rate(len(rows), time.perf_counter() - started)


def stage_dedup(rows: list[tuple]) -> float:
    dedup = EventDedup(settings.EVENTS_DEDUP_REDIS_URL, f"novabench{RUN}-stage", 48 * 3600)
    p, o, g = ROW_COLUMNS.index("_partition"), ROW_COLUMNS.index("_offset"), ROW_COLUMNS.index("_generation")
    u = ROW_COLUMNS.index("user_id")
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        batch = rows[i : i + BATCH]
        dedup.classify([(r[u], r[0].hex) for r in batch], [message_mark(r[g], r[p], r[o]) for r in batch])
    seconds = time.perf_counter() - started
    return rate(len(rows), seconds)


def stage_insert(rows: list[tuple]) -> float:
    """In the consumer's batch size (its default max, 50,000: a backlog fills it)."""
    client = make_client(settings.CLICKHOUSE)
    topic_at = ROW_COLUMNS.index("_topic")
    staged = [row[:topic_at] + ("stage-driver",) + row[topic_at + 1 :] for row in rows]
    size = CONSUMERS["events"].max_batch_size
    started = time.perf_counter()
    for i in range(0, len(staged), size):
        # as the consumer sends them: each row with its batch's _inserted_at (one tuple copy a row)
        inserted_at = datetime.now(UTC).replace(microsecond=0)
        client.execute(INSERT_SQL, [(*row, inserted_at) for row in staged[i : i + size]])
    return rate(len(staged), time.perf_counter() - started)


def stage_clickhouse_client(rows: list[tuple]) -> float:
    topic_at = ROW_COLUMNS.index("_topic")
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as tsv:
        for row in rows:
            values = list(row)
            values[topic_at] = "stage-client"
            for column in ("ts", "received_at"):
                at = ROW_COLUMNS.index(column)
                values[at] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(values[at]))
            tsv.write("\t".join(map(str, values)) + "\n")
        path = tsv.name
    query = f"INSERT INTO {settings.CLICKHOUSE.database}.events ({', '.join(ROW_COLUMNS)}) FORMAT TSV"
    started = time.perf_counter()
    with open(path, "rb") as data:
        subprocess.run(
            [
                "clickhouse-client",
                "--host",
                settings.CLICKHOUSE.host,
                "--port",
                str(settings.CLICKHOUSE.port),
                "--query",
                query,
            ],
            stdin=data,
            check=True,
        )
    seconds = time.perf_counter() - started
    os.unlink(path)
    return rate(len(rows), seconds)


# ------------------------------------------------------------------ the consumer process
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_consumer(prefix: str, group: str, port: int, max_seconds: float) -> subprocess.Popen[bytes]:
    env = {**ENV, "KAFKA_TOPIC_PREFIX": prefix, "EVENTS_CONSUMER_GROUP": group}
    return subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_events_consumer",
            "--metrics-port",
            str(port),
            "--max-seconds",
            str(max_seconds),
        ],
        cwd=ROOT,
        env=env,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(60)


def visible(client, topic: str) -> int:
    return client.execute("SELECT count() FROM events WHERE _topic = %(t)s", {"t": topic})[0][0]


def consumer_throughput(topic: str, unique: int, timeout: float) -> tuple[float, float, int]:
    """(sustained events/s, seconds, rows) from the first visible rows to the last."""
    client = make_client(settings.CLICKHOUSE)
    process = start_consumer(settings.KAFKA.topic_prefix, f"novabench{RUN}-throughput", free_port(), timeout + 60)
    try:
        deadline = time.monotonic() + timeout
        first: tuple[float, int] | None = None
        count = 0
        while time.monotonic() < deadline:
            count = visible(client, topic)
            now = time.perf_counter()
            if count and first is None:
                first = (now, count)
            if count >= unique:
                break
            time.sleep(0.1)
        assert first is not None and count >= unique, f"consumer did not finish: {count}/{unique}"
        if now - first[0] < 1.0:
            raise SystemExit(f"the consumer wrote {count:,} rows in under a second: use more --events")
        return rate(count - first[1], now - first[0]), now - first[0], count
    finally:
        stop(process)


def scrape(port: int, name: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)}


def histogram_quantile(buckets: dict[str, float], q: float) -> str:
    """The bucket bound under which at least q of the observations fall."""
    items = sorted((float(k.split('le="')[1].split('"')[0]), v) for k, v in buckets.items() if "_bucket" in k)
    total = items[-1][1]
    for bound, cumulative in items:
        if cumulative >= q * total:
            return f"≤ {bound:g} s"
    return "?"


def latency(partitions: int, rate_per_s: int, seconds: float) -> dict[str, object]:
    prefix = f"novabench{RUN}lat"
    topic = f"{prefix}.events"
    ensure_topics(admin_client(settings.KAFKA), [topic], partitions=partitions, replication_factor=1)
    client = make_client(settings.CLICKHOUSE)
    port = free_port()
    process = start_consumer(prefix, f"novabench{RUN}-latency", port, seconds + 120)
    producer = Producer({**settings.KAFKA.client_config(), "acks": "all", "linger.ms": 5})
    try:
        # warm-up: wait until the consumer is assigned and writing
        producer.produce(topic, key=b"1", value=make_messages(1)[0][1])
        producer.flush(10)
        deadline = time.monotonic() + 60
        while visible(client, topic) < 1:
            assert time.monotonic() < deadline, "latency consumer never started"
            time.sleep(0.2)
        latencies: list[float] = []
        stop_poll = threading.Event()
        expected = int(rate_per_s * seconds)

        def poll() -> None:
            # a row returned by a query was visible when the query started (ClickHouse
            # reads the parts that exist then): that start is the observation time
            seen: dict[int, int] = {}
            poller = make_client(settings.CLICKHOUSE)
            while not stop_poll.is_set():
                where = " OR ".join(f"(_partition = {p} AND _offset > {o})" for p, o in seen.items()) or "1"
                excluded = ", ".join(str(p) for p in seen) or "-1"
                observed_ms = time.time() * 1000
                rows = poller.execute(
                    "SELECT _partition, _offset, received_at_ms FROM events WHERE _topic = %(t)s AND "
                    f"(({where}) OR _partition NOT IN ({excluded})) AND received_at_ms > %(since)s",
                    {"t": topic, "since": since_ms},
                )
                for partition, offset, received_ms in rows:
                    seen[partition] = max(seen.get(partition, -1), offset)
                    latencies.append((observed_ms - received_ms) / 1000)
                time.sleep(0.05)

        since_ms = int(time.time() * 1000)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        events = make_events(expected)
        started = time.perf_counter()
        for i, (key, fields, user, author) in enumerate(events):
            time.sleep(max(0.0, started + i / rate_per_s - time.perf_counter()))
            # received_at is stamped as the API would, just before the broker gets it
            producer.produce(topic, key=key, value=build_message(fields, user, author, datetime.now(UTC)))
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + 30
        while len(latencies) < expected - expected * 0.06 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        stop_poll.set()
        poller.join(5)
        histogram = scrape(port, "event_to_visible_seconds")
    finally:
        stop(process)
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "events": len(latencies),
        "p50": q(0.50),
        "p95": q(0.95),
        "p99": q(0.99),
        "max": latencies[-1],
        "histogram_p95": histogram_quantile(histogram, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-stages", action="store_true")
    parser.add_argument(
        "--preload-only",
        action="store_true",
        help="stop after preloading (to profile a consumer on it: the prefix is printed)",
    )
    args = parser.parse_args()
    if not 10_000 <= args.events <= 2_000_000:
        parser.error("--events must be between 10,000 and 2,000,000 (bounded load)")

    admin = make_client(settings.CLICKHOUSE, database="default")
    admin.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    MigrationRunner(make_client(settings.CLICKHOUSE), admin, DATABASE, settings.CLICKHOUSE_SQL_DIR).apply()

    say(f"machine: {platform.node()} {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}")
    topic = fresh_topic("events", args.partitions)
    messages = make_messages(args.events)
    produce_seconds = produce(topic, messages)
    unique = len({orjson.loads(value)["event_id"] for _key, value in messages})
    say(
        f"preloaded {len(messages):,} messages ({unique:,} unique events) into {topic} "
        f"({args.partitions} partitions) in {produce_seconds:.1f} s"
    )

    if args.preload_only:
        say(f"KAFKA_TOPIC_PREFIX={settings.KAFKA.topic_prefix} CLICKHOUSE_DATABASE={DATABASE}")
        return
    consumer_rate, seconds, count = consumer_throughput(topic, unique, timeout=300)
    say(f"run_events_consumer           {consumer_rate:>10,.0f} events/s sustained ({count:,} rows, {seconds:.1f} s)")
    wait_for_merges()
    ceiling, client_rate = stages(topic, args.partitions, len(messages)) if not args.skip_stages else (0.0, 0.0)
    if ceiling:
        say(
            f"ratio to the stage ceiling {consumer_rate / ceiling:.0%}, "
            f"to the plain clickhouse-client insert {consumer_rate / client_rate:.0%}"
        )
    if not args.skip_latency:
        wait_for_merges()
        result = latency(args.partitions, args.rate, args.seconds)
        say(
            f"event-to-visible at {args.rate}/s for {args.seconds:g} s: {result['events']:,} events, "
            f"P50 {result['p50']:.3f} s, P95 {result['p95']:.3f} s, P99 {result['p99']:.3f} s, "
            f"max {result['max']:.3f} s (poll 50 ms); consumer histogram P95 {result['histogram_p95']}"
        )


def wait_for_merges(timeout: float = 60) -> None:
    """Let ClickHouse finish merging the previous phase's parts: phases must not pay for each other."""
    client = make_client(settings.CLICKHOUSE)
    deadline = time.monotonic() + timeout
    while client.execute("SELECT count() FROM system.merges")[0][0] and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)


def stages(topic: str, partitions: int, count: int) -> tuple[float, float]:
    """Each stage alone on the same messages; returns (ceiling, clickhouse-client rows/s)."""
    tune_gc_for_batches()  # as the consumer process does
    consumed, kafka_rate = stage_consume(topic, partitions, count)
    rows, decode_rate = stage_decode(consumed)
    del consumed
    dedup_rate = stage_dedup(rows)
    insert_rate = stage_insert(rows)
    wait_for_merges()
    client_rate = stage_clickhouse_client(rows)
    ceiling = 1 / (1 / kafka_rate + 1 / decode_rate + 1 / dedup_rate + 1 / insert_rate)
    say(f"stage kafka consume only      {kafka_rate:>10,.0f} msg/s")
    say(f"stage decode                  {decode_rate:>10,.0f} events/s")
    say(f"stage redis dedup (Lua, 10k)  {dedup_rate:>10,.0f} events/s")
    say(f"stage clickhouse-driver insert{insert_rate:>10,.0f} rows/s (50k batches, with the views)")
    say(f"clickhouse-client TSV insert  {client_rate:>10,.0f} rows/s (one stream, with the views)")
    say(f"ceiling (stages in series)    {ceiling:>10,.0f} events/s")
    return ceiling, client_rate


def forget_dedup_marks() -> int:
    """Drop this run's Redis marks (8-day TTL): runs must not pile millions of keys up."""
    client = EventDedup(settings.EVENTS_DEDUP_REDIS_URL, "x", 48 * 3600).client
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"novabench{RUN}*", count=10_000):
        batch.append(key)
        if len(batch) == 10_000:
            removed += client.unlink(*batch)
            batch = []
    if batch:
        removed += client.unlink(*batch)
    return removed


if __name__ == "__main__":
    try:
        main()
    finally:
        forget_dedup_marks()
