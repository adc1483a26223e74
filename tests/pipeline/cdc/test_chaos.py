"""Fault injection: random changes while the relay and the consumer are killed
(-9) at random moments and ClickHouse stalls mid-insert; at the end ClickHouse
must equal Postgres row for row. The negative control runs the same harness with
the consumer committing offsets before its ClickHouse insert, and must be caught.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.conf import settings

from nova.clickhouse import make_client
from pipeline.cdc.process import postgres_connector
from pipeline.cdc.relay import only_value, parse_lsn
from pipeline.topics import CDC_TABLES, cdc_topic
from tests.pipeline.cdc.conftest import CdcNamespace, wait_until
from tests.pipeline.cdc.workload import RandomChanges, compare, missing_in_clickhouse
from tests.support.processes import listener_pid

pytestmark = [
    pytest.mark.slow,
    pytest.mark.requires_postgres,
    pytest.mark.requires_kafka,
    pytest.mark.requires_clickhouse,
]


def clickhouse_pid() -> int:
    # by its socket, not var/clickhouse/clickhouse.pid: a CI clone may find the
    # server started by another checkout
    return listener_pid(settings.CLICKHOUSE.port)


@contextmanager
def clickhouse_frozen() -> Iterator[None]:
    pid = clickhouse_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


RATE = 350  # changes per second
TOTAL_ROWS = (
    "SELECT sum(c) FROM ("
    + " UNION ALL ".join(
        f"SELECT count() AS c FROM `{t}`" for t in ("users", "posts", "follows", "likes", "comments", "mutes")
    )
    + ")"
)


class Chaos:
    """Kills the relay and the consumer at random moments, and once kills the
    consumer while ClickHouse hangs in its insert. The consumer is only killed
    after it has been up long enough to join the group and write batches, so
    every consumer kill interrupts real work; the relay only once it advanced the
    slot since its start (on a loaded machine its start alone can take seconds)."""

    CONSUMER_MIN_UPTIME = 6.0
    RELAY_MIN_UPTIME = 2.5

    def __init__(self, ns: CdcNamespace, rng: random.Random, consumer_args: tuple[str, ...]) -> None:
        self.ns = ns
        self.rng = rng
        self.consumer_args = consumer_args
        self.started = {"relay": time.monotonic(), "consumer": time.monotonic()}
        self.relay = ns.start_relay()
        self.relay_started_at_lsn = ns.slot_confirmed_lsn()
        self.consumer = ns.start_consumer(*consumer_args)
        self.kills = {"relay": 0, "consumer": 0, "stalled_consumer": 0}
        self.stop = threading.Event()
        self.ch = make_client(settings.CLICKHOUSE, database=ns.ch_database)

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait(10)

    def restart(self, which: str) -> None:
        self.started[which] = time.monotonic()
        if which == "relay":
            self.relay = self.ns.start_relay()
            self.relay_started_at_lsn = self.ns.slot_confirmed_lsn()
        else:
            self.consumer = self.ns.start_consumer(*self.consumer_args)

    def up_for(self, which: str) -> float:
        return time.monotonic() - self.started[which]

    def relay_is_working(self) -> bool:
        return self.up_for("relay") >= self.RELAY_MIN_UPTIME and self.ns.slot_confirmed_lsn() not in (
            None,
            self.relay_started_at_lsn,
        )

    def consumer_is_writing(self) -> bool:
        before = self.ch.execute(TOTAL_ROWS)
        time.sleep(0.4)
        return self.ch.execute(TOTAL_ROWS) != before

    def run(self) -> None:
        rng = self.rng
        while not self.stop.wait(rng.uniform(0.5, 1.5)):
            consumer_ready = self.up_for("consumer") >= self.CONSUMER_MIN_UPTIME
            first = self.kills["stalled_consumer"] == 0
            stall_next = self.kills["stalled_consumer"] <= self.kills["consumer"]
            if (first or (consumer_ready and stall_next)) and self.consumer_is_writing():
                # the consumer dies while ClickHouse hangs in its insert
                with clickhouse_frozen():
                    time.sleep(1.5)
                    self.kill9(self.consumer)
                self.kills["stalled_consumer"] += 1
                self.restart("consumer")
                continue
            if not first and consumer_ready and not stall_next:
                which = "consumer"
            elif self.relay_is_working():
                which = "relay"
            else:
                continue
            self.kill9(self.relay if which == "relay" else self.consumer)
            self.kills[which] += 1
            time.sleep(rng.uniform(0.1, 1.0))
            self.restart(which)

    def enough(self) -> bool:
        kills = self.kills
        return kills["stalled_consumer"] >= 2 and kills["consumer"] >= 1 and kills["relay"] >= 3

    def ensure_running(self) -> None:
        if self.relay.poll() is not None:
            self.restart("relay")
        if self.consumer.poll() is not None:
            self.restart("consumer")


def caught_up(ns: CdcNamespace, wal_end: int) -> bool:
    """The slot confirmed everything written, and the group committed every message."""
    confirmed = ns.slot_confirmed_lsn()
    if confirmed is None or parse_lsn(confirmed) < wal_end:
        return False
    group = ns.env["CDC_CONSUMER_GROUP"]
    reader = Consumer({**ns.kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = [TopicPartition(cdc_topic(ns.kafka, t), p) for t in CDC_TABLES for p in range(3)]
        committed = reader.committed(partitions, timeout=10)
        for tp in committed:
            _low, high = reader.get_watermark_offsets(tp, timeout=10)
            if high > 0 and tp.offset < high:
                return False
        return True
    finally:
        reader.close()


def run_chaos(ns: CdcNamespace, changes: int, seed: int, consumer_args: tuple[str, ...] = ()) -> tuple[dict, dict]:
    rng = random.Random(seed)
    writer = postgres_connector(settings.DATABASES["default"])()
    writer.autocommit = True
    workload = RandomChanges(writer, random.Random(seed + 1))
    chaos = Chaos(ns, rng, consumer_args)
    thread = threading.Thread(target=chaos.run, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        # at least `changes`, and on until every kind of fault has happened (bounded)
        while workload.changes < changes or not chaos.enough():
            # 240 s: on a loaded 2-core machine the consumer writes in bursts, and the
            # stalled-consumer fault waits for a moment when it is writing
            assert time.monotonic() - started < 240, f"not enough faults: {chaos.kills}\n{ns.logs()}"
            workload.step()
            # pace the writes (~RATE changes/s) so the kills land throughout the run
            ahead = workload.changes / RATE - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    finally:
        chaos.stop.set()
        thread.join(30)
        writer.close()
    chaos.ensure_running()
    wal_end = parse_lsn(only_value(ns.pg.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()))
    # compare only once everything written is relayed and every message is committed
    wait_until(lambda: caught_up(ns, wal_end), 120, interval=1.0, message=f"pipeline did not catch up\n{ns.logs()}")
    return compare(ns.pg, ns.ch), chaos.kills


@pytest.mark.django_db(transaction=True)
def test_kill_9_relay_and_consumer_loses_nothing(cdc_ns: CdcNamespace) -> None:
    diffs, kills = run_chaos(cdc_ns, changes=10_000, seed=5)
    assert diffs == {}, f"ClickHouse != Postgres after kills {kills}: {diffs}\n{cdc_ns.logs()}"


# after the pipeline caught up, how long a row may still be on its way
GRACE_SECONDS = 15.0


@pytest.mark.django_db(transaction=True)
def test_negative_control_commit_before_write_is_detected(cdc_ns: CdcNamespace) -> None:
    """Rows must stay missing: a consumer merely behind would fill them in the grace period."""
    diffs, kills = run_chaos(cdc_ns, changes=10_000, seed=6, consumer_args=("--test-commit-before-write",))
    missing = missing_in_clickhouse(cdc_ns.pg, cdc_ns.ch)
    time.sleep(GRACE_SECONDS)
    still = missing_in_clickhouse(cdc_ns.pg, cdc_ns.ch)
    lost = {table: len(rows & still.get(table, set())) for table, rows in missing.items()}
    assert any(lost.values()), (
        f"the harness missed data loss with commit-before-write (kills {kills}, diffs {diffs}, "
        f"missing at catch-up { ({t: len(r) for t, r in missing.items()}) }, after {GRACE_SECONDS}s {lost})"
    )
