"""bench/load.py's workload: seeded, the issue's mix, Zipf-skewed users, next
pages only with a cursor the server gave, event ids unique and recorded."""

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from load import Workload


def kinds(workload: Workload, n: int) -> Counter:
    return Counter(workload.next().kind for _ in range(n))


def test_same_seed_same_requests():
    a, b = Workload(100, [1, 2, 3], seed=7), Workload(100, [1, 2, 3], seed=7)
    first = [(r.kind, r.user, r.path, r.event_ids, r.target) for r in (a.next() for _ in range(500))]
    second = [(r.kind, r.user, r.path, r.event_ids, r.target) for r in (b.next() for _ in range(500))]
    assert first == second
    assert first != [
        (r.kind, r.user, r.path, r.event_ids, r.target)
        for r in (Workload(100, [1, 2, 3], seed=8).next() for _ in range(500))
    ]


def test_mix_is_80_15_5():
    counts = kinds(Workload(1_000, list(range(50)), seed=1), 20_000)
    share = {k: n / 20_000 for k, n in counts.items()}
    assert abs(share["feed"] - 0.80) < 0.02
    assert abs(share["events"] - 0.15) < 0.02
    assert abs(share["post"] + share["follow"] + share["like"] - 0.05) < 0.01
    assert "feed_next" not in counts  # no cursor was ever given back


def test_next_pages_use_the_cursor_given_back():
    workload = Workload(1, [1], seed=3)
    workload.remember_cursor(0, "abc")
    feeds = [r for r in (workload.next() for _ in range(2_000)) if r.kind.startswith("feed")]
    following = [r for r in feeds if r.kind == "feed_next"]
    assert following and all(r.path.endswith("cursor=abc") for r in following)
    assert 0.15 < len(following) / len(feeds) < 0.35
    workload.remember_cursor(0, None)  # the last page: back to first pages
    assert all(workload.next().kind != "feed_next" for _ in range(500))


def test_users_follow_a_zipf_and_event_ids_are_unique():
    workload = Workload(1_000, list(range(10)), seed=5)
    requests = [workload.next() for _ in range(10_000)]
    users = Counter(r.user for r in requests)
    assert users[0] > users[9] > users[99]  # the head is hot
    ids = [e for r in requests for e in r.event_ids]
    assert ids and len(ids) == len(set(ids))
    assert all(r.body is not None and len(r.body["events"]) == len(r.event_ids) for r in requests if r.kind == "events")
