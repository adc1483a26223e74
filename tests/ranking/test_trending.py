"""Trending posts: trending_posts.sql on a small world in ClickHouse 18.16, and
the Redis list the feed's fallback reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nova.periodic import task_redis
from ranking.trending import fetch_trending, refresh_trending, trending_key, trending_params, trending_post_ids
from ranking.world import WEvent, World, WPost, WRelation, WUser, delete_relations, write_world
from tests.support.redis_down import redis_down  # noqa: F401

NOW = datetime(2024, 6, 15, 12, 30, tzinfo=UTC)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def small_world() -> tuple[World, list[WRelation]]:
    """Posts 1..9 by authors 10..13 (13 inactive); readers 20, 21. Returns the world and a like deleted later."""
    posts = [
        WPost(1, 10, ago(hours=1)),  # click 1 + like 2 (event and CDC row: counted once) = 3
        WPost(2, 11, ago(hours=2)),  # share 4 + comment 3 (CDC only) = 7
        WPost(3, 10, ago(hours=23)),  # two clicks = 2
        WPost(4, 12, ago(hours=3)),  # two likes by CDC, one as an event: the larger count, 2 -> 4
        WPost(5, 13, ago(hours=1)),  # by an inactive author
        WPost(6, 11, ago(hours=2), deleted=True),
        WPost(7, 12, ago(hours=25)),  # created before the window
        WPost(8, 10, ago(hours=4)),  # impressions and views only: no weighted action
        WPost(9, 11, ago(minutes=30)),  # its only like was undone
        WPost(10, 12, ago(hours=5)),  # two clicks: ties with post 3, newer id first
    ]
    author = {p.id: p.author_id for p in posts}

    def ev(user: int, post: int, kind: str, when: datetime) -> WEvent:
        return WEvent(user, post, author[post], kind, when)

    undone = [WRelation(5, 21, 9, ago(minutes=20))]
    world = World(
        users=[WUser(10), WUser(11), WUser(12), WUser(13, active=False), WUser(20), WUser(21)],
        posts=posts,
        likes=[
            WRelation(1, 20, 1, ago(minutes=50)),
            WRelation(2, 20, 4, ago(hours=2)),
            WRelation(3, 21, 4, ago(hours=2)),
            *undone,
        ],
        comments=[WRelation(1, 21, 2, ago(hours=1))],
        events=[
            ev(20, 1, "click", ago(minutes=55)),
            ev(20, 1, "like", ago(minutes=50)),
            ev(20, 2, "share", ago(hours=1)),
            ev(20, 3, "click", ago(hours=20)),
            ev(21, 3, "click", ago(hours=19)),
            ev(20, 4, "like", ago(hours=2)),
            ev(20, 5, "share", ago(minutes=30)),
            ev(20, 6, "share", ago(hours=1)),
            ev(20, 7, "share", ago(hours=1)),
            ev(20, 8, "impression", ago(hours=3)),
            ev(20, 8, "view", ago(hours=3)),
            ev(20, 10, "click", ago(hours=4)),
            ev(21, 10, "click", ago(hours=4)),
        ],
    )
    return world, undone


@pytest.fixture
def world(world_db):
    built, undone = small_world()
    write_world(world_db, built)
    delete_relations(world_db, "likes", undone)
    return world_db


def test_params_bind_the_window() -> None:
    params = trending_params(NOW, 24, 5)
    assert params["now_s"] - params["since_s"] == 24 * 3600
    assert params["since_hour_s"] % 3600 == 0 and 0 <= params["since_s"] - params["since_hour_s"] < 3600
    assert params["limit"] == 5


@pytest.mark.requires_clickhouse
def test_trending_posts_by_weighted_actions(world) -> None:
    got = [(p.post_id, p.weighted_actions) for p in fetch_trending(world, NOW, 24, 10)]
    assert got == [(2, 7), (4, 4), (1, 3), (10, 2), (3, 2)]
    assert {p.post_id: p.author_id for p in fetch_trending(world, NOW, 24, 10)}[2] == 11


@pytest.mark.requires_clickhouse
def test_limit_and_window(world) -> None:
    assert [p.post_id for p in fetch_trending(world, NOW, 24, 2)] == [2, 4]
    # a 3-hour window keeps posts 1, 2, 4 (created within it) with their engagement
    assert [p.post_id for p in fetch_trending(world, NOW, 3, 10)] == [2, 4, 1]
    # an hour later, post 3 (23 h old) has left the 24-hour window
    assert 3 not in [p.post_id for p in fetch_trending(world, NOW + timedelta(hours=2), 24, 10)]


@pytest.mark.requires_clickhouse
@pytest.mark.requires_redis
def test_refresh_stores_the_ids_with_a_ttl(world) -> None:
    store = task_redis()
    store.delete(trending_key())
    assert trending_post_ids() == []
    assert refresh_trending(world, store, NOW, window_hours=24, limit=3, ttl_seconds=120) == [2, 4, 1]
    assert trending_post_ids() == [2, 4, 1]
    assert 0 < store.ttl(trending_key()) <= 120
    # idempotent: the list is replaced, never appended to
    refresh_trending(world, store, NOW, window_hours=24, limit=3, ttl_seconds=120)
    assert trending_post_ids() == [2, 4, 1]
    store.delete(trending_key())


@pytest.mark.requires_redis
def test_a_reader_never_fails(request) -> None:
    store = task_redis()
    for corrupt in (b"not json", b'{"a": 1}', b'[1, "2"]', b"[true]"):
        store.set(trending_key(), corrupt, ex=60)
        assert trending_post_ids() == []
    store.delete(trending_key())
    request.getfixturevalue("redis_down")
    assert trending_post_ids() == []
