from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from pipeline.cdc.replica import (
    InvalidChange,
    RowChange,
    TruncateChange,
    clickhouse_columns,
    covered_by_truncate,
    parse_change,
    parse_timestamp,
    truncate_sql,
)

FIXTURES = Path(__file__).parent / "debezium"
SRC = {"connector": "postgresql", "db": "nova", "schema": "public", "table": "follows", "lsn": 500, "txId": 9}
FOLLOW = {"id": 7, "follower_id": 1, "followee_id": 2, "created_at": "2024-05-01T10:00:00.000001Z"}
T = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
T_US = 1_714_557_600_000_001


def env(op: str, before: dict | None = None, after: dict | None = None, **source: object) -> bytes:
    return orjson.dumps({"before": before, "after": after, "source": {**SRC, **source}, "op": op, "ts_ms": 1})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        (b"null", None),
        (env("c", after=FOLLOW), RowChange("follows", (7, 1, 2, T, T_US, 0, 500))),
        (env("u", before=FOLLOW, after=FOLLOW), RowChange("follows", (7, 1, 2, T, T_US, 0, 500))),
        (env("d", before=FOLLOW), RowChange("follows", (7, 1, 2, T, T_US, 1, 500))),
        # snapshot rows rank below every streamed change, whatever lsn they carry
        (env("r", after=FOLLOW, lsn=10**9, snapshot="true"), RowChange("follows", (7, 1, 2, T, T_US, 0, 0))),
        (env("t"), TruncateChange("follows", 500)),
        # a delete under a key-only identity: only the key is known
        (
            env("d", before={"id": 7, "follower_id": None}),
            RowChange("follows", (7, 0, 0, datetime(1970, 1, 1, tzinfo=UTC), 0, 1, 500)),
        ),
        # schema wrapper
        (
            orjson.dumps({"schema": {"type": "struct"}, "payload": json.loads(env("c", after=FOLLOW))}),
            RowChange("follows", (7, 1, 2, T, T_US, 0, 500)),
        ),
        # MicroTimestamp (epoch micros) instead of an ISO string
        (env("c", after={**FOLLOW, "created_at": T_US}), RowChange("follows", (7, 1, 2, T, T_US, 0, 500))),
        # columns we do not replicate are ignored
        (env("c", after={**FOLLOW, "extra": "x"}), RowChange("follows", (7, 1, 2, T, T_US, 0, 500))),
    ],
)
def test_parse_change(raw: bytes | None, expected: object) -> None:
    assert parse_change(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error", "reason"),
    [
        (b"\xff garbage", "not JSON", "not_json"),
        (b"[1, 2]", "envelope object", "invalid"),
        (orjson.dumps({"op": "c"}), "no source", "invalid"),
        (env("c", after={"id": 1}, table="customers"), "unknown table public.customers", "unknown_table"),
        (env("c", after=FOLLOW, schema="inventory"), "unknown table inventory.follows", "unknown_table"),
        (env("x", after=FOLLOW), "unknown op", "invalid"),
        (env("c", after=None), "after must be an object", "invalid"),
        (env("d"), "before must be an object", "invalid"),
        (env("c", after=FOLLOW, lsn=None), "source.lsn", "invalid"),
        (env("c", after=FOLLOW, lsn="12"), "source.lsn", "invalid"),
        (env("c", after={**FOLLOW, "id": "7"}), "follows.id: expected a 64-bit integer", "invalid"),
        (env("c", after={**FOLLOW, "id": True}), "follows.id: expected a 64-bit integer", "invalid"),
        (env("c", after={**FOLLOW, "follower_id": None}), "follows.follower_id: missing", "invalid"),
        (env("c", after={k: v for k, v in FOLLOW.items() if k != "created_at"}), "created_at: missing", "invalid"),
        (env("c", after={**FOLLOW, "created_at": "yesterday"}), "not an ISO-8601", "invalid"),
        (env("c", after={**FOLLOW, "created_at": "1900-01-01T00:00:00Z"}), "outside ClickHouse", "invalid"),
        (env("u", after={**FOLLOW, "created_at": "__debezium_unavailable_value"}), "unavailable", "invalid"),
        # values their columns cannot hold: each would fail every insert of its batch (issue 12)
        (env("c", after={**FOLLOW, "created_at": "2200-01-01T00:00:00Z"}), "outside ClickHouse", "invalid"),
        (env("c", after={**FOLLOW, "follower_id": 2**63}), "follower_id: expected a 64-bit integer", "invalid"),
    ],
)
def test_parse_change_rejects(raw: bytes, error: str, reason: str) -> None:
    with pytest.raises(InvalidChange, match=error) as info:
        parse_change(raw, "novatest.public.follows")
    assert info.value.reason == reason


@pytest.mark.parametrize("fixture", ["users_with_schema.json", "users_without_schema.json"])
def test_debezium_documented_events(fixture: str) -> None:
    events = json.loads((FIXTURES / fixture).read_text())
    encode = lambda e: None if e["value"] is None else orjson.dumps(e["value"])  # noqa: E731
    joined = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    joined_us = 1_709_285_400_123_456
    assert parse_change(encode(events["create"])) == RowChange(
        "users", (9001, "anne", "Anne Kretchmar", joined, joined_us, 1, 0, 24023128)
    )
    assert parse_change(encode(events["update"])) == RowChange(
        "users", (9001, "anne", "Anne Marie Kretchmar", joined, joined_us, 1, 0, 24023200)
    )
    assert parse_change(encode(events["delete"])) == RowChange(
        "users", (9001, "anne", "Anne Marie Kretchmar", joined, joined_us, 1, 1, 24023300)
    )
    assert parse_change(encode(events["tombstone"])) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T10:00:00Z", (T, 1_714_557_600_000_000)),
        ("2024-05-01T12:00:00.5+02:00", (T, 1_714_557_600_500_000)),
        ("2024-05-01T10:00:00", (T, 1_714_557_600_000_000)),
        (0, (datetime(1970, 1, 1, tzinfo=UTC), 0)),
    ],
)
def test_parse_timestamp(value: object, expected: tuple) -> None:
    assert parse_timestamp(value, "c") == expected


def test_columns_and_truncate_sql() -> None:
    assert clickhouse_columns("posts") == [
        "id",
        "author_id",
        "body",
        "media_url",
        "created_at",
        "created_at_us",
        "updated_at",
        "updated_at_us",
        "deleted_at",
        "deleted_at_us",
        "_deleted",
        "_version",
    ]
    assert truncate_sql("likes") == (
        "INSERT INTO `likes` (`id`, `user_id`, `post_id`, `created_at`, `created_at_us`, `_deleted`, `_version`) "
        "SELECT `id`, `user_id`, `post_id`, `created_at`, `created_at_us`, 1, %(version)s FROM `likes` FINAL "
        "WHERE _deleted = 0 AND _version < %(version)s"
    )
    with pytest.raises(ValueError):
        truncate_sql("customers")


def row_change(raw: bytes) -> RowChange:
    change = parse_change(raw)
    assert isinstance(change, RowChange)
    return change


def test_a_truncate_covers_the_changes_made_before_it() -> None:
    streamed = row_change(env("c", after=FOLLOW, lsn=150))
    later = row_change(env("u", before=FOLLOW, after=FOLLOW, lsn=250))
    snapshot_before = row_change(env("r", after=FOLLOW, lsn=120, snapshot="true"))
    snapshot_after = row_change(env("r", after=FOLLOW, lsn=260, snapshot="true"))
    snapshot_unknown = row_change(env("r", after=FOLLOW, lsn=None, snapshot="true"))
    other_table = RowChange("likes", streamed.values)
    assert (snapshot_before.version, snapshot_before.position, snapshot_unknown.position) == (0, 120, None)
    changes = [streamed, later, snapshot_before, snapshot_after, snapshot_unknown, other_table]
    assert covered_by_truncate(changes, {"follows": 200}) == [streamed, snapshot_before]
    assert covered_by_truncate(changes, {}) == []
    # marked deleted at the truncate's version: a later change of the key (version > 200) still wins
    assert streamed.deleted_by_truncate(200).values == (*streamed.values[:-2], 1, 200)
