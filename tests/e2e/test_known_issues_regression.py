"""Known failure modes, end to end, on a complete private Nova
(tests/support/stack.py): each test breaks one piece the way production breaks,
drives the public API through it, and checks the answers during the outage and
the data after recovery.

- ClickHouse down mid-traffic: feeds keep answering (fallback, never a 5xx),
  ranking comes back after the restart, and what was written meanwhile lands.
- The broker frozen: ingest answers 503 with Retry-After; the client's retry
  after the thaw is accepted, and every event is counted once.
- The events consumer killed (-9) mid-stream and restarted: no event lost or
  written twice.
- Redis flushed: feeds are still served, and the warmer repopulates snapshots
  without any request.
- The CDC relay stalled: the replication-slot lag on /metrics rises, and falls
  again once it resumes.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.support.stack import Stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def event(post_id: int, event_type: str = "click") -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "post_id": post_id,
        "event_type": event_type,
        "ts": datetime.now(UTC).isoformat(),
    }


@pytest.fixture(scope="module")
def world(stack: Stack) -> dict[str, object]:
    """An author with posts, and readers who follow them."""
    tag = uuid.uuid4().hex[:6]
    author_id, author = stack.register(f"author_{tag}")
    readers = [stack.register(f"reader{i}_{tag}") for i in range(3)]
    for _, token in readers:
        assert stack.request("POST", f"/api/v1/users/{author_id}/follow/", token).status == 201
    posts = []
    for i in range(3):
        answer = stack.request("POST", "/api/v1/posts/", author, {"body": f"post {i}"})
        assert answer.status == 201
        posts.append(answer.body["id"])
    # ranked once the posts reached ClickHouse
    wait_for(
        lambda: (
            stack.request("GET", "/api/v1/feed/", readers[0][1]).body["source"] == "ranked"
            and any(
                item["score"] is not None for item in stack.request("GET", "/api/v1/feed/", readers[0][1]).body["items"]
            )
        ),
        60,
        "a ranked feed",
    )
    return {"author": author, "author_id": author_id, "readers": readers, "posts": posts}


def test_clickhouse_down_mid_traffic(stack: Stack, world: dict) -> None:
    readers = [token for _, token in world["readers"]]
    statuses: list[int] = []
    sources: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            for token in readers:
                answer = stack.request("GET", "/api/v1/feed/", token, timeout=15)
                statuses.append(answer.status)
                if answer.status == 200:
                    sources.add(answer.body["source"])
            time.sleep(0.05)

    driver = threading.Thread(target=traffic)
    driver.start()
    try:
        time.sleep(1)
        stack.servers["clickhouse"].down()
        # written while ClickHouse is down: CDC and events must land after it is back
        written = stack.request("POST", "/api/v1/posts/", world["author"], {"body": "during the outage"})
        assert written.status == 201
        events = [event(p) for p in world["posts"]]
        accepted = stack.request("POST", "/api/v1/events/", readers[0], {"events": events})
        assert accepted.status == 202
        wait_for(lambda: "fallback" in sources, 30, "a fallback answer while ClickHouse is down")
        time.sleep(2)
    finally:
        stack.servers["clickhouse"].up()
        time.sleep(3)
        stop.set()
        driver.join(30)
    assert statuses and all(status == 200 for status in statuses), sorted(set(statuses))

    # recovery: ranking again (the breaker's cool-down is 2 s here) and nothing lost
    new_post = written.body["id"]
    wait_for(
        lambda: stack.clickhouse("SELECT count() FROM posts FINAL WHERE id = %(id)s", {"id": new_post}) == [(1,)],
        60,
        "the post written during the outage in ClickHouse",
    )
    wait_for(
        lambda: stack.event_counts([str(e["event_id"]) for e in events]) == {str(e["event_id"]): 1 for e in events},
        60,
        "the events sent during the outage, once each",
    )
    _, fresh_reader = stack.register(f"late_{uuid.uuid4().hex[:6]}")
    assert stack.request("POST", f"/api/v1/users/{world['author_id']}/follow/", fresh_reader).status == 201
    wait_for(
        lambda: stack.request("GET", "/api/v1/feed/", fresh_reader).body["source"] == "ranked",
        30,
        "ranked answers after the recovery",
    )


def test_broker_frozen_ingest_503_then_retry_counted_once(stack: Stack, world: dict) -> None:
    token = world["readers"][1][1]
    events = [event(p, "like") for p in world["posts"]]
    stack.servers["kafka"].signal(signal.SIGSTOP)
    try:
        answer = stack.request("POST", "/api/v1/events/", token, {"events": events}, timeout=20)
        assert answer.status == 503, answer
        assert int(answer.headers["Retry-After"]) > 0
        # the feed does not depend on the broker
        assert stack.request("GET", "/api/v1/feed/", token).status == 200
    finally:
        stack.servers["kafka"].signal(signal.SIGCONT)
    # the client retries the same batch (same event ids) as the 503 told it to
    retry = wait_for(
        lambda: (a := stack.request("POST", "/api/v1/events/", token, {"events": events})).status == 202 and a,
        60,
        "ingest accepting again after the thaw",
    )
    assert retry.body["accepted"] == len(events)
    ids = [str(e["event_id"]) for e in events]
    wait_for(lambda: stack.event_counts(ids) == {i: 1 for i in ids}, 60, "each event once in ClickHouse")
    time.sleep(3)  # a late duplicate (the frozen batch delivered after all) would show by now
    assert stack.event_counts(ids) == {i: 1 for i in ids}


def test_events_consumer_killed_mid_stream(stack: Stack, world: dict) -> None:
    tokens = [token for _, token in world["readers"]]
    sent: list[str] = []
    consumer = stack.processes["events_consumer"]
    for round_ in range(30):
        batch = [event(world["posts"][i % 3], ("impression", "click", "view")[i % 3]) for i in range(50)]
        answer = stack.request("POST", "/api/v1/events/", tokens[round_ % 3], {"events": batch})
        assert answer.status == 202, answer
        sent += [str(e["event_id"]) for e in batch]
        if round_ == 12:
            consumer.kill9()
        if round_ == 20:
            consumer.start()  # what the process supervisor does
    wait_for(lambda: len(stack.event_counts(sent)) == len(sent), 120, "every event after the restart")
    time.sleep(3)
    counts = stack.event_counts(sent)
    assert counts == {i: 1 for i in sent}, {i: c for i, c in counts.items() if c != 1}


def snapshot_keys(stack: Stack) -> set[bytes]:
    return set(stack.redis().keys("nova:feed:snap:*"))


def test_redis_flushed(stack: Stack, world: dict) -> None:
    token = world["readers"][2][1]
    reader_id = world["readers"][2][0]
    assert stack.request("GET", "/api/v1/feed/", token).status == 200
    stack.redis().flushall()
    answer = stack.request("GET", "/api/v1/feed/", token)
    assert answer.status == 200 and answer.body["items"], answer
    # the request recorded the reader as active again; take its snapshot away and
    # let the warmer (beat → worker, every 2 s here) build it with no request
    key = f"nova:feed:snap:{reader_id}".encode()
    stack.redis().delete(key)
    wait_for(lambda: key in snapshot_keys(stack), 60, "the warmer to rebuild the reader's snapshot", interval=0.1)


def slot_lag_bytes(stack: Stack) -> float:
    text = stack.request("GET", "/metrics").body
    match = re.search(r"^cdc_replication_slot_lag_bytes\{[^}]*\} (\S+)$", text, re.M)
    return float(match.group(1)) if match else -1.0


def test_relay_stalled_slot_lag_rises(stack: Stack, world: dict) -> None:
    relay = stack.processes["cdc_relay"]
    wait_for(lambda: 0 <= slot_lag_bytes(stack) < 1_000_000, 60, "a small slot lag on /metrics")
    relay.signal(signal.SIGSTOP)
    try:
        for i in range(40):
            body = {"body": f"lag {i} " + "x" * 2000}
            assert stack.request("POST", "/api/v1/posts/", world["author"], body).status == 201
        rising = wait_for(
            lambda: (lag := slot_lag_bytes(stack)) > 50_000 and lag,
            60,
            "the slot lag to rise while the relay is stalled",
        )
    finally:
        relay.signal(signal.SIGCONT)
    wait_for(lambda: slot_lag_bytes(stack) < rising, 60, "the slot lag to fall after the relay resumed")
