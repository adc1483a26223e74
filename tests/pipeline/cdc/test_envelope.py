from __future__ import annotations

import pytest

from pipeline.cdc import pgoutput as pg
from pipeline.cdc.envelope import (
    Record,
    SourceInfo,
    UnfillableToast,
    change_records,
    snapshot_record,
    truncate_record,
)
from pipeline.cdc.pgoutput import UNCHANGED_TOAST

POSTS = pg.Relation(
    16400,
    "public",
    "posts",
    "f",
    (
        pg.Column("id", pg.INT8, -1, True),
        pg.Column("body", pg.TEXT, -1, False),
        pg.Column("created_at", pg.TIMESTAMPTZ, -1, False),
        pg.Column("deleted_at", pg.TIMESTAMPTZ, -1, False),
    ),
)
SOURCE = SourceInfo(server_name="nova", db="nova", txid=777, ts_ms=1_700_000_000_000)
TS = "2024-05-01 10:00:00+00"
TS_ISO = "2024-05-01T10:00:00.000000Z"


def row(id_: int, body: str, deleted: str | None = None) -> dict:
    return {"id": id_, "body": body, "created_at": TS_ISO, "deleted_at": deleted}


def summary(records: list[Record]) -> list[tuple]:
    return [
        (
            r.key,
            None if r.value is None else r.value["op"],
            None if r.value is None else (r.value["before"], r.value["after"]),
        )
        for r in records
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (pg.Insert(16400, ("1", "hello", TS, None)), [({"id": 1}, "c", (None, row(1, "hello")))]),
        (
            pg.Update(16400, ("1", "edited", TS, None), old=("1", "hello", TS, None), old_kind="O"),
            [({"id": 1}, "u", (row(1, "hello"), row(1, "edited")))],
        ),
        # unchanged TOAST: filled from the old row image, never a placeholder
        (
            pg.Update(16400, ("1", UNCHANGED_TOAST, TS, TS), old=("1", "long body", TS, None), old_kind="O"),
            [({"id": 1}, "u", (row(1, "long body"), row(1, "long body", TS_ISO)))],
        ),
        (pg.Update(16400, ("1", "x", TS, None)), [({"id": 1}, "u", (None, row(1, "x")))]),
        # primary key change: delete old key, tombstone old key, create new key
        (
            pg.Update(16400, ("2", "hello", TS, None), old=("1", "hello", TS, None), old_kind="O"),
            [
                ({"id": 1}, "d", (row(1, "hello"), None)),
                ({"id": 1}, None, None),
                ({"id": 2}, "c", (None, row(2, "hello"))),
            ],
        ),
        (
            pg.Delete(16400, ("1", "bye", TS, None), "O"),
            [({"id": 1}, "d", (row(1, "bye"), None)), ({"id": 1}, None, None)],
        ),
    ],
)
def test_change_records(change: object, expected: list[tuple]) -> None:
    records = change_records(POSTS, change, SOURCE, lsn=0x1234, ts_ms=1_700_000_000_500)  # type: ignore[arg-type]
    assert summary(records) == expected
    assert all(r.table == "posts" for r in records)


def test_envelope_carries_debezium_source() -> None:
    (record,) = change_records(POSTS, pg.Insert(16400, ("1", "a", TS, None)), SOURCE, lsn=4660, ts_ms=5)
    assert record.value is not None
    assert record.value["ts_ms"] == 5
    assert record.value["source"] == {
        "version": "nova-relay-1",
        "connector": "postgresql",
        "name": "nova",
        "ts_ms": 1_700_000_000_000,
        "snapshot": "false",
        "db": "nova",
        "schema": "public",
        "table": "posts",
        "txId": 777,
        "lsn": 4660,
        "xmin": None,
    }


@pytest.mark.parametrize(
    "change",
    [
        pg.Insert(16400, ("1", UNCHANGED_TOAST, TS, None)),
        pg.Update(16400, ("1", UNCHANGED_TOAST, TS, None)),
        pg.Update(16400, ("1", UNCHANGED_TOAST, TS, None), old=("1",) + (None,) * 3, old_kind="K"),
        pg.Delete(16400, ("1", UNCHANGED_TOAST, TS, None), "O"),
    ],
)
def test_unfillable_toast_is_an_error_not_a_placeholder(change: object) -> None:
    with pytest.raises(UnfillableToast, match="REPLICA IDENTITY FULL"):
        change_records(POSTS, change, SOURCE, lsn=1, ts_ms=1)  # type: ignore[arg-type]


def test_tuple_width_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 values for 4 columns"):
        change_records(POSTS, pg.Insert(16400, ("1", "a")), SOURCE, lsn=1, ts_ms=1)


def test_snapshot_and_truncate_records() -> None:
    snap = snapshot_record(POSTS, row(3, "old"), SOURCE, lsn=10, snapshot="last", ts_ms=1)
    assert snap.key == {"id": 3}
    assert snap.value is not None and snap.value["op"] == "r" and snap.value["source"]["snapshot"] == "last"
    assert snap.value["after"] == row(3, "old") and snap.value["before"] is None
    trunc = truncate_record(POSTS, SOURCE, lsn=11, ts_ms=1)
    assert trunc.key is None
    assert (
        trunc.value is not None
        and trunc.value["op"] == "t"
        and trunc.value["before"] is None
        and trunc.value["after"] is None
    )
