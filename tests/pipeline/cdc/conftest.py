"""Fixtures for CDC integration tests: a private namespace per test (replication
slot, publication, topic prefix, ClickHouse database) on the real local services,
and helpers that run the relay and the consumer as real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from nova.clickhouse import make_client
from nova.config import CdcConfig, KafkaConfig
from nova.kafka import admin_client
from pipeline.cdc.process import postgres_connector
from pipeline.cdc.relay import parse_lsn
from pipeline.clickhouse_migrations import MigrationRunner
from pipeline.topics import all_topics, ensure_topics

ROOT = Path(__file__).resolve().parents[3]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message or predicate}")
        time.sleep(interval)


def drop_slot(conn: psycopg.Connection[Any], slot: str) -> None:
    # a killed relay's backend may hold the slot for a moment
    for _ in range(50):
        try:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            )
            return
        except psycopg.errors.ObjectInUse:
            time.sleep(0.1)


@dataclass
class CdcNamespace:
    name: str
    cdc: CdcConfig
    kafka: KafkaConfig
    ch_database: str
    env: dict[str, str]
    ch: Any
    pg: psycopg.Connection[Any]
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    # ------------------------------------------------------------ subprocesses
    def start(self, command: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        index = len(self.processes)
        log = open(self.log_dir / f"{index:02d}_{command}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", command, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(proc)
        return proc

    def start_relay(self, *args: str) -> subprocess.Popen[bytes]:
        return self.start("run_cdc_relay", *args)

    def start_consumer(self, *args: str) -> subprocess.Popen[bytes]:
        return self.start("run_cdc_consumer", *args)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.log_dir.glob("*.log")))

    def stop_all(self) -> None:
        # SIGTERM first: a consumer that leaves its group cleanly spares the next
        # test's consumer a wait for this one's session to expire
        running = [proc for proc in self.processes if proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    # ------------------------------------------------------------ state
    def slot_position(self) -> int:
        """The slot's confirmed position (the slot must exist)."""
        confirmed = self.slot_confirmed_lsn()
        assert confirmed is not None, f"no replication slot {self.cdc.slot_name}"
        return parse_lsn(confirmed)

    def slot_confirmed_lsn(self) -> str | None:
        row = self.pg.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (self.cdc.slot_name,)
        ).fetchone()
        return row[0] if row else None


@pytest.fixture
def cdc_ns(transactional_db: None, clickhouse_db: str, tmp_path: Path) -> Iterator[CdcNamespace]:
    """A private CDC namespace; rows written through the ORM are visible to subprocesses."""
    name = f"t{uuid.uuid4().hex[:8]}"
    ch_database = f"nova_{name}"
    admin = make_client(settings.CLICKHOUSE, database="default")
    ch = make_client(settings.CLICKHOUSE, database=ch_database)
    MigrationRunner(ch, admin, ch_database, settings.CLICKHOUSE_SQL_DIR).apply()
    kafka = replace(settings.KAFKA, topic_prefix=f"nova{name}", partitions=3)
    ensure_topics(admin_client(kafka), all_topics(kafka), partitions=3, replication_factor=1)
    cdc = replace(settings.CDC, slot_name=f"{name}_slot", publication_name=f"{name}_pub")
    db = settings.DATABASES["default"]
    database_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "NOVA_TEST_NAMESPACE": name,
        "DATABASE_URL": database_url,
        "CDC_SLOT_NAME": cdc.slot_name,
        "CDC_PUBLICATION_NAME": cdc.publication_name,
        # its own group: consumers of other namespaces never join (and rebalance) it
        "CDC_CONSUMER_GROUP": f"{name}-cdc",
        "CDC_RELAY_POLL_SECONDS": "0.05",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        # several test runs share this machine: no fixed /metrics ports
        "CDC_CONSUMER_METRICS_PORT": "0",
        "CDC_RELAY_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    pg = postgres_connector(db)()
    pg.autocommit = True
    # a slot left by a crashed run pins WAL and keeps test_nova from being dropped
    for (leftover,) in pg.execute(
        "SELECT slot_name FROM pg_replication_slots WHERE database = current_database() AND NOT active"
    ).fetchall():
        drop_slot(pg, leftover)
    namespace = CdcNamespace(name, cdc, kafka, ch_database, env, ch, pg, tmp_path)
    try:
        yield namespace
    finally:
        namespace.stop_all()
        drop_slot(pg, cdc.slot_name)
        pg.execute(f'DROP PUBLICATION IF EXISTS "{cdc.publication_name}"')
        pg.close()
        admin.execute(f"DROP DATABASE IF EXISTS `{ch_database}`")
        admin_client(kafka).delete_topics(all_topics(kafka), operation_timeout=5)
        connection.close()


def send_sigterm(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)
