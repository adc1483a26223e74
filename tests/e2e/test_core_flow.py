"""The core flow, end to end, through the public API of a complete Nova
(every Procfile process running, tests/support/stack.py):

1. a user posts and another follows: the post is on the follower's first page
   at once (merged at read time) and then ranked (it reached ClickHouse by CDC);
2. events arrive through the API: the engaged post's rank moves above the newer
   post within the event-to-visible budget;
3. every accepted event is in ClickHouse exactly once.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from tests.support.stack import Stack, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The SLO's event-to-visible P95 is 5 s; the follower's ranked snapshot may be up
# to FEED_CACHE_TTL_SECONDS (3 s here) old, and this 2-core machine runs every
# process at once: the test allows both, and reports what it saw.
EVENT_TO_VISIBLE_BUDGET_SECONDS = 5 + 3 + 7


def feed(stack: Stack, token: str, limit: int = 20) -> dict:
    answer = stack.request("GET", f"/api/v1/feed/?limit={limit}", token)
    assert answer.status == 200, answer
    return answer.body


def ranks(page: dict) -> dict[int, tuple[int, float | None]]:
    return {item["id"]: (item["rank"], item["score"]) for item in page["items"]}


def event(post_id: int, event_type: str, **extra: object) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "post_id": post_id,
        "event_type": event_type,
        "ts": datetime.now(UTC).isoformat(),
        **extra,
    }


def send_events(stack: Stack, token: str, events: list[dict[str, object]]) -> None:
    answer = stack.request("POST", "/api/v1/events/", token, {"events": events})
    assert answer.status == 202 and answer.body["accepted"] == len(events), answer


def test_post_follow_engage_rank(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    alice_id, alice = stack.register(f"alice_{tag}")
    _, bob = stack.register(f"bob_{tag}")
    fans = [stack.register(f"fan{i}_{tag}")[1] for i in range(4)]

    assert stack.request("POST", f"/api/v1/users/{alice_id}/follow/", bob).status == 201
    posts = []
    for body in ("the one that will be liked", "the newer one"):
        answer = stack.request("POST", "/api/v1/posts/", alice, {"body": body})
        assert answer.status == 201, answer
        posts.append(answer.body["id"])
        time.sleep(1.1)  # distinct creation seconds: the newer post is the fresher one
    liked, newer = posts

    # 1. on the first page at once (read-time merge), then ranked once CDC brought the posts to ClickHouse
    first = ranks(feed(stack, bob))
    assert liked in first and newer in first, first
    page = wait_for(
        lambda: (p := feed(stack, bob)) and all(ranks(p).get(i, (0, None))[1] is not None for i in posts) and p,
        60,
        "both posts ranked from ClickHouse",
    )
    before = ranks(page)
    assert before[newer][0] < before[liked][0], f"without engagement the newer post ranks first: {before}"

    # 2. engagement through the API moves the older post up
    sent: list[str] = []
    for fan in fans:
        batch = [
            event(liked, "impression", position=1),
            event(liked, "click"),
            event(liked, "like"),
            event(liked, "share"),
            event(newer, "impression", position=2),
        ]
        send_events(stack, fan, batch)
        sent += [str(e["event_id"]) for e in batch]
    started = time.monotonic()
    after = wait_for(
        lambda: (r := ranks(feed(stack, bob))) and r[liked][0] < r[newer][0] and r,
        EVENT_TO_VISIBLE_BUDGET_SECONDS,
        "the engaged post to rank above the newer one",
        interval=0.1,
    )
    visible_after = time.monotonic() - started
    print(f"event-to-visible (rank change seen by the follower): {visible_after:.2f}s; before {before}, after {after}")
    assert after[liked][1] > before[liked][1], "its score rose"

    # 3. exactly once in ClickHouse: the rows, and what the materialized view counted
    # (the rank may move on the first batch written, before the others land)
    wait_for(lambda: len(stack.event_counts(sent)) == len(sent), 60, "every event in ClickHouse")
    assert stack.event_counts(sent) == {event_id: 1 for event_id in sent}
    counted = stack.clickhouse(
        "SELECT sum(impressions), sum(clicks), sum(likes), sum(shares) FROM post_engagement_hourly"
        " WHERE post_id = %(post)s",
        {"post": liked},
    )
    assert counted == [(len(fans), len(fans), len(fans), len(fans))]
