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
from pathlib import Path

import pytest
from django.conf import settings

from pipeline.cdc.process import postgres_connector
from tests.pipeline.cdc.conftest import ROOT, CdcNamespace, wait_until
from tests.pipeline.cdc.workload import RandomChanges, compare

pytestmark = [
    pytest.mark.slow,
    pytest.mark.requires_postgres,
    pytest.mark.requires_kafka,
    pytest.mark.requires_clickhouse,
]


def clickhouse_pid() -> int:
    var = Path(os.environ.get("NOVA_VAR_DIR", "var"))
    return int(((ROOT / var) if not var.is_absolute() else var).joinpath("clickhouse", "clickhouse.pid").read_text())


@contextmanager
def clickhouse_frozen() -> Iterator[None]:
    pid = clickhouse_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class Chaos:
    def __init__(self, ns: CdcNamespace, rng: random.Random, consumer_args: tuple[str, ...]) -> None:
        self.ns = ns
        self.rng = rng
        self.consumer_args = consumer_args
        self.relay = ns.start_relay()
        self.consumer = ns.start_consumer(*consumer_args)
        self.kills = {"relay": 0, "consumer": 0, "stalled_consumer": 0}
        self.stop = threading.Event()

    def kill9(self, proc: subprocess.Popen[bytes]) -> None:
        proc.kill()
        proc.wait(10)

    def restart(self, which: str) -> None:
        if which == "relay":
            self.relay = self.ns.start_relay()
        else:
            self.consumer = self.ns.start_consumer(*self.consumer_args)

    def run(self) -> None:
        rng = self.rng
        round_ = 0
        while not self.stop.wait(rng.uniform(1.0, 3.0)):
            round_ += 1
            if round_ == 2:
                # the consumer dies while ClickHouse hangs in its insert
                with clickhouse_frozen():
                    time.sleep(1.0)
                    self.kill9(self.consumer)
                self.kills["stalled_consumer"] += 1
                self.restart("consumer")
                continue
            which = rng.choice(["relay", "consumer"])
            self.kill9(self.relay if which == "relay" else self.consumer)
            self.kills[which] += 1
            time.sleep(rng.uniform(0.1, 1.0))
            self.restart(which)


def run_chaos(
    ns: CdcNamespace, changes: int, seed: int, consumer_args: tuple[str, ...] = (), expect_loss: bool = False
) -> tuple[dict, dict]:
    rng = random.Random(seed)
    writer = postgres_connector(settings.DATABASES["default"])()
    writer.autocommit = True
    workload = RandomChanges(writer, random.Random(seed + 1))
    chaos = Chaos(ns, rng, consumer_args)
    thread = threading.Thread(target=chaos.run, daemon=True)
    thread.start()
    try:
        while workload.changes < changes:
            workload.step()
    finally:
        chaos.stop.set()
        thread.join(30)
        writer.close()
    assert sum(chaos.kills.values()) >= 3, chaos.kills
    if expect_loss:
        settle(ns)
    else:
        try:
            wait_until(lambda: compare(ns.pg, ns.ch) == {}, 60, interval=1.0)
        except AssertionError:
            pass
    return compare(ns.pg, ns.ch), chaos.kills


def settle(ns: CdcNamespace, quiet_seconds: float = 8.0, timeout: float = 60.0) -> None:
    """Wait until ClickHouse stops changing (longer than a consumer rebalance takes)."""
    count = "SELECT sum(c) FROM (" + " UNION ALL ".join(
        f"SELECT count() AS c FROM `{t}`" for t in ("users", "posts", "follows", "likes", "comments", "mutes")
    ) + ")"
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        current = ns.ch.execute(count)
        if current != last:
            last, since = current, time.monotonic()
        elif time.monotonic() - since >= quiet_seconds:
            return
        time.sleep(0.5)


@pytest.mark.django_db(transaction=True)
def test_kill_9_relay_and_consumer_loses_nothing(cdc_ns: CdcNamespace) -> None:
    diffs, kills = run_chaos(cdc_ns, changes=10_000, seed=5)
    assert diffs == {}, f"ClickHouse != Postgres after kills {kills}: {diffs}\n{cdc_ns.logs()}"


@pytest.mark.django_db(transaction=True)
def test_negative_control_commit_before_write_is_detected(cdc_ns: CdcNamespace) -> None:
    diffs, kills = run_chaos(cdc_ns, changes=4_000, seed=6, consumer_args=("--test-commit-before-write",), expect_loss=True)
    assert diffs != {}, f"the harness missed data loss with commit-before-write (kills {kills})"
