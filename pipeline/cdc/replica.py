"""Debezium change events -> rows of the ClickHouse replica tables (pure).

Accepts what Debezium's PostgreSQL connector writes with the JSON converter, with
or without the `{"schema": ..., "payload": ...}` wrapper, as well as our relay's
output (the same envelope). A message that cannot be turned into a row raises
`InvalidChange`: the consumer dead-letters it. That includes a value its
column cannot hold (Int64 ids, DateTime 1970..2105, UInt64 versions), which
would otherwise fail every insert of its batch.

Versions: `_version` is the change's LSN (`source.lsn`), which grows with every
change of a row, so ReplacingMergeTree keeps the newest. Snapshot rows (`op: r`)
get version 0: every streamed change is newer than what the snapshot read (the
slot existed before the snapshot began), so a snapshot row only fills a key the
stream has not touched and never overwrites a streamed one (docs/architecture/cdc.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from nova.clickhouse import DATETIME_MAX_SECONDS, DATETIME_MIN_SECONDS, INT64_MAX, INT64_MIN, UINT64_MAX

SNAPSHOT_VERSION = 0
# what Debezium puts in a column it could not read (unchanged TOAST, no old image)
DEBEZIUM_UNAVAILABLE = "__debezium_unavailable_value"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidChange(ValueError):
    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason  # a metric label: invalid, not_json, unknown_table


# column kinds: "int", "str", "bool", "ts" (timestamptz, NOT NULL), "ts?" (nullable)
REPLICA_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "users": (
        ("id", "int"),
        ("username", "str"),
        ("display_name", "str"),
        ("date_joined", "ts"),
        ("is_active", "bool"),
    ),
    "posts": (
        ("id", "int"),
        ("author_id", "int"),
        ("body", "str"),
        ("media_url", "str"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
        ("deleted_at", "ts?"),
    ),
    "follows": (("id", "int"), ("follower_id", "int"), ("followee_id", "int"), ("created_at", "ts")),
    "likes": (("id", "int"), ("user_id", "int"), ("post_id", "int"), ("created_at", "ts")),
    "comments": (("id", "int"), ("user_id", "int"), ("post_id", "int"), ("body", "str"), ("created_at", "ts")),
    "mutes": (("id", "int"), ("user_id", "int"), ("muted_id", "int"), ("created_at", "ts")),
}
KEY_COLUMN = "id"


def clickhouse_columns(table: str) -> list[str]:
    """The replica table's column names, in the order `row_values` returns them."""
    names: list[str] = []
    for name, kind in REPLICA_TABLES[table]:
        names.append(name)
        if kind.startswith("ts"):
            names.append(f"{name}_us")
    return [*names, "_deleted", "_version"]


@dataclass(frozen=True)
class RowChange:
    table: str
    values: tuple[Any, ...]  # in clickhouse_columns(table) order
    # a snapshot row's source.lsn (its _version is 0): where in the log it was read
    snapshot_lsn: int | None = field(default=None, compare=False)

    @property
    def version(self) -> int:
        return int(self.values[-1])

    @property
    def position(self) -> int | None:
        """The change's place in the log (None: a snapshot row that does not say)."""
        return self.snapshot_lsn if self.version == SNAPSHOT_VERSION else self.version

    def deleted_by_truncate(self, truncate_lsn: int) -> RowChange:
        """This row again, deleted at the truncate's version: a later change of its key still wins."""
        return RowChange(self.table, (*self.values[:-2], 1, truncate_lsn), self.snapshot_lsn)


@dataclass(frozen=True)
class TruncateChange:
    table: str
    version: int


Change = RowChange | TruncateChange


def parse_timestamp(value: Any, column: str) -> tuple[datetime, int]:
    """ZonedTimestamp ISO string, or MicroTimestamp epoch micros -> (DateTime, micros)."""
    if isinstance(value, bool):
        raise InvalidChange(f"{column}: expected a timestamp, got {value!r}")
    if isinstance(value, int):
        micros = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidChange(f"{column}: not an ISO-8601 timestamp: {value[:40]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        delta = parsed - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    else:
        raise InvalidChange(f"{column}: expected a timestamp, got {type(value).__name__}")
    seconds = micros // 1_000_000
    if not DATETIME_MIN_SECONDS <= seconds <= DATETIME_MAX_SECONDS or not INT64_MIN <= micros <= INT64_MAX:
        raise InvalidChange(f"{column}: timestamp {value!r} is outside ClickHouse DateTime's range")
    return datetime.fromtimestamp(seconds, tz=UTC), micros


def _convert(table: str, row: dict[str, Any], deleted: bool) -> list[Any]:
    values: list[Any] = []
    for name, kind in REPLICA_TABLES[table]:
        value = row.get(name)
        column = f"{table}.{name}"
        if value == DEBEZIUM_UNAVAILABLE:
            raise InvalidChange(f"{column}: value unavailable (unchanged TOAST without REPLICA IDENTITY FULL)")
        if value is None and name != KEY_COLUMN and (deleted or kind == "ts?"):
            # a delete under a key-only replica identity carries only the key
            values.extend([None, None] if kind == "ts?" else _DEFAULTS[kind])
            continue
        if value is None:
            raise InvalidChange(f"{column}: missing or null")
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
                raise InvalidChange(f"{column}: expected a 64-bit integer, got {value!r}"[:200])
            values.append(value)
        elif kind == "str":
            if not isinstance(value, str):
                raise InvalidChange(f"{column}: expected a string, got {type(value).__name__}")
            values.append(value)
        elif kind == "bool":
            if value not in (True, False, 0, 1):
                raise InvalidChange(f"{column}: expected a boolean, got {value!r}"[:200])
            values.append(1 if value else 0)
        else:
            values.extend(parse_timestamp(value, column))
    return values


_DEFAULTS: dict[str, list[Any]] = {"int": [0], "str": [""], "bool": [0], "ts": [_EPOCH, 0]}


def unwrap(value: Any) -> Any:
    """Debezium's JSON converter with schemas.enable=true wraps each message."""
    if isinstance(value, dict) and "payload" in value and "schema" in value:
        return value["payload"]
    return value


def parse_change(raw: bytes | None, topic: str = "") -> Change | None:
    """One Kafka message value -> a replica change; None for a tombstone."""
    if raw is None:
        return None
    try:
        value = unwrap(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise InvalidChange(f"not JSON: {exc}", "not_json") from None
    if value is None:
        return None  # a tombstone written as JSON null by a schema-wrapping converter
    if not isinstance(value, dict):
        raise InvalidChange(f"expected a Debezium envelope object, got {type(value).__name__}")
    op = value.get("op")
    source = value.get("source")
    if not isinstance(source, dict):
        raise InvalidChange("envelope has no source block")
    table, schema = source.get("table"), source.get("schema")
    if schema != "public" or table not in REPLICA_TABLES:
        raise InvalidChange(f"unknown table {schema}.{table} (topic {topic})", "unknown_table")
    if op == "r":
        version = SNAPSHOT_VERSION
    else:
        lsn = source.get("lsn")
        if isinstance(lsn, bool) or not isinstance(lsn, int) or not 0 < lsn <= UINT64_MAX:
            raise InvalidChange(f"source.lsn must be a positive integer, got {lsn!r}")
        version = lsn
    if op == "t":
        return TruncateChange(table, version)
    if op in ("c", "u", "r"):
        row, deleted = value.get("after"), False
    elif op == "d":
        row, deleted = value.get("before"), True
    else:
        raise InvalidChange(f"unknown op {op!r}")
    if not isinstance(row, dict):
        raise InvalidChange(f"op {op}: {'before' if deleted else 'after'} must be an object")
    snapshot_lsn = _snapshot_lsn(source) if op == "r" else None
    return RowChange(table, (*_convert(table, row, deleted), 1 if deleted else 0, version), snapshot_lsn)


def _snapshot_lsn(source: dict[str, Any]) -> int | None:
    lsn = source.get("lsn")
    return lsn if isinstance(lsn, int) and not isinstance(lsn, bool) and lsn > 0 else None


TRUNCATIONS_TABLE = "cdc_truncations"
TRUNCATIONS_SQL = f"SELECT table, max(lsn) FROM {TRUNCATIONS_TABLE} GROUP BY table"
RECORD_TRUNCATION_SQL = f"INSERT INTO {TRUNCATIONS_TABLE} (table, lsn) VALUES"


def covered_by_truncate(changes: list[RowChange], truncations: dict[str, int]) -> list[RowChange]:
    """The row changes a truncate already applied must remove: made before it, applied after.

    A truncate reaches the consumer in one partition; a change of the same table
    made before it may sit unconsumed in another partition and be applied later.
    """
    return [
        change
        for change in changes
        if change.table in truncations and change.position is not None and change.position < truncations[change.table]
    ]


def truncate_sql(table: str) -> str:
    """Mark every row of `table` older than the truncate deleted (binds %(version)s).

    Rows newer than the truncate (a later change already applied) keep winning:
    they have a higher _version than the deletion rows this inserts.
    """
    if table not in REPLICA_TABLES:
        raise ValueError(f"unknown replica table {table!r}")
    columns = clickhouse_columns(table)
    data = ", ".join(f"`{c}`" for c in columns[:-2])
    return (
        f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in columns)}) "
        f"SELECT {data}, 1, %(version)s FROM `{table}` FINAL WHERE _deleted = 0 AND _version < %(version)s"
    )


def insert_sql(table: str) -> str:
    return f"INSERT INTO `{table}` ({', '.join(f'`{c}`' for c in clickhouse_columns(table))}) VALUES"
