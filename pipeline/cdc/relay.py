"""The CDC relay: a pgoutput logical replication slot -> Debezium envelopes on Kafka.

Pipeline, one `pump()` at a time:

1. read the server's WAL flush position T;
2. peek (never consume) the slot's changes up to T, at most `peek_max_rows` rows,
   through a server-side cursor so a big transaction is streamed, not held;
3. parse each pgoutput message, build the Debezium records and produce them
   (acks=all, idempotent producer, key = primary key JSON);
4. flush the producer; only when every message is acknowledged advance the slot:
   to the end of the last complete transaction, or to T when the peek came back
   short (it then saw everything written before T, which also confirms progress
   while the published tables are idle and other tables write WAL).

A crash anywhere before step 4 replays the same transactions on restart: the
relay is at-least-once, and the consumer's `_version` (the change LSN) makes a
replay harmless. psycopg 3 does not speak the streaming replication protocol,
hence the SQL interface (peek + pg_replication_slot_advance).

The initial snapshot runs after the slot exists, in a REPEATABLE READ
transaction, and emits `op: r`. It is not the slot's exported snapshot (the SQL
interface cannot export one), so snapshot and stream overlap; the overlap is
replay-safe because snapshot rows carry `_version` 0 in ClickHouse and every
streamed change a larger one (see docs/architecture/cdc.md). Whether the
snapshot finished is kept in Postgres (`nova_cdc_relay_state`), so a crash
mid-snapshot redoes it instead of skipping it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import orjson
import psycopg
from confluent_kafka import KafkaException, Producer
from psycopg import sql
from psycopg.types.string import TextLoader

from monitoring import metrics
from nova.config import CdcConfig, KafkaConfig
from nova.kafka import produce_waiting
from pipeline.cdc import pgoutput as pg
from pipeline.cdc.envelope import Record, SourceInfo, change_records, snapshot_record, truncate_record
from pipeline.topics import CDC_TABLES, cdc_topic

log = logging.getLogger(__name__)

# The users stream carries only what ranking needs: never password hashes or e-mail.
PUBLISHED_COLUMNS: dict[str, tuple[str, ...] | None] = {
    "users": ("id", "username", "display_name", "date_joined", "is_active"),
    "posts": None,
    "follows": None,
    "likes": None,
    "comments": None,
    "mutes": None,
}
STATE_TABLE = "nova_cdc_relay_state"
# The text form of values depends on the decoding session: pin it so timestamps are
# UTC ISO, floats round-trip and bytea is hex, whatever the server's defaults.
SESSION_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
}
PRODUCE_CHUNK = 10_000


def only_value(row: tuple[Any, ...] | None) -> Any:
    """The first column of the row a function call returns (it always returns one)."""
    if row is None:
        raise RuntimeError("Postgres returned no row where one is always returned")
    return row[0]


class DeliveryFailed(Exception):
    """The broker did not acknowledge every message; the slot must not advance."""


@dataclass
class PumpResult:
    rows: int = 0
    records: int = 0
    advanced_to: int | None = None
    caught_up: bool = False


@dataclass
class _Txn:
    xid: int | None = None
    commit_ts_ms: int = 0


@dataclass
class RelayState:
    relations: dict[int, pg.Relation] = field(default_factory=dict)
    confirmed_lsn: int = 0
    last_confirm_at: float = 0.0
    caught_up_at: float = field(default_factory=time.time)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def make_producer(kafka: KafkaConfig) -> Producer:
    return Producer(
        {
            **kafka.client_config(),
            # the slot advances only past acknowledged messages: all replicas, no dupes
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            # Java's partitioner, as Debezium (Kafka Connect) uses: same key -> same partition
            "partitioner": "murmur2_random",
            "message.timeout.ms": 30_000,
            "queue.buffering.max.messages": 200_000,
        }
    )


class Relay:
    def __init__(
        self,
        cdc: CdcConfig,
        kafka: KafkaConfig,
        connect: Callable[[], psycopg.Connection[Any]],
        producer_factory: Callable[[], Producer],
        db_name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cdc = cdc
        self.kafka = kafka
        self._connect = connect
        self._producer_factory = producer_factory
        self.db_name = db_name
        self.clock = clock
        self.conn: psycopg.Connection[Any] | None = None
        self.producer: Producer | None = None
        self.state = RelayState()
        self._delivery_errors: list[str] = []
        self._primary_keys: dict[str, tuple[str, ...]] = {}
        self._topics = {table: cdc_topic(kafka, table) for table in CDC_TABLES}

    # ------------------------------------------------------------ connections
    def open(self) -> None:
        if self.conn is None or self.conn.closed:
            self.conn = self._connect()
            self.conn.autocommit = True
            for name, value in SESSION_SETTINGS.items():
                self.conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        if self.producer is None:
            self.producer = self._producer_factory()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        # a producer with undelivered messages is dropped: those changes are not
        # confirmed in the slot, so they will be peeked and produced again
        self.producer = None

    # ------------------------------------------------------------ set-up
    def ensure_publication(self) -> None:
        """Create the publication, or reset it to exactly our tables and columns."""
        assert self.conn is not None
        tables = sql.SQL(", ").join(
            sql.SQL("{} ({})").format(sql.Identifier(t), sql.SQL(", ").join(map(sql.Identifier, cols)))
            if cols
            else sql.Identifier(t)
            for t, cols in PUBLISHED_COLUMNS.items()
        )
        name = sql.Identifier(self.cdc.publication_name)
        exists = self.conn.execute(
            "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.cdc.publication_name,)
        ).fetchone()
        verb = "ALTER PUBLICATION {} SET TABLE {}" if exists else "CREATE PUBLICATION {} FOR TABLE {}"
        self.conn.execute(sql.SQL(verb).format(name, tables))
        identities = dict(
            self.conn.execute(
                "SELECT relname, relreplident FROM pg_class WHERE relname = ANY(%s) AND relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace",
                (list(PUBLISHED_COLUMNS),),
            ).fetchall()
        )
        # without the whole old row, unchanged TOAST cannot be filled; a table with a
        # column list must use its primary key instead (feed migration 0003)
        wrong = [t for t, cols in PUBLISHED_COLUMNS.items() if identities.get(t) != ("d" if cols else "f")]
        if wrong:
            raise RuntimeError(f"tables with an unexpected REPLICA IDENTITY (run migrations): {wrong}")

    def ensure_slot(self) -> bool:
        """Create the slot if missing; True when it was created now (a snapshot is due)."""
        assert self.conn is not None
        self.conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (slot_name text PRIMARY KEY, snapshot_done boolean NOT NULL,"
                " updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(STATE_TABLE))
        )
        row = self.conn.execute(
            "SELECT plugin, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s",
            (self.cdc.slot_name,),
        ).fetchone()
        if row:
            if row[0] != "pgoutput":
                raise RuntimeError(f"slot {self.cdc.slot_name} uses plugin {row[0]}, not pgoutput")
            self.state.confirmed_lsn = parse_lsn(row[1])
            return False
        # the slot must exist before the snapshot starts: everything committed after
        # the snapshot is then in the stream (no gap)
        lsn = only_value(
            self.conn.execute(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (self.cdc.slot_name,)
            ).fetchone()
        )
        self.state.confirmed_lsn = parse_lsn(lsn)
        self._set_snapshot_done(False)
        log.info("created replication slot %s at %s", self.cdc.slot_name, lsn)
        return True

    def snapshot_pending(self) -> bool:
        assert self.conn is not None
        row = self.conn.execute(
            sql.SQL("SELECT snapshot_done FROM {} WHERE slot_name = %s").format(sql.Identifier(STATE_TABLE)),
            (self.cdc.slot_name,),
        ).fetchone()
        # a slot created by someone else (or before the state table) gets a snapshot too
        return row is None or not row[0]

    def _set_snapshot_done(self, done: bool) -> None:
        assert self.conn is not None
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {} (slot_name, snapshot_done) VALUES (%s, %s) "
                "ON CONFLICT (slot_name) DO UPDATE SET snapshot_done = EXCLUDED.snapshot_done, updated_at = now()"
            ).format(sql.Identifier(STATE_TABLE)),
            (self.cdc.slot_name, done),
        )

    def request_snapshot(self) -> None:
        self._set_snapshot_done(False)

    # ------------------------------------------------------------ snapshot
    def table_relation(self, table: str) -> pg.Relation:
        """The published columns of `table`, as pgoutput would describe them."""
        assert self.conn is not None
        rows = self.conn.execute(
            """
            SELECT c.oid, a.attname, a.atttypid, a.atttypmod,
                   coalesce(a.attnum = ANY(i.indkey), false) AS is_key
            FROM pg_class c
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
            WHERE c.relname = %s AND c.relnamespace = 'public'::regnamespace
            ORDER BY a.attnum
            """,
            (table,),
        ).fetchall()
        if not rows:
            raise RuntimeError(f"table public.{table} does not exist")
        published = PUBLISHED_COLUMNS[table]
        columns = tuple(
            pg.Column(name=name, type_oid=type_oid, type_modifier=typmod, is_key=is_key)
            for _, name, type_oid, typmod, is_key in rows
            if published is None or name in published
        )
        return pg.Relation(oid=rows[0][0], namespace="public", name=table, replica_identity="f", columns=columns)

    def snapshot(self, chunk_rows: int = 5_000) -> int:
        """Emit every published row as `op: r`; mark the snapshot done once all are acked."""
        assert self.conn is not None and self.producer is not None
        relations = [self.table_relation(table) for table in CDC_TABLES]
        now_ms = int(self.clock() * 1000)
        total = 0
        pending: Record | None = None
        with self.conn.transaction():
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            lsn = parse_lsn(only_value(self.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()))
            source = SourceInfo(self.kafka.topic_prefix, self.db_name, None, now_ms)
            for relation in relations:
                columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in relation.columns)
                order = sql.SQL(", ").join(map(sql.Identifier, relation.key_columns))
                query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(columns, sql.Identifier(relation.name), order)
                with self.conn.cursor(name=f"cdc_snapshot_{relation.name}") as cursor:
                    # keep each value in its output-function text form, exactly what
                    # pgoutput sends (a ::text cast differs: bool gives 'true', not 't')
                    for column in relation.columns:
                        cursor.adapters.register_loader(column.type_oid, TextLoader)
                    cursor.execute(query)
                    while rows := cursor.fetchmany(chunk_rows):
                        for values in rows:
                            if pending is not None:
                                self._produce(pending)
                            row = {
                                c.name: pg.decode_value(c.type_oid, v)
                                for c, v in zip(relation.columns, values, strict=True)
                            }
                            pending = snapshot_record(relation, row, source, lsn, "true", now_ms)
                            total += 1
                        self._flush()
        if pending is not None:
            assert pending.value is not None
            pending.value["source"]["snapshot"] = "last"
            self._produce(pending)
        self._flush()
        self._set_snapshot_done(True)
        log.info("snapshot of slot %s: %d rows", self.cdc.slot_name, total)
        return total

    # ------------------------------------------------------------ streaming
    def pump(self) -> PumpResult:
        """Relay one bounded peek of the slot; advance it past what the broker acked."""
        assert self.conn is not None and self.producer is not None
        result = PumpResult()
        looked_at = self.clock()
        target = parse_lsn(only_value(self.conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()))
        relations = self.state.relations
        relations.clear()  # each peek is a new decoding session: Relation messages are re-sent
        txn = _Txn()
        last_commit_end: int | None = None
        now_ms = int(self.clock() * 1000)
        produced_since_flush = 0
        with self.conn.transaction(), self.conn.cursor(name="cdc_peek") as cursor:
            cursor.execute(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes("
                "%s, %s::pg_lsn, %s, 'proto_version', '1', 'publication_names', %s)",
                (self.cdc.slot_name, format_lsn(target), self.cdc.peek_max_rows, self.cdc.publication_name),
            )
            while rows := cursor.fetchmany(2_000):
                for lsn_text, data in rows:
                    result.rows += 1
                    message = pg.parse_message(bytes(data))
                    if isinstance(message, pg.Begin):
                        txn = _Txn(xid=message.xid, commit_ts_ms=message.commit_ts_micros // 1000)
                    elif isinstance(message, pg.Commit):
                        last_commit_end = message.end_lsn
                    elif isinstance(message, pg.Relation):
                        relations[message.oid] = self._with_primary_key(message)
                    elif isinstance(message, (pg.Insert, pg.Update, pg.Delete)):
                        relation = relations[message.relation_oid]
                        source = SourceInfo(self.kafka.topic_prefix, self.db_name, txn.xid, txn.commit_ts_ms)
                        for record in change_records(relation, message, source, parse_lsn(lsn_text), now_ms):
                            self._produce(record)
                            produced_since_flush += 1
                            result.records += 1
                    elif isinstance(message, pg.Truncate):
                        source = SourceInfo(self.kafka.topic_prefix, self.db_name, txn.xid, txn.commit_ts_ms)
                        for oid in message.relation_oids:
                            self._produce(truncate_record(relations[oid], source, parse_lsn(lsn_text), now_ms))
                            produced_since_flush += 1
                            result.records += 1
                    # Type, Origin and logical Message carry nothing the replicas need
                    if produced_since_flush >= PRODUCE_CHUNK:
                        # bound the producer's queue inside a big transaction; the slot
                        # still only advances at a commit boundary, below
                        self._flush()
                        produced_since_flush = 0
        self._flush()
        result.caught_up = result.rows < self.cdc.peek_max_rows
        advance_to = last_commit_end
        if result.caught_up:
            # the peek decoded every transaction that committed before `target`
            advance_to = max(target, last_commit_end or 0)
            self.state.caught_up_at = looked_at
        if advance_to is not None and advance_to > self.state.confirmed_lsn:
            idle = result.records == 0
            if not idle or self.clock() - self.state.last_confirm_at >= self.cdc.idle_confirm_interval:
                self._advance(advance_to)
                result.advanced_to = advance_to
        return result

    def _with_primary_key(self, relation: pg.Relation) -> pg.Relation:
        """pgoutput flags replica identity columns (all of them under FULL): the
        Kafka key is the primary key, so take the key flags from the catalog."""
        if relation.name not in self._primary_keys:
            self._primary_keys[relation.name] = self.table_relation(relation.name).key_columns
        keys = self._primary_keys[relation.name]
        columns = tuple(replace(c, is_key=c.name in keys) for c in relation.columns)
        return replace(relation, columns=columns)

    def _advance(self, lsn: int) -> None:
        assert self.conn is not None
        self.conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (self.cdc.slot_name, format_lsn(lsn)))
        self.state.confirmed_lsn = lsn
        self.state.last_confirm_at = self.clock()

    def report_lag(self) -> tuple[int, float]:
        assert self.conn is not None
        row = self.conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (self.cdc.slot_name,),
        ).fetchone()
        lag_bytes = int(row[0]) if row and row[0] is not None else 0
        lag_seconds = max(0.0, self.clock() - self.state.caught_up_at)
        metrics.CDC_SLOT_LAG_BYTES.labels(self.cdc.slot_name).set(lag_bytes)
        metrics.CDC_SLOT_LAG_SECONDS.labels(self.cdc.slot_name).set(lag_seconds)
        return lag_bytes, lag_seconds

    # ------------------------------------------------------------ kafka
    def _on_delivery(self, table: str, op: str, error: Any, message: Any) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error}")
        else:
            # counted when the broker acknowledged it, not when it was handed to the producer
            metrics.CDC_RELAY_CHANGES.labels(table, op).inc()

    def _produce(self, record: Record) -> None:
        assert self.producer is not None
        key = orjson.dumps(record.key) if record.key is not None else None
        value = orjson.dumps(record.value) if record.value is not None else None
        op = record.value["op"] if record.value is not None else "tombstone"
        produce_waiting(
            self.producer,
            self._topics[record.table],
            key,
            value,
            poll_seconds=0.1,
            on_delivery=partial(self._on_delivery, record.table, op),
        )

    def _flush(self, timeout: float = 30.0) -> None:
        assert self.producer is not None
        remaining = self.producer.flush(timeout)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors[:5], []
            raise DeliveryFailed(f"{remaining} message(s) unacknowledged; errors: {errors}")


def with_backoff(attempt: int, max_backoff: float) -> float:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... up to max_backoff."""
    return random.uniform(0, min(max_backoff, 0.5 * 2**attempt))


RETRYABLE: tuple[type[BaseException], ...] = (psycopg.OperationalError, DeliveryFailed, KafkaException)


def run(
    relay: Relay,
    should_stop: Callable[[], bool],
    force_snapshot: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Set up, snapshot if due, then pump until told to stop; reconnect with backoff."""
    attempt = 0
    set_up = False
    while not should_stop():
        try:
            relay.open()
            if not set_up:
                relay.ensure_publication()
                relay.ensure_slot()
                if force_snapshot:
                    relay.request_snapshot()
                    force_snapshot = False
                if relay.snapshot_pending():
                    relay.snapshot()
                set_up = True
            result = relay.pump()
            relay.report_lag()
            attempt = 0
            if result.caught_up:
                sleep(relay.cdc.poll_interval)
        except RETRYABLE as exc:
            cause = "postgres" if isinstance(exc, psycopg.Error) else "kafka"
            metrics.CDC_RELAY_RECONNECTS.labels(cause).inc()
            delay = with_backoff(attempt, relay.cdc.reconnect_max_backoff)
            attempt += 1
            log.warning("relay: %s failure (%s); retrying in %.1fs", cause, exc, delay)
            relay.close()
            sleep(delay)
    relay.close()
