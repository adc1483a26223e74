"""Debezium-compatible change events from decoded pgoutput changes (pure).

One database change becomes one or more Kafka records `(table, key, value)`:

- insert -> `c`; snapshot row -> `r`;
- update -> `u`, or, when the primary key changed, Debezium's three records:
  `d` for the old key, a tombstone for the old key, `c` for the new key;
- delete -> `d` followed by a tombstone (value None) with the same key, so log
  compaction can drop the key;
- truncate -> `t` with no key (one per truncated table).

Unchanged TOASTed columns ('u' in pgoutput) are filled from the old row image,
which REPLICA IDENTITY FULL always sends: a placeholder never leaves the relay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.cdc.pgoutput import UNCHANGED_TOAST, Delete, Insert, Relation, TupleValue, Update, decode_value

RELAY_VERSION = "nova-relay-1"
CONNECTOR = "postgresql"


class UnfillableToast(ValueError):
    """An unchanged TOASTed column with no old row image to fill it from."""


@dataclass(frozen=True)
class SourceInfo:
    """What Debezium puts in `source`, minus the per-change lsn."""

    server_name: str  # Debezium's topic.prefix
    db: str
    txid: int | None
    ts_ms: int  # commit time (snapshot: snapshot start), epoch millis


@dataclass(frozen=True)
class Record:
    table: str
    key: dict[str, Any] | None
    value: dict[str, Any] | None  # None: tombstone


def tuple_to_row(relation: Relation, values: Sequence[TupleValue]) -> dict[str, Any]:
    """pgoutput tuple -> {column: JSON value}; unchanged TOAST stays as the sentinel."""
    if len(values) != len(relation.columns):
        raise ValueError(
            f"{relation.namespace}.{relation.name}: tuple has {len(values)} values for {len(relation.columns)} columns"
        )
    return {
        column.name: value if value is UNCHANGED_TOAST else decode_value(column.type_oid, value)  # type: ignore[arg-type]
        for column, value in zip(relation.columns, values, strict=True)
    }


def fill_unchanged(new: dict[str, Any], old: dict[str, Any] | None, table: str) -> dict[str, Any]:
    if not any(value is UNCHANGED_TOAST for value in new.values()):
        return new
    filled = dict(new)
    for name, value in new.items():
        if value is UNCHANGED_TOAST:
            if old is None or old.get(name) is UNCHANGED_TOAST or name not in old:
                raise UnfillableToast(
                    f"{table}.{name}: unchanged TOAST value and no old row image; set REPLICA IDENTITY FULL"
                )
            filled[name] = old[name]
    return filled


def primary_key(relation: Relation, row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in relation.key_columns}


def envelope(
    relation: Relation,
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    source: SourceInfo,
    lsn: int | None,
    snapshot: str,
    ts_ms: int,
) -> dict[str, Any]:
    return {
        "before": before,
        "after": after,
        "source": {
            "version": RELAY_VERSION,
            "connector": CONNECTOR,
            "name": source.server_name,
            "ts_ms": source.ts_ms,
            "snapshot": snapshot,
            "db": source.db,
            "schema": relation.namespace,
            "table": relation.name,
            "txId": source.txid,
            "lsn": lsn,
            "xmin": None,
        },
        "op": op,
        "ts_ms": ts_ms,
    }


def change_records(
    relation: Relation, change: Insert | Update | Delete, source: SourceInfo, lsn: int, ts_ms: int
) -> list[Record]:
    """One streamed row change -> its Debezium records, in the order to produce them."""
    table = relation.name

    def make(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
        return envelope(relation, op, before, after, source, lsn, "false", ts_ms)

    if isinstance(change, Insert):
        after = fill_unchanged(tuple_to_row(relation, change.new), None, table)
        return [Record(table, primary_key(relation, after), make("c", None, after))]
    if isinstance(change, Delete):
        before = tuple_to_row(relation, change.old)
        if any(value is UNCHANGED_TOAST for value in before.values()):
            raise UnfillableToast(f"{table}: delete without a full old row; set REPLICA IDENTITY FULL")
        key = primary_key(relation, before)
        return [Record(table, key, make("d", before, None)), Record(table, key, None)]
    old = tuple_to_row(relation, change.old) if change.old is not None else None
    after = fill_unchanged(tuple_to_row(relation, change.new), old if change.old_kind == "O" else None, table)
    # with a key-only identity ('K') `old` is partial, as Debezium shows `before`
    new_key = primary_key(relation, after)
    if old is not None and (old_key := primary_key(relation, old)) != new_key:
        return [
            Record(table, old_key, make("d", old, None)),
            Record(table, old_key, None),
            Record(table, new_key, make("c", None, after)),
        ]
    return [Record(table, new_key, make("u", old, after))]


def snapshot_record(
    relation: Relation, row: dict[str, Any], source: SourceInfo, lsn: int, snapshot: str, ts_ms: int
) -> Record:
    """A row read by the initial snapshot -> `op: r` (snapshot is "true" or "last")."""
    return Record(
        relation.name, primary_key(relation, row), envelope(relation, "r", None, row, source, lsn, snapshot, ts_ms)
    )


def truncate_record(relation: Relation, source: SourceInfo, lsn: int, ts_ms: int) -> Record:
    return Record(relation.name, None, envelope(relation, "t", None, None, source, lsn, "false", ts_ms))
