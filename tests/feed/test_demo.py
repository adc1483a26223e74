"""The demo graph generator (pure) and the seed_demo command (real Postgres)."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from feed.demo import DemoSizes, generate
from feed.models import Comment, Follow, Like, Mute, Post, User

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SMALL = DemoSizes(users=300, posts=2_000)


def test_same_seed_same_graph_other_seed_other_graph():
    assert generate(SMALL, seed=7, now=NOW) == generate(SMALL, seed=7, now=NOW)
    assert generate(SMALL, seed=7, now=NOW).follows != generate(SMALL, seed=8, now=NOW).follows


def test_follow_graph_is_heavy_tailed():
    graph = generate(DemoSizes(users=2_000, posts=0), seed=1, now=NOW)
    followers = Counter(followee for _, followee, _ in graph.follows)
    counts = sorted((followers.get(i, 0) for i in range(2_000)), reverse=True)
    assert counts[0] >= 1_000  # "some authors with thousands of followers" at the default size
    assert statistics.median(counts) <= 0.05 * counts[0]
    assert sum(counts[:20]) >= 0.2 * sum(counts)  # 1 % of users hold a fifth of all follows


def test_rows_respect_the_constraints():
    graph = generate(SMALL, seed=3, now=NOW)
    pairs = [(a, b) for a, b, _ in graph.follows]
    assert len(pairs) == len(set(pairs)) and all(a != b for a, b in pairs)
    assert len({(u, p) for u, p, _ in graph.likes}) == len(graph.likes)
    assert all(u != m for u, m, _ in graph.mutes)
    assert len({name for name, _, _ in graph.users}) == SMALL.users
    stamps = [at for _, at, _, _ in graph.posts]
    assert stamps == sorted(stamps) and NOW - timedelta(days=7) <= stamps[0] and stamps[-1] <= NOW
    assert all(len(body) <= 5000 for _, _, body, _ in graph.posts)
    assert all(graph.posts[p][1] <= at <= NOW for _, p, at in graph.likes)


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--users", "120", "--posts", "600", *args, stdout=out)
    return out.getvalue()


def _snapshot() -> tuple:
    follows = sorted(Follow.objects.values_list("follower__username", "followee__username"))
    counts = tuple(model.objects.count() for model in (User, Post, Follow, Like, Comment, Mute))
    return counts, follows


@pytest.mark.requires_postgres
def test_seed_demo_writes_once_and_prints_credentials(db):
    output = _seed()
    assert "demo / demo-password" in output and "admin / admin-password" in output
    first = _snapshot()
    assert first[0][:2] == (121, 600)  # 120 generated users + admin
    assert User.objects.get(username="demo").check_password("demo-password")
    assert User.objects.get(username="admin").is_superuser
    assert "already present" in _seed()
    assert _snapshot() == first


@pytest.mark.requires_postgres
def test_seed_demo_reset_with_the_same_seed_rebuilds_the_same_graph(db):
    _seed("--seed", "5")
    first = _snapshot()
    _seed("--seed", "5", "--reset")
    assert _snapshot() == first
