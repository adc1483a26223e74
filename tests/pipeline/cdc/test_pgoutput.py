from __future__ import annotations

import pytest

from pipeline.cdc import pgoutput as pg
from pipeline.cdc.pgoutput import UNCHANGED_TOAST, ProtocolError, decode_value, parse_message
from tests.pipeline.cdc import pgoutput_builder as b

T0 = 1_700_000_000_123_456  # unix micros


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b.begin(0x1_0000_0010, T0, 745), pg.Begin(final_lsn=0x1_0000_0010, commit_ts_micros=T0, xid=745)),
        (b.commit(0x20, 0x48, T0), pg.Commit(flags=0, commit_lsn=0x20, end_lsn=0x48, commit_ts_micros=T0)),
        (b.origin(99, "upstream"), pg.Origin(commit_lsn=99, name="upstream")),
        (b.type_message(16500, "public", "mood"), pg.TypeMessage(oid=16500, namespace="public", name="mood")),
        (
            b.relation(16400, "public", "posts", "f", [("id", 20, True), ("body", 25, False)]),
            pg.Relation(
                16400, "public", "posts", "f", (pg.Column("id", 20, -1, True), pg.Column("body", 25, -1, False))
            ),
        ),
        (b.insert(16400, "1", "hi"), pg.Insert(16400, ("1", "hi"))),
        (b.insert(16400, "1", None), pg.Insert(16400, ("1", None))),
        (b.insert(16400, "1", ""), pg.Insert(16400, ("1", ""))),
        (b.insert(16400, "1", "naïve ✓"), pg.Insert(16400, ("1", "naïve ✓"))),
        (b.update(16400, ("1", "new")), pg.Update(16400, ("1", "new"))),
        (
            b.update(16400, ("1", b"u"), old=("1", "big"), old_kind="O"),
            pg.Update(16400, ("1", UNCHANGED_TOAST), old=("1", "big"), old_kind="O"),
        ),
        (b.update(16400, ("2", "x"), old=("1",), old_kind="K"), pg.Update(16400, ("2", "x"), old=("1",), old_kind="K")),
        (b.delete(16400, ("1", "gone")), pg.Delete(16400, ("1", "gone"), "O")),
        (b.truncate([16400, 16401], options=3), pg.Truncate((16400, 16401), cascade=True, restart_identity=True)),
        (b.truncate([16400]), pg.Truncate((16400,), cascade=False, restart_identity=False)),
        (b.logical_message(5, "nova", b"ping"), pg.LogicalMessage(True, 5, "nova", b"ping")),
    ],
)
def test_parse_message(data: bytes, expected: object) -> None:
    assert parse_message(data) == expected


def test_relation_key_columns() -> None:
    rel = parse_message(b.relation(1, "public", "t", "f", [("a", 20, True), ("b", 25, False), ("c", 20, True)]))
    assert isinstance(rel, pg.Relation)
    assert rel.key_columns == ("a", "c")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty"),
        (b"Z", "unknown pgoutput message tag"),
        (b.begin(1, T0, 1)[:-1], "truncated"),
        (b.begin(1, T0, 1) + b"x", "trailing"),
        (b"R" + b"\0\0\0\1" + b"public", "unterminated"),
        (b"I\0\0\0\1X", "expected 'N'"),
        (b"D\0\0\0\1N", "expected 'K' or 'O'"),
        (b"I\0\0\0\1N\0\1q", "unknown tuple value kind"),
        (b"I\0\0\0\1N\0\1b\0\0\0\0", "binary tuple values"),
    ],
)
def test_parse_message_rejects_malformed(data: bytes, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        parse_message(data)


@pytest.mark.parametrize(
    ("type_oid", "text", "expected"),
    [
        (pg.INT8, "9223372036854775807", 9223372036854775807),
        (pg.INT4, "-42", -42),
        (pg.INT2, "7", 7),
        (pg.BOOL, "t", True),
        (pg.BOOL, "f", False),
        (pg.TEXT, "hello", "hello"),
        (pg.VARCHAR, "", ""),
        (pg.INT8, None, None),
        (pg.TEXT, None, None),
        (pg.NUMERIC, "12345678901234567890.000000001", "12345678901234567890.000000001"),
        (pg.FLOAT8, "0.1", 0.1),
        (pg.FLOAT8, "NaN", "NaN"),
        (pg.FLOAT4, "-Infinity", "-Infinity"),
        (pg.TIMESTAMPTZ, "2024-05-01 10:00:00.5+00", "2024-05-01T10:00:00.500000Z"),
        (pg.TIMESTAMPTZ, "2024-05-01 10:00:00+00", "2024-05-01T10:00:00.000000Z"),
        (pg.TIMESTAMPTZ, "2024-05-01 15:30:00.123456+05:30", "2024-05-01T10:00:00.123456Z"),
        (pg.TIMESTAMPTZ, "infinity", "infinity"),
        (pg.TIMESTAMP, "1970-01-01 00:00:01.000001", 1_000_001),
        (pg.TIMESTAMP, "1969-12-31 23:59:59", -1_000_000),
        (pg.DATE, "1970-01-02", 1),
        (pg.DATE, "1969-12-31", -1),
        (pg.TIME, "01:02:03.5", 3_723_500_000),
        (pg.BYTEA, "\\x00ff", "AP8="),
        (pg.UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        (pg.JSONB, '{"a": 1}', '{"a": 1}'),
        (99999, "custom enum", "custom enum"),
    ],
)
def test_decode_value(type_oid: int, text: str | None, expected: object) -> None:
    assert decode_value(type_oid, text) == expected


def test_decode_value_rejects_escape_bytea() -> None:
    with pytest.raises(ProtocolError, match="bytea_output=hex"):
        decode_value(pg.BYTEA, "abc")
