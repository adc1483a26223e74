"""pipeline/event_schema.py: client-event validation and message → row, pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline.event_schema import (
    ROW_COLUMNS,
    EventRejected,
    TimeWindow,
    build_message,
    message_to_row,
    validate_client_event,
)

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
WINDOW = TimeWindow(max_future_skew=timedelta(minutes=5), max_age=timedelta(days=7))
EID = "0b5a4d2e-8c1f-4f57-9a7e-0d6f3c2b1a90"


def event(**overrides):
    base = {"event_id": EID, "post_id": 7, "event_type": "click", "ts": "2026-11-23T11:59:00Z"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ([], "must be a JSON object"),
        ("x", "must be a JSON object"),
        (event(color="red"), "unknown field(s): color"),
        (event(event_id=...), "event_id: required"),
        (event(event_id=5), "event_id: required"),
        (event(event_id="not-a-uuid"), "event_id: 'not-a-uuid' is not a UUID"),
        (event(post_id=...), "post_id: required"),
        (event(post_id=0), "post_id: required"),
        (event(post_id=-3), "post_id: required"),
        (event(post_id=True), "post_id: required"),
        (event(post_id=1.5), "post_id: required"),
        (event(post_id="7"), "post_id: required"),
        (event(post_id=2**63), "post_id: required"),
        (event(event_type="purchase"), "event_type: must be one of"),
        (event(event_type=None), "event_type: must be one of"),
        (event(ts=...), "ts: required"),
        (event(ts=1700000000), "ts: required"),
        (event(ts="yesterday"), "ts: 'yesterday' is not an ISO 8601"),
        (event(ts="9999-12-31T23:59:59-23:59"), "is out of range"),
        (event(ts="0001-01-01T00:00:00+01:00"), "is out of range"),
        (event(ts="2026-11-23T12:05:01Z"), "ts: more than 300s in the future"),
        (event(ts="2026-11-16T11:59:59Z"), "ts: older than 604800s"),
        (event(event_type="dwell"), "dwell_ms: required for a dwell event"),
        (event(dwell_ms=-1), "dwell_ms: must be an integer in [0, 86400000]"),
        (event(dwell_ms=86_400_001), "dwell_ms: must be an integer"),
        (event(dwell_ms="10"), "dwell_ms: must be an integer"),
        (event(position=-1), "position: must be an integer in [0, 1000000]"),
        (event(position=False), "position: must be an integer"),
        (event(surface=5), "surface: a string of at most 64"),
        (event(surface="x" * 65), "surface: a string of at most 64"),
    ],
)
def test_bad_events_are_rejected_naming_the_field(raw, reason) -> None:
    with pytest.raises(EventRejected) as excinfo:
        validate_client_event(raw, NOW, WINDOW)
    assert reason in str(excinfo.value)


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-23T12:05:00Z", datetime(2026, 11, 23, 12, 5, tzinfo=UTC)),  # future edge: kept
        ("2026-11-16T12:00:00+00:00", datetime(2026, 11, 16, 12, 0, tzinfo=UTC)),  # age edge: kept
        ("2026-11-23T13:30:00+02:00", datetime(2026, 11, 23, 11, 30, tzinfo=UTC)),  # offset → UTC
        ("2026-11-23T11:00:00", datetime(2026, 11, 23, 11, 0, tzinfo=UTC)),  # naive = UTC
        ("2026-11-23T11:00:00.123456Z", datetime(2026, 11, 23, 11, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_timestamps_inside_the_window_are_kept_as_utc(ts, expected) -> None:
    assert validate_client_event(event(ts=ts), NOW, WINDOW)["ts"] == expected


def test_valid_event_is_normalised_and_server_fields_ignored() -> None:
    fields = validate_client_event(
        event(
            event_id=EID.upper(),
            event_type="dwell",
            dwell_ms=1500,
            position=0,
            surface="home",
            user_id=999,
            author_id=999,
            received_at="1970-01-01T00:00:00Z",
        ),
        NOW,
        WINDOW,
    )
    assert fields == {
        "event_id": EID,
        "post_id": 7,
        "event_type": "dwell",
        "ts": datetime(2026, 11, 23, 11, 59, tzinfo=UTC),
        "dwell_ms": 1500,
        "position": 0,
        "surface": "home",
    }


def test_build_message_then_message_to_row_round_trips() -> None:
    fields = validate_client_event(event(position=3, surface="home"), NOW, WINDOW)
    value = build_message(fields, user_id=11, author_id=22, received_at=NOW.replace(microsecond=456000))
    assert orjson.loads(value) == {
        "event_id": EID,
        "user_id": 11,
        "post_id": 7,
        "author_id": 22,
        "event_type": "click",
        "ts": "2026-11-23T11:59:00.000Z",
        "received_at": "2026-11-23T12:00:00.456Z",
        "dwell_ms": None,
        "position": 3,
        "surface": "home",
    }
    row = dict(zip(ROW_COLUMNS, message_to_row(value, "nova.events", 2, 40, 1), strict=True))
    row["event_id"] = str(row["event_id"])  # a str or a uuid.UUID: both insert as the same UUID
    assert row == {
        "event_id": EID,
        "user_id": 11,
        "post_id": 7,
        "author_id": 22,
        "event_type": "click",
        "ts": int(datetime(2026, 11, 23, 11, 59, tzinfo=UTC).timestamp()),
        "received_at": int(NOW.timestamp()),
        "received_at_ms": int(NOW.timestamp()) * 1000 + 456,
        "dwell_ms": 0,
        "position": 3,
        "surface": "home",
        "_topic": "nova.events",
        "_partition": 2,
        "_offset": 40,
        "_generation": 1,
    }


def test_message_to_row_accepts_the_edges_of_what_the_columns_hold() -> None:
    edges = {**GOOD, "user_id": 2**64 - 1, "ts": "2105-12-31T23:59:59.999Z", "received_at": "1970-01-01T00:00:00Z"}
    row = dict(zip(ROW_COLUMNS, message_to_row(orjson.dumps(edges), "t", 0, 0, 0), strict=True))
    assert (row["user_id"], row["ts"], row["received_at"]) == (2**64 - 1, 4_291_747_199, 0)


def test_message_to_row_defaults_for_nulls() -> None:
    fields = validate_client_event(event(), NOW, WINDOW)
    row = dict(zip(ROW_COLUMNS, message_to_row(build_message(fields, 1, None, NOW), "t", 0, 0, 0), strict=True))
    assert (row["author_id"], row["dwell_ms"], row["position"], row["surface"]) == (0, 0, -1, "")


GOOD = orjson.loads(build_message(validate_client_event(event(), NOW, WINDOW), 1, 2, NOW))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({**GOOD, "event_id": "abc"}), "event_id"),
        (orjson.dumps({**GOOD, "user_id": -1}), "user_id/post_id"),
        (orjson.dumps({**GOOD, "post_id": "7"}), "user_id/post_id"),
        (orjson.dumps({**GOOD, "author_id": "x"}), "author_id"),
        (orjson.dumps({**GOOD, "event_type": "buy"}), "event_type"),
        (orjson.dumps({**GOOD, "ts": 5}), "ts: not an ISO 8601"),
        (orjson.dumps({**GOOD, "received_at": None}), "received_at: not an ISO 8601"),
        (orjson.dumps({**GOOD, "dwell_ms": -5}), "dwell_ms"),
        (orjson.dumps({**GOOD, "position": 2**31}), "position"),
        (orjson.dumps({**GOOD, "surface": 3}), "surface"),
        (orjson.dumps({**GOOD, "ts": "1969-12-31T23:59:59Z"}), "outside 1970-01-01..2105-12-31"),
        # issue 12: passed decode, then failed every insert of its batch for ever
        (orjson.dumps({**GOOD, "ts": "2200-01-01T00:00:00.000Z"}), "outside 1970-01-01..2105-12-31"),
        (orjson.dumps({**GOOD, "received_at": "2106-02-08T00:00:00Z"}), "outside 1970-01-01..2105-12-31"),
        (orjson.dumps({**GOOD, "user_id": 2**64 - 1})[:-1] + b',"post_id":18446744073709551616}', "user_id/post_id"),
        (orjson.dumps({**GOOD, "surface": "x" * 65}), "surface"),
    ],
)
def test_malformed_messages_raise_value_error(value, reason) -> None:
    with pytest.raises(ValueError) as excinfo:
        message_to_row(value, "t", 0, 0, 0)
    assert reason in str(excinfo.value)


@pytest.mark.parametrize("event_type", [["click"], {"a": 1}, 3, True])
def test_unhashable_or_odd_event_types_are_refused_not_crashed(event_type) -> None:
    # found by the API fuzz test: `[...] in frozenset` raises TypeError (a 500, or a stuck consumer)
    with pytest.raises(EventRejected, match="event_type"):
        validate_client_event(event(event_type=event_type), NOW, WINDOW)
    with pytest.raises(ValueError, match="event_type"):
        message_to_row(orjson.dumps({**GOOD, "event_type": event_type}), "t", 0, 0, 0)
