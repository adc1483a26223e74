"""pipeline/ingest.py: batch shape and the validate → enrich → publish step, pure.

`ingest_events` takes its I/O as callables; the tests pass plain functions
(a dict of posts, a list that collects what was published)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from pipeline.event_schema import TimeWindow
from pipeline.ingest import BatchRejected, events_of, ingest_events

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WINDOW = TimeWindow(max_future_skew=timedelta(minutes=5), max_age=timedelta(days=7))
POSTS = {10: 100, 11: 101}  # post id → author id


def ev(n: int, post_id: int = 10, **extra):
    return {
        "event_id": f"00000000-0000-4000-8000-{n:012d}",
        "post_id": post_id,
        "event_type": "like",
        "ts": "2026-11-23T11:00:00Z",
        **extra,
    }


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (None, 400, 'body: must be a JSON object {"events": [...]}'),
        ([], 400, 'body: must be a JSON object {"events": [...]}'),
        ({}, 400, 'body: must be a JSON object {"events": [...]}'),
        ({"events": {}}, 400, "events: must be a list"),
        ({"events": "x"}, 400, "events: must be a list"),
        ({"events": []}, 400, "events: must hold at least one event"),
        ({"events": [{}] * 4}, 413, "events: 4 events; at most 3 per request"),
    ],
)
def test_events_of_refuses_bad_batches(body, status, reason) -> None:
    with pytest.raises(BatchRejected) as excinfo:
        events_of(body, max_batch=3)
    assert (excinfo.value.status, str(excinfo.value)) == (status, reason)


@pytest.mark.parametrize("size", [1, 3])
def test_events_of_returns_the_list(size) -> None:
    assert events_of({"events": [{}] * size}, max_batch=3) == [{}] * size


class Recorder:
    def __init__(self) -> None:
        self.published: list[list[tuple[bytes, bytes]]] = []
        self.lookups: list[set[int]] = []

    def post_authors(self, post_ids):
        self.lookups.append(set(post_ids))
        return {pid: POSTS[pid] for pid in post_ids if pid in POSTS}

    def publish(self, messages) -> None:
        self.published.append(messages)


def run(events, user_id=5):
    recorder = Recorder()
    result = ingest_events(events, user_id, NOW, WINDOW, recorder.post_authors, recorder.publish)
    return result, recorder


def test_mixed_batch_publishes_the_good_and_reports_the_bad_by_index() -> None:
    events = [ev(1), {"bad": 1}, ev(2, post_id=999), ev(3, post_id=11, user_id=77, author_id=666), ev(4, ts="x")]
    result, recorder = run(events, user_id=5)
    assert (result.accepted, result.rejected) == (2, 3)
    assert result.errors == [
        {"index": 1, "reason": "unknown field(s): bad"},
        {"index": 2, "reason": "post_id: post 999 does not exist"},
        {"index": 4, "reason": "ts: 'x' is not an ISO 8601 timestamp"},
    ]
    assert recorder.lookups == [{10, 999, 11}]  # one lookup for the whole batch
    [batch] = recorder.published
    assert [key for key, _ in batch] == [b"5", b"5"]
    values = [orjson.loads(value) for _, value in batch]
    # user_id from the caller and author_id from the post, whatever the body said
    assert [(v["user_id"], v["post_id"], v["author_id"]) for v in values] == [(5, 10, 100), (5, 11, 101)]
    assert {v["received_at"] for v in values} == {"2026-11-23T12:00:00.000Z"}


def test_all_bad_batch_publishes_nothing_and_looks_nothing_up() -> None:
    result, recorder = run([{"x": 1}, 3])
    assert (result.accepted, result.rejected) == (0, 2)
    assert recorder.published == [] and recorder.lookups == []


def test_batch_of_unknown_posts_publishes_nothing() -> None:
    result, recorder = run([ev(1, post_id=998), ev(2, post_id=999)])
    assert (result.accepted, result.rejected, recorder.published) == (0, 2, [])


def test_publish_failure_propagates_and_nothing_is_counted_accepted() -> None:
    def refuse(_messages):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        ingest_events([ev(1)], 5, NOW, WINDOW, Recorder().post_authors, refuse)
