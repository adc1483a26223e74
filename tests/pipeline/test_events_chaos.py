"""Chaos: events keep arriving while consumer processes are killed with SIGKILL,
restarted, and joined by a second member of the group (rebalances). At the end
ClickHouse must hold exactly the unique events, and every aggregate must equal
the counts computed here from the unique events.

Kills come two ways: `kill -9` from outside at random moments, and the
consumer's test-only crash points (`--test-crash-at after-dedup:N` /
`after-insert:N`), which SIGKILL it inside the two gaps that matter (marks set
but rows not inserted; rows inserted but offsets not committed). Random kills
rarely land in a gap of a few milliseconds; the crash points make sure every
run crosses both.

Negative controls: the same harness with the offsets-in-sink seek disabled
must report duplicates, and with the dedup marks no longer naming their
message it must report losses. A harness that cannot fail proves nothing.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import threading
import time
import uuid
from functools import partial
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from nova.kafka import produce_waiting
from tests.pipeline.events_harness import (
    ConsumerProcess,
    EventPlan,
    EventTopics,
    SinkReport,
    check_sink,
    committed_offsets,
    dead_letters,
    make_topics,
    partition_ends,
    plan_events,
    sink_offsets,
    wait_for,
)
from tests.support.private_services import PrivateServer

pytestmark = [pytest.mark.requires_kafka, pytest.mark.requires_clickhouse, pytest.mark.requires_redis, pytest.mark.slow]


@dataclasses.dataclass(frozen=True)
class ChaosSettings:
    messages: int
    external_kills: int  # kill -9 from outside, each a random moment after the victim got partitions
    crash_points: tuple[str, ...]  # fault injection, one per (re)start in order; "" = none
    produce_seconds: float
    second_consumer: tuple[int, int]  # consumer b runs from the i-th to the j-th external kill
    consumer_args: tuple[str, ...] = ()
    retry_ratio: float = 0.05
    # messages produced straight to the topic whose ts ClickHouse cannot hold (2200):
    # each must end in the DLQ, nothing else may
    poison: int = 0
    seed: int = 6
    drain_timeout: float = 90.0
    # short sessions: a SIGKILLed member leaves the group sooner (each rebalance
    # waits for it), so more kills fit in the suite's time budget
    session_timeout_ms: int = 3000


@dataclasses.dataclass
class ChaosLog:
    external_kills: int = 0
    self_crashes: int = 0
    starts: int = 0
    both_consuming: bool = False  # both members held partitions at the same time
    dead_letters: list[bytes] = dataclasses.field(default_factory=list)  # values in the DLQ at the end


def _produce_paced(topics: EventTopics, plan: EventPlan, seconds: float, failures: list[str]) -> None:
    producer = Producer({**topics.kafka.client_config(), "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    chunks = 40
    size = -(-len(plan.messages) // chunks)
    started = time.monotonic()
    for i in range(chunks):
        time.sleep(max(0.0, started + i * seconds / chunks - time.monotonic()))
        for key, value in plan.messages[i * size : (i + 1) * size]:
            produce_waiting(producer, topics.events, key, value)
        producer.poll(0)
    if producer.flush(60):
        failures.append("the broker did not acknowledge every message")


def _caught_up(topics: EventTopics, clickhouse, ends: dict[int, int]) -> bool:
    committed = committed_offsets(topics, list(ends))
    written = sink_offsets(clickhouse, topics.events)
    return all(max(committed.get(p, -1), written.get(p, -1) + 1) >= end for p, end in ends.items() if end)


def run_chaos(topics: EventTopics, clickhouse, log_dir: Path, chaos: ChaosSettings) -> tuple[SinkReport, ChaosLog]:
    """Produce at a steady pace while killing and restarting consumers; drain; compare.

    Kills wait until the victim holds partitions (a process killed while it
    starts or joins proves little), then come at a random moment 0.2-2.5 s later;
    while the second consumer is wanted, until both members hold partitions.
    """
    rng = random.Random(chaos.seed)
    plan = plan_events(chaos.messages, chaos.retry_ratio, seed=chaos.seed)
    for _ in range(chaos.poison):
        key, value = rng.choice(plan.messages)
        event = {**orjson.loads(value), "event_id": str(uuid.uuid4()), "ts": "2200-01-01T00:00:00.000Z"}
        plan.messages.insert(rng.randrange(len(plan.messages)), (key, orjson.dumps(event)))
    log = ChaosLog()
    crash_points = list(chaos.crash_points)
    env = {"KAFKA_SESSION_TIMEOUT_MS": str(chaos.session_timeout_ms)}
    slots = {name: ConsumerProcess(topics, log_dir / f"consumer-{name}.log", env=env) for name in ("a", "b")}
    killed_by_us: set[int] = set()
    kill_at: dict[str, float] = {}

    def start(name: str) -> None:
        crash = crash_points.pop(0) if crash_points else ""
        slots[name].start(*chaos.consumer_args, *(("--test-crash-at", crash) if crash else ()))
        kill_at.pop(name, None)
        log.starts += 1

    def reap(name: str, wanted: bool) -> None:
        process = slots[name]
        if process.proc is not None and process.proc.poll() is not None:
            if process.proc.returncode == -9 and process.proc.pid not in killed_by_us:
                log.self_crashes += 1
            elif process.proc.returncode not in (-9, -15, 0):  # -15: stopped by us before it installed its handler
                raise AssertionError(f"consumer {name} exited with {process.proc.returncode}:\n{process.log()[-3000:]}")
            process.proc = None
        if wanted and process.proc is None:
            start(name)

    failures: list[str] = []
    producer = threading.Thread(target=_produce_paced, args=(topics, plan, chaos.produce_seconds, failures))
    began = time.monotonic()
    producer.start()
    try:
        while (
            log.external_kills < chaos.external_kills
            or crash_points
            or time.monotonic() - began < chaos.produce_seconds
        ):
            b_wanted = chaos.second_consumer[0] <= log.external_kills < chaos.second_consumer[1]
            reap("a", True)
            if not b_wanted and slots["b"].alive:
                slots["b"].stop()
            reap("b", b_wanted)
            consuming = [name for name, p in slots.items() if p.alive and p.has_partitions()]
            log.both_consuming |= len(consuming) == 2
            for name in consuming:
                kill_at.setdefault(name, time.monotonic() + rng.uniform(0.2, 2.5))
            due = [name for name in consuming if time.monotonic() >= kill_at[name]]
            if b_wanted and len(consuming) < 2:
                # while b is wanted, hold kills until both members hold partitions:
                # a kill 0.2-2.5 s after one member's assignment otherwise often
                # lands before the other finishes joining (a join takes ~1.5 s),
                # and the run never sees a two-member group at all
                due = []
            if due and log.external_kills < chaos.external_kills:
                victim = slots[rng.choice(due)]
                assert victim.proc is not None
                killed_by_us.add(victim.proc.pid)
                victim.kill()
                log.external_kills += 1
            assert time.monotonic() - began < 240, f"chaos phase did not finish: {log}"
            time.sleep(0.1)
        producer.join(120)
        assert not failures, failures
        # drain: one consumer, no more faults, until every partition is consumed to its end
        if slots["b"].alive:
            slots["b"].stop()
        ends = partition_ends(topics)
        deadline = time.monotonic() + chaos.drain_timeout
        while not _caught_up(topics, clickhouse, ends):
            assert time.monotonic() < deadline, (
                f"not caught up after {chaos.drain_timeout}s:\n{slots['a'].log()[-3000:]}"
            )
            reap("a", True)
            time.sleep(0.5)
    finally:
        for process in slots.values():
            process.stop()
    log.dead_letters = [message.value() for message in dead_letters(topics)]
    return check_sink(clickhouse, topics.events, plan), log


def test_chaos_kills_restarts_and_rebalances_lose_nothing_and_count_nothing_twice(unique_name, clickhouse, tmp_path):
    topics = make_topics(unique_name, partitions=4)
    chaos = ChaosSettings(
        messages=100_000,
        external_kills=6,
        produce_seconds=30.0,
        second_consumer=(1, 4),
        crash_points=("after-insert:3", "", "after-dedup:2", "", "after-insert:5", "after-dedup:4"),
        poison=25,
    )
    report, log = run_chaos(topics, clickhouse, tmp_path, chaos)
    print(report, dataclasses.replace(log, dead_letters=[]), f"{len(log.dead_letters)} dead letters")
    assert log.external_kills >= 5 and log.self_crashes >= 3 and log.both_consuming
    assert report.expected == 95_000
    assert report.ok, report
    # every poison row dead-lettered (a crash between the dead letter and the commit
    # may send one twice: acceptable), no good event dead-lettered
    poison = {value for value in log.dead_letters if b'"ts":"2200-01-01T00:00:00.000Z"' in value}
    good_dead_lettered = [value for value in log.dead_letters if value not in poison]
    assert len(poison) == chaos.poison and good_dead_lettered == []


NEGATIVE = partial(
    ChaosSettings, messages=20_000, external_kills=2, produce_seconds=8.0, second_consumer=(1, 2), seed=7
)


def test_negative_control_without_the_sink_seek_the_harness_reports_duplicates(unique_name, clickhouse, tmp_path):
    topics = make_topics(unique_name, partitions=4)
    chaos = NEGATIVE(crash_points=("after-insert:2", "after-insert:3"), consumer_args=("--test-no-sink-seek",))
    report, log = run_chaos(topics, clickhouse, tmp_path, chaos)
    print(report, log)
    assert log.self_crashes >= 1
    assert not report.ok
    # the replayed batches were counted twice (events' merges may already have collapsed the rows)
    assert report.aggregate_excess > 0 and report.hourly_mismatches > 0
    assert report.missing == 0


def test_negative_control_marks_without_identity_the_harness_reports_losses(unique_name, clickhouse, tmp_path):
    topics = make_topics(unique_name, partitions=4)
    chaos = NEGATIVE(crash_points=("after-dedup:2", "after-dedup:3"), consumer_args=("--test-no-mark-identity",))
    report, log = run_chaos(topics, clickhouse, tmp_path, chaos)
    print(report, log)
    assert log.self_crashes >= 1
    assert not report.ok
    assert report.missing > 0 and report.aggregate_excess == -report.missing
    assert report.duplicate_rows == 0 and report.hourly_mismatches > 0


def test_a_member_frozen_past_its_session_then_thawed_writes_nothing_twice(unique_name, clickhouse, tmp_path):
    """The zombie: member a is frozen (SIGSTOP: a long GC, a swapped-out host) while
    events arrive, b takes its partitions and writes from the sink's position, then
    a thaws with batches in flight. a must abandon them (lost assignment), not write
    them beside b's copy."""
    topics = make_topics(unique_name, partitions=4)
    plan = plan_events(30_000, retry_ratio=0.05, seed=31)
    env = {"KAFKA_SESSION_TIMEOUT_MS": "6000"}
    a = ConsumerProcess(topics, tmp_path / "consumer-a.log", env=env)
    b = ConsumerProcess(topics, tmp_path / "consumer-b.log", env=env)
    failures: list[str] = []
    producer = threading.Thread(target=_produce_paced, args=(topics, plan, 20.0, failures))
    try:
        a.start()
        wait_for(a.has_partitions, timeout=60, what="a's assignment")
        producer.start()
        time.sleep(3)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        b.start()
        wait_for(b.has_partitions, timeout=60, what="b's assignment while a is frozen")
        time.sleep(4)  # b writes from the sink's position
        a.proc.send_signal(signal.SIGCONT)
        producer.join(120)
        assert not failures, failures
        ends = partition_ends(topics)
        wait_for(lambda: _caught_up(topics, clickhouse, ends), timeout=120, what="both members to drain")
    finally:
        if a.proc is not None and a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        for process in (a, b):
            process.stop()
    report = check_sink(clickhouse, topics.events, plan)
    print(report)
    # the thawed member learnt that its assignment was lost (how much it abandoned
    # depends on where the freeze caught it: the rule itself is proven in
    # tests/pipeline/test_consumer_framework_rules.py)
    assert "assignment LOST" in a.log()
    assert report.ok, report


def _run_with_frozen_marks_server(
    unique_name: str, clickhouse, tmp_path: Path, *consumer_args: str
) -> tuple[SinkReport, str]:
    """Events flow (5 % client retries) through one consumer whose dedup marks live
    on a private Redis; that Redis is frozen (SIGSTOP) twice for longer than the
    marks client's 5 s socket timeout, and the consumer is killed with -9 and
    restarted between the freezes. A marks call sent while Redis is frozen times
    out in the consumer and runs on the server when it thaws: its retry must
    recognise its own marks."""
    server = PrivateServer("redis", tmp_path / "marks-var")
    server.up()
    topics = make_topics(unique_name, partitions=4)
    plan = plan_events(20_000, retry_ratio=0.05, seed=37)
    env = {"EVENTS_DEDUP_REDIS_URL": f"redis://127.0.0.1:{server.port}/1"}
    consumer = ConsumerProcess(topics, tmp_path / "consumer.log", *consumer_args, env=env)
    failures: list[str] = []
    producer = threading.Thread(target=_produce_paced, args=(topics, plan, 20.0, failures))
    frozen = False
    try:
        consumer.start()
        wait_for(consumer.has_partitions, timeout=60, what="the consumer's assignment")
        producer.start()
        for freeze_seconds in (8.0, 7.0):
            time.sleep(3)
            server.signal(signal.SIGSTOP)
            frozen = True
            time.sleep(freeze_seconds)
            server.signal(signal.SIGCONT)
            frozen = False
            if freeze_seconds == 8.0:  # then a crash while it retries what the freeze left behind
                time.sleep(1)
                consumer.kill()
                consumer.start()
                wait_for(consumer.has_partitions, timeout=60, what="the restarted consumer's assignment")
        producer.join(120)
        assert not failures, failures
        ends = partition_ends(topics)
        wait_for(lambda: _caught_up(topics, clickhouse, ends), timeout=120, what="the consumer to drain")
    finally:
        if frozen:
            server.signal(signal.SIGCONT)
        consumer.stop()
        server.down()
    return check_sink(clickhouse, topics.events, plan), consumer.log()


def test_the_marks_server_frozen_mid_stream_loses_nothing_and_counts_nothing_twice(unique_name, clickhouse, tmp_path):
    report, log = _run_with_frozen_marks_server(unique_name, clickhouse, tmp_path)
    print(report)
    assert "prepare failed" in log  # the freezes reached the consumer: its marks calls timed out and were retried
    assert report.ok, report


def test_negative_control_a_frozen_marks_server_without_mark_identity_loses_events(unique_name, clickhouse, tmp_path):
    # the marks call the freeze left behind ran on the thawed server; without the
    # marks naming their message, its retry takes those events for client retries
    report, log = _run_with_frozen_marks_server(unique_name, clickhouse, tmp_path, "--test-no-mark-identity")
    print(report)
    assert "prepare failed" in log
    assert report.missing > 0, report
