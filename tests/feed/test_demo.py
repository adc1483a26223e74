"""The demo graph generator (pure) and the seed_demo command (real Postgres)."""

from __future__ import annotations

import re
import stat
import statistics
from collections import Counter
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

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


@pytest.fixture
def credentials(tmp_path):
    return tmp_path / "var" / "demo-credentials.txt"


def _seed(credentials, *args: str) -> str:
    out = StringIO()
    call_command(
        "seed_demo", "--users", "120", "--posts", "600", "--credentials-file", str(credentials), *args, stdout=out
    )
    return out.getvalue()


def _snapshot() -> tuple:
    follows = sorted(Follow.objects.values_list("follower__username", "followee__username"))
    counts = tuple(model.objects.count() for model in (User, Post, Follow, Like, Comment, Mute))
    return counts, follows


@pytest.mark.requires_postgres
def test_seed_demo_writes_once_with_generated_passwords(db, credentials):
    output = _seed(credentials)
    passwords = dict(re.findall(r"(demo|admin) / (\S+)", credentials.read_text()))
    assert set(passwords) == {"demo", "admin"} and len(set(passwords.values())) == 2
    assert "demo-password" not in passwords.values() and "admin-password" not in passwords.values()
    assert f"demo / {passwords['demo']}" in output
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    first = _snapshot()
    assert first[0][:2] == (121, 600)  # 120 generated users + admin
    assert User.objects.get(username="demo").check_password(passwords["demo"])
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(passwords["admin"])
    again = _seed(credentials)
    assert "already present" in again and f"admin / {passwords['admin']}" in again
    assert _snapshot() == first


@pytest.mark.requires_postgres
def test_another_checkout_gets_other_passwords(db, tmp_path):
    _seed(tmp_path / "a.txt")
    _seed(tmp_path / "b.txt", "--reset")
    assert (tmp_path / "a.txt").read_text() != (tmp_path / "b.txt").read_text()


@pytest.mark.requires_postgres
def test_seed_demo_refuses_a_database_elsewhere_unless_forced(db, credentials, monkeypatch):
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict, "HOST", "db.example.com")
    with pytest.raises(CommandError, match="not this machine"):
        _seed(credentials)
    assert not User.objects.exists()
    _seed(credentials, "--force")
    assert User.objects.filter(username="demo").exists()


@pytest.mark.requires_postgres
def test_seed_demo_reset_with_the_same_seed_rebuilds_the_same_graph(db, credentials):
    _seed(credentials, "--seed", "5")
    first = _snapshot()
    password = credentials.read_text()
    _seed(credentials, "--seed", "5", "--reset")
    assert _snapshot() == first
    assert credentials.read_text() == password  # --reset keeps the passwords
