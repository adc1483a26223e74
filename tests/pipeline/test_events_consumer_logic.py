"""The events consumer's pure decisions, table-driven, and the dedup marks
against the real Redis (the Lua script is what is under test)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING
from django.conf import settings

from pipeline.consumers.events import (
    commit_generation,
    commit_metadata,
    insert_token,
    latest_sink_offsets,
    start_position,
)
from pipeline.consumers.faults import CrashPoint
from pipeline.dedup import EventDedup, Seen, message_mark
from pipeline.event_schema import ROW_COLUMNS, message_to_row

GOOD = (
    b'{"event_id": "0b7e7c1e-9a4c-4c55-8f43-2a8e2f7a9d11", "user_id": 7, "post_id": 9, "author_id": 3, '
    b'"event_type": "like", "ts": "2026-11-23T10:00:00.250Z", "received_at": "2026-11-23T10:00:01.500Z", '
    b'"dwell_ms": null, "position": 4, "surface": "home"}'
)


@pytest.mark.parametrize(
    ("sink", "in_log", "committed", "end", "expected"),
    [
        # nothing written yet: the group's commit if it is inside the log, else the beginning
        (None, False, -1001, 0, (0, OFFSET_BEGINNING, False)),
        (None, False, 40, 100, (0, 40, False)),
        (None, False, 140, 100, (0, OFFSET_BEGINNING, False)),
        # written up to 49, commit behind (crash between insert and commit): past the sink
        ((0, 49), True, 30, 100, (0, 50, False)),
        # commit ahead of the sink (trailing batch of retries or dead letters only)
        ((0, 49), True, 60, 100, (0, 60, False)),
        # the whole partition written
        ((2, 99), True, 100, 100, (2, 100, False)),
        # the sink's last message is gone: topic recreated, new generation from the start
        ((0, 99), False, 100, 20, (1, OFFSET_BEGINNING, True)),
        ((3, 10), False, -1001, 500, (4, OFFSET_BEGINNING, True)),
    ],
)
def test_start_position(sink, in_log, committed, end, expected) -> None:
    assert start_position(sink, in_log, committed, end) == expected


@pytest.mark.parametrize(
    ("sink", "committed", "committed_generation", "expected"),
    [
        # issue 12: a commit of the old log (generation 0) after a recreation and a
        # crash skipped new-log offsets 41..999; a commit names its generation now
        ((1, 40), 1000, 0, (1, 41, False)),
        ((1, 40), 1000, None, (1, 1000, False)),  # a commit from before: taken as it was
        ((1, 40), 60, 1, (1, 60, False)),  # same log, ahead of the sink
        (None, 30, 2, (2, 30, False)),
    ],
)
def test_start_position_ignores_a_commit_of_another_generation(sink, committed, committed_generation, expected) -> None:
    assert start_position(sink, True, committed, 5000, committed_generation) == expected


def test_commit_metadata_round_trips_and_ignores_what_it_did_not_write() -> None:
    assert commit_generation(commit_metadata(3)) == 3
    assert commit_generation("") is None and commit_generation(None) is None
    assert commit_generation("generation=x") is None and commit_generation("other=3") is None


def test_latest_sink_offsets_takes_the_newest_generation_per_partition() -> None:
    rows = [(0, 0, 500), (0, 1, 20), (1, 0, 7), (2, 3, 1), (2, 2, 900)]
    assert latest_sink_offsets(rows) == {0: (1, 20), 1: (0, 7), 2: (3, 1)}
    assert latest_sink_offsets([]) == {}


def _row(partition: int, offset: int, generation: int = 0) -> tuple:
    return message_to_row(GOOD, "nova.events", partition, offset, generation)


def test_insert_token_names_the_offset_ranges_and_ignores_order() -> None:
    rows = [_row(1, 5), _row(0, 3), _row(1, 2), _row(0, 4)]
    assert insert_token("nova.events", rows) == "nova.events|g0p0:3-4;g0p1:2-5"
    assert insert_token("nova.events", list(reversed(rows))) == insert_token("nova.events", rows)
    assert insert_token("nova.events", [_row(0, 3, generation=1)]) != insert_token("nova.events", [_row(0, 3)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("after-dedup:1", CrashPoint("after-dedup", 1)), ("after-insert:12", CrashPoint("after-insert", 12))],
)
def test_crash_point_parse(text, expected) -> None:
    assert CrashPoint.parse(text) == expected


@pytest.mark.parametrize("text", ["after-dedup", "after-dedup:0", "before-commit:2", "after-insert:x", ""])
def test_crash_point_parse_refuses(text) -> None:
    with pytest.raises(ValueError, match="crash point"):
        CrashPoint.parse(text)


def test_message_to_row_keeps_the_source_position_and_millis() -> None:
    row = dict(zip(ROW_COLUMNS, message_to_row(GOOD, "nova.events", 3, 1234, 2), strict=True))
    assert row["event_id"] == uuid.UUID("0b7e7c1e-9a4c-4c55-8f43-2a8e2f7a9d11")
    assert (row["user_id"], row["post_id"], row["author_id"], row["event_type"]) == (7, 9, 3, "like")
    assert row["received_at_ms"] % 1000 == 500 and row["received_at"] == row["received_at_ms"] // 1000
    assert (row["dwell_ms"], row["position"], row["surface"]) == (0, 4, "home")
    assert (row["_topic"], row["_partition"], row["_offset"], row["_generation"]) == ("nova.events", 3, 1234, 2)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"{nope", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (GOOD.replace(b'"like"', b'"poke"'), "event_type"),
        (GOOD.replace(b'"user_id": 7', b'"user_id": -7'), "user_id"),
        (GOOD.replace(b'"user_id": 7', b'"user_id": true'), "user_id"),
        (GOOD.replace(b"0b7e7c1e-9a4c-4c55-8f43-2a8e2f7a9d11", b"0b7e7c1e"), "event_id"),
        (GOOD.replace(b'"dwell_ms": null', b'"dwell_ms": -1'), "dwell_ms"),
        (GOOD.replace(b'"2026-11-23T10:00:00.250Z"', b'"yesterday"'), "ts: 'yesterday'"),
    ],
)
def test_message_to_row_refuses_malformed_messages(value, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        message_to_row(value, "nova.events", 0, 0, 0)


@pytest.mark.requires_redis
class TestDedupMarks:
    def _dedup(self, **kwargs) -> EventDedup:
        return EventDedup(
            settings.EVENTS_DEDUP_REDIS_URL, f"{settings.REDIS_KEY_PREFIX}:{uuid.uuid4().hex[:8]}", 48 * 3600, **kwargs
        )

    def test_new_then_replay_of_the_same_message_then_client_retry(self) -> None:
        dedup = self._dedup()
        a, b = uuid.uuid4().hex, uuid.uuid4().hex
        mark_a, mark_b = message_mark(0, 1, 10), message_mark(0, 1, 11)
        assert dedup.classify([(1, a), (1, b)], [mark_a, mark_b]) == [Seen.NEW, Seen.NEW]
        # the same messages again (a crash before the insert): inserted again
        assert dedup.classify([(1, a), (1, b)], [mark_a, mark_b]) == [Seen.REPLAY, Seen.REPLAY]
        # another message with event a (client retry), and the same id twice in one batch
        c = uuid.uuid4().hex
        marks = [message_mark(0, 1, 50), message_mark(0, 1, 51), message_mark(0, 1, 52)]
        assert dedup.classify([(1, a), (1, c), (1, c)], marks) == [Seen.RETRY, Seen.NEW, Seen.RETRY]
        # a new topic generation at the same offset is another message
        assert dedup.classify([(1, a)], [message_mark(1, 1, 10)]) == [Seen.RETRY]

    def test_marks_live_at_least_a_day(self) -> None:
        dedup = self._dedup()
        event_id = uuid.uuid4().hex
        dedup.classify([(7, event_id)], [message_mark(0, 0, 0)])
        ttl = dedup.client.ttl(f"{dedup.key_prefix}:dedup:event:7:{event_id}")
        assert 24 * 3600 <= ttl <= 48 * 3600
        with pytest.raises(ValueError, match="24 h"):
            EventDedup(settings.REDIS_URL, "x", 3600)

    def test_negative_control_marks_without_identity_take_a_replay_for_a_retry(self) -> None:
        dedup = self._dedup(mark_identity=False)
        a = uuid.uuid4().hex
        assert dedup.classify([(1, a)], [message_mark(0, 0, 5)]) == [Seen.NEW]
        assert dedup.classify([(1, a)], [message_mark(0, 0, 5)]) == [Seen.RETRY]  # the loss the chaos test catches

    def test_empty_batch(self) -> None:
        assert self._dedup().classify([], []) == []
