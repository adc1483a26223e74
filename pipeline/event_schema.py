"""The engagement event (docs/architecture/events.md), as pure functions.

Two directions: `validate_client_event` turns one element of the API's
`{"events": [...]}` into the message the pipeline publishes (or a reason it is
refused); `message_to_row` turns a message from the topic into an `events` row
(or raises ValueError, which the consumer dead-letters). No I/O, no settings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

import orjson

from nova.clickhouse import DATETIME_MAX_SECONDS, UINT64_MAX

EVENT_TYPES = frozenset({"impression", "view", "click", "like", "comment", "share", "hide", "dwell"})
CLIENT_FIELDS = frozenset({"event_id", "post_id", "event_type", "ts", "dwell_ms", "position", "surface"})
# set by the server, never trusted from a client: silently ignored in a body
SERVER_FIELDS = frozenset({"user_id", "author_id", "received_at"})
MAX_SURFACE_LENGTH = 64
MAX_DWELL_MS = 24 * 3600 * 1000
MAX_INT = 2**63 - 1
DATETIME_MAX_MS = DATETIME_MAX_SECONDS * 1000 + 999

# `events` columns in insert order (infra/clickhouse/tables/0020_events.sql)
ROW_COLUMNS = (
    "event_id",
    "user_id",
    "post_id",
    "author_id",
    "event_type",
    "ts",
    "received_at",
    "received_at_ms",
    "dwell_ms",
    "position",
    "surface",
    "_topic",
    "_partition",
    "_offset",
    "_generation",
)


class EventRejected(ValueError):
    """One client event is refused; the message is the reason shown to the client."""


@dataclass(frozen=True)
class TimeWindow:
    """Accepted client timestamps: [received_at - max_age, received_at + max_future_skew]."""

    max_future_skew: timedelta
    max_age: timedelta


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_int(event: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = event.get(name)
    if value is None:
        return None
    if not _is_int(value) or not low <= value <= high:
        raise EventRejected(f"{name}: must be an integer in [{low}, {high}] or null")
    return int(value)


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601; a timestamp without offset is taken as UTC."""
    if not isinstance(value, str):
        raise EventRejected("ts: required, an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise EventRejected(f"ts: {value[:40]!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-23:59 lies past year 9999 in UTC
        raise EventRejected(f"ts: {value[:40]!r} is out of range") from None


def validate_client_event(event: Any, received_at: datetime, window: TimeWindow) -> dict[str, Any]:
    """One client event → the fields it contributes (still without user_id/author_id).

    Raises EventRejected naming the field. Timestamps outside the window are
    rejected rather than clamped: a clamped ts would put the event in the
    wrong hour of the aggregates, and a client can fix its clock and resend.
    """
    if not isinstance(event, dict):
        raise EventRejected("must be a JSON object")
    unknown = set(event) - CLIENT_FIELDS - SERVER_FIELDS
    if unknown:
        raise EventRejected(f"unknown field(s): {', '.join(sorted(unknown))}")
    raw_id = event.get("event_id")
    if not isinstance(raw_id, str):
        raise EventRejected("event_id: required, a UUID string")
    try:
        event_id = str(uuid.UUID(raw_id))
    except ValueError:
        raise EventRejected(f"event_id: {raw_id[:40]!r} is not a UUID") from None
    post_id = event.get("post_id")
    if not _is_int(post_id) or not 1 <= post_id <= MAX_INT:
        raise EventRejected("post_id: required, a positive integer")
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:  # a list is unhashable
        raise EventRejected(f"event_type: must be one of {', '.join(sorted(EVENT_TYPES))}")
    ts = parse_timestamp(event.get("ts"))
    if ts > received_at + window.max_future_skew:
        raise EventRejected(f"ts: more than {int(window.max_future_skew.total_seconds())}s in the future")
    if ts < received_at - window.max_age:
        raise EventRejected(f"ts: older than {int(window.max_age.total_seconds())}s")
    dwell_ms = _optional_int(event, "dwell_ms", 0, MAX_DWELL_MS)
    if event_type == "dwell" and dwell_ms is None:
        raise EventRejected("dwell_ms: required for a dwell event")
    position = _optional_int(event, "position", 0, 1_000_000)
    surface = event.get("surface")
    if surface is not None and (not isinstance(surface, str) or len(surface) > MAX_SURFACE_LENGTH):
        raise EventRejected(f"surface: a string of at most {MAX_SURFACE_LENGTH} characters, or null")
    return {
        "event_id": event_id,
        "post_id": post_id,
        "event_type": event_type,
        "ts": ts,
        "dwell_ms": dwell_ms,
        "position": position,
        "surface": surface,
    }


def isoformat_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_message(fields: dict[str, Any], user_id: int, author_id: int | None, received_at: datetime) -> bytes:
    """The topic's JSON value (docs/architecture/events.md)."""
    return orjson.dumps(
        {
            "event_id": fields["event_id"],
            "user_id": user_id,
            "post_id": fields["post_id"],
            "author_id": author_id,
            "event_type": fields["event_type"],
            "ts": isoformat_ms(fields["ts"]),
            "received_at": isoformat_ms(received_at),
            "dwell_ms": fields["dwell_ms"],
            "position": fields["position"],
            "surface": fields["surface"],
        }
    )


def _epoch_ms(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise ValueError(f"{name}: not an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: {value[:40]!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def message_to_row(value: bytes | None, topic: str, partition: int, offset: int, generation: int) -> tuple:
    """A topic message → an `events` row in ROW_COLUMNS order; ValueError if malformed.

    `event_id` comes back as a `uuid.UUID`.

    Trusts the producer's normalisation (our API) only as far as types go: a
    message that someone else wrote must still not poison the insert, so every
    value is checked against what its `events` column can hold (UInt64 ids,
    Enum8 type, DateTime range, UInt32 dwell, Int32 position, surface length).
    """
    if value is None:
        raise ValueError("empty message (tombstone)")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or len(event_id) != 36:
        raise ValueError("event_id: missing or not a canonical UUID")
    # a UUID object: the insert needs one, and parsing twice costs ~2 µs an event;
    # the parse is the validation (dedup keys and rows use the parsed value, so
    # the string's spelling does not matter)
    try:
        event_uuid = uuid.UUID(event_id)
    except ValueError:
        raise ValueError("event_id: missing or not a canonical UUID") from None
    user_id, post_id, author_id = event.get("user_id"), event.get("post_id"), event.get("author_id")
    # `type(x) is int` (not bool, not float) inline: this runs for every event
    if (
        type(user_id) is not int
        or type(post_id) is not int
        or not (0 <= user_id <= UINT64_MAX and 0 <= post_id <= UINT64_MAX)
    ):
        raise ValueError("user_id/post_id: missing or not integers in [0, 2^64)")
    if author_id is not None and (type(author_id) is not int or not 0 <= author_id <= UINT64_MAX):
        raise ValueError("author_id: not an integer in [0, 2^64)")
    event_type = event.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:  # a list is unhashable
        raise ValueError(f"event_type: {str(event_type)[:20]!r} is not known")
    ts_ms = _epoch_ms(event.get("ts"), "ts")
    received_ms = _epoch_ms(event.get("received_at"), "received_at")
    dwell_ms, position, surface = event.get("dwell_ms"), event.get("position"), event.get("surface")
    if dwell_ms is not None and (type(dwell_ms) is not int or not 0 <= dwell_ms <= MAX_DWELL_MS):
        raise ValueError("dwell_ms: out of range")
    if position is not None and (type(position) is not int or not 0 <= position < 2**31):
        raise ValueError("position: out of range")
    if surface is not None and (not isinstance(surface, str) or len(surface) > MAX_SURFACE_LENGTH):
        raise ValueError(f"surface: not a string of at most {MAX_SURFACE_LENGTH} characters")
    # `events.ts` and `received_at` are DateTime: seconds 1970..2105 (nova/clickhouse.py)
    if not 0 <= ts_ms <= DATETIME_MAX_MS or not 0 <= received_ms <= DATETIME_MAX_MS:
        raise ValueError("ts/received_at: outside 1970-01-01..2105-12-31 (ClickHouse DateTime)")
    return (
        event_uuid,
        user_id,
        post_id,
        author_id or 0,
        event_type,
        ts_ms // 1000,
        received_ms // 1000,
        received_ms,
        dwell_ms or 0,
        -1 if position is None else position,
        surface or "",
        topic,
        partition,
        offset,
        generation,
    )
