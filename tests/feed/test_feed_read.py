"""GET /api/v1/feed/ against the real services: ranked from ClickHouse (a world
mirrored from Postgres), cached in Redis, hydrated from Postgres."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection

from feed import cache, cursors
from feed.models import Post
from feed.read import read_feed
from monitoring import metrics
from nova.breaker import breaker_for
from tests.support.feed_world import Mirror, flush_feed_keys, make_post, make_reader

pytestmark = [pytest.mark.requires_clickhouse, pytest.mark.requires_redis, pytest.mark.requires_postgres]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def feed_env(world_db, settings):
    """The feed ranks from this test's private ClickHouse database; Redis keys are fresh."""
    database = world_db.connection.database
    # generous: these tests are about the feed, not ClickHouse's speed on a busy machine
    settings.CLICKHOUSE = replace(settings.CLICKHOUSE, database=database, query_timeout=10.0)
    flush_feed_keys()
    breaker_for("clickhouse").store.set_closed()
    yield Mirror(world_db)
    flush_feed_keys()


FOLLOWED = ("bob", "carol", "dave", "frank", "grace", "heidi")


@pytest.fixture
def world(feed_env, transactional_db):
    """alice follows six authors; erin is followed by no one but is trending.
    In the 72 h window: 3 posts by each followee; older posts (4-9 days) reach
    only the backfill. Transactional: the feed cache is kept in step by on_commit
    hooks (feed/services.py)."""
    alice = make_reader("alice")
    authors = {name: make_reader(name) for name in (*FOLLOWED, "erin")}
    for name in FOLLOWED:
        alice.user.following.create(followee=authors[name].user)
    posts: dict[str, list[Post]] = {name: [] for name in authors}
    for n, name in enumerate(FOLLOWED):
        for i in range(3):
            posts[name].append(make_post(authors[name].user, HOUR * (2 + 9 * i + n)))
        for i in range(3):
            posts[name].append(make_post(authors[name].user, DAY * (4 + 2 * i) + HOUR * n))
    trending = make_post(authors["erin"].user, 2 * HOUR)
    posts["erin"].append(trending)
    for reader in authors.values():
        feed_env.engage(reader.user, trending, "like", 3)
    feed_env.engage(alice.user, posts["carol"][0], "like", 2)
    feed_env.sync()
    return alice, authors, posts, feed_env


def _snapshot(reader) -> cache.Snapshot:
    snapshot = cache.first_page_state(reader.id).snapshot
    assert snapshot is not None
    return snapshot


def _get(reader, **params):
    response = reader.api.get("/api/v1/feed/", params)
    assert response.status_code == 200, response.content
    return response.json()


def _ids(page) -> list[int]:
    return [item["id"] for item in page["items"]]


def test_first_page_is_ranked_then_served_from_cache(world):
    alice, authors, posts, _ = world
    hits, misses = metrics.FEED_CACHE_HITS._value.get(), metrics.FEED_CACHE_MISSES._value.get()
    first = _get(alice, limit=50)
    assert first["source"] == "ranked"
    assert first["profile"] == "default"
    snapshot = _snapshot(alice)
    # every in-window post of a followee and erin's trending post were candidates;
    # the ranked part is the snapshot (the author cap may hold a few back)
    in_window = {p.pk for name in FOLLOWED for p in posts[name][:3]} | {posts["erin"][0].pk}
    ranked_ids = [entry.post_id for entry in snapshot.entries]
    assert set(ranked_ids) <= in_window and len(ranked_ids) >= 14
    assert posts["erin"][0].pk in ranked_ids
    ranked, backfill = first["items"][: len(ranked_ids)], first["items"][len(ranked_ids) :]
    assert [item["id"] for item in ranked] == ranked_ids
    assert [item["score"] for item in ranked] == pytest.approx([entry.score for entry in snapshot.entries])
    # then the backfill: every other post of followees, newest first, without scores
    rest = Post.objects.filter(author__username__in=FOLLOWED).exclude(pk__in=ranked_ids)
    assert [item["id"] for item in backfill] == list(rest.order_by("-created_at", "-id").values_list("pk", flat=True))
    assert all(item["score"] is None for item in backfill)
    assert [item["rank"] for item in first["items"]] == list(range(1, len(first["items"]) + 1))
    assert first["next_cursor"] is None  # 37 posts in all, under the limit
    item = first["items"][0]
    assert set(item) == {
        "id",
        "author",
        "body",
        "media_url",
        "created_at",
        "like_count",
        "comment_count",
        "rank",
        "score",
    }
    assert set(item["author"]) == {"id", "username", "display_name"}

    second = _get(alice, limit=50)
    assert second["source"] == "cache"
    assert second["items"] == first["items"]
    assert metrics.FEED_CACHE_MISSES._value.get() == misses + 1
    assert metrics.FEED_CACHE_HITS._value.get() == hits + 1


def test_order_is_the_rankers(world):
    from nova.clickhouse import make_client
    from ranking.profiles import profile_for_user
    from ranking.service import rank_feed

    alice, *_ = world
    page = _get(alice, limit=50)
    # the same moment as the feed's ranking: scores decay with time
    as_of = datetime.fromtimestamp(_snapshot(alice).built_at, tz=UTC)
    ranked = rank_feed(alice.id, as_of, profile_for_user(alice.id), make_client(django_settings.CLICKHOUSE))
    assert _ids(page)[: len(ranked.items)] == [item.post_id for item in ranked.items]


@pytest.mark.parametrize("limit", ["0", "51", "-1", "abc", "1.5", "99999999999999999999"])
def test_limit_outside_1_to_50_is_a_400(world, limit):
    alice, *_ = world
    response = alice.api.get("/api/v1/feed/", {"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()


def test_default_limit_is_20_and_1_and_50_are_allowed(world):
    alice, *_ = world
    assert len(_get(alice, limit=1)["items"]) == 1
    assert len(_get(alice)["items"]) == 20
    everything = _get(alice, limit=50)  # all 37 posts alice may see, ranked then backfill
    assert len(everything["items"]) == 37
    assert everything["next_cursor"] is None


def test_anonymous_is_refused(world, client):
    assert client.get("/api/v1/feed/").status_code == 401


def _cursor_error(reader, cursor: str) -> str:
    response = reader.api.get("/api/v1/feed/", {"cursor": cursor})
    assert response.status_code == 400, response.content
    return response.json()["cursor"][0]


def test_bad_cursors_are_400s_that_say_why(world):
    alice, authors, *_ = world
    good = _get(alice, limit=3)["next_cursor"]
    payload, mac = good.split(".")
    assert _cursor_error(alice, "garbage").startswith("Malformed cursor")
    assert _cursor_error(alice, "a.b.c!").startswith("Malformed cursor")
    tampered = ("A" if payload[5] != "A" else "B").join((payload[:5], payload[6:]))
    assert _cursor_error(alice, f"{tampered}.{mac}").startswith("Invalid cursor: it was altered")
    bobs = _get(authors["bob"], limit=1)["next_cursor"]
    assert _cursor_error(alice, bobs) == "Invalid cursor: it was issued to another user."
    key = django_settings.SECRET_KEY.encode()
    old = cursors.encode(cursors.Cursor(cursors.BACKFILL, alice.id), key, now_s=1_000_000)
    assert _cursor_error(alice, old).startswith("Expired cursor")
    # a ranked cursor whose snapshot is gone from Redis
    snapshot = cursors.decode(good, key, alice.id, 2**40, 2**41).snapshot_id
    nova_client = __import__("nova.redis", fromlist=["client"]).client()
    nova_client.delete(f"{django_settings.REDIS_KEY_PREFIX}:feed:snap:{alice.id}:{snapshot}")
    assert _cursor_error(alice, good).startswith("Expired cursor: the ranked feed it belongs to is gone")


def test_pages_of_a_snapshot_survive_a_refresh(world):
    alice, authors, posts, mirror = world
    page1 = _get(alice, limit=5)
    # something that invalidates alice's snapshot, and changes what a new ranking gives
    alice.api.post(f"/api/v1/users/{authors['erin'].id}/follow/")
    mirror.engage(alice.user, posts["dave"][3], "like", 5)
    mirror.sync()
    refreshed = _get(alice, limit=5)
    assert refreshed["source"] == "ranked"
    page2 = _get(alice, limit=5, cursor=page1["next_cursor"])
    page3 = _get(alice, limit=5, cursor=page2["next_cursor"])
    served = _ids(page1) + _ids(page2) + _ids(page3)
    assert len(served) == len(set(served)) == 15
    assert [item["rank"] for item in page1["items"] + page2["items"] + page3["items"]] == list(range(1, 16))
    # pages 2 and 3 continue the old snapshot exactly where page 1 ended
    old = cache.snapshot_by_id(
        alice.id,
        cursors.decode(page1["next_cursor"], django_settings.SECRET_KEY.encode(), alice.id, 2**40, 2**41).snapshot_id,
    )[0]
    assert old is not None and len(old.entries) >= 15
    assert served == [entry.post_id for entry in old.entries][:15]


def test_ten_pages_past_the_snapshot_never_repeat_and_reach_every_post(world):
    alice, authors, posts, mirror = world
    for name in FOLLOWED:  # 60 more old posts: the backfill has pages to fill
        for i in range(10):
            make_post(authors[name].user, DAY * 12 + HOUR * i)
    served: list[int] = []
    ranks: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = _get(alice, limit=4, **({"cursor": cursor} if cursor else {}))
        pages += 1
        served += _ids(page)
        ranks += [item["rank"] for item in page["items"]]
        if pages > 5:
            assert all(item["score"] is None for item in page["items"])  # past the snapshot: backfill
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 60
    assert pages >= 10
    assert len(served) == len(set(served)), "a post was served twice"
    assert ranks == list(range(1, len(served) + 1))
    followed = Post.objects.filter(author__username__in=FOLLOWED).values_list("pk", flat=True)
    assert set(followed) <= set(served)
    assert set(served) - set(followed) == {posts["erin"][0].pk}  # the trending post, from the ranked part


def test_fifty_concurrent_misses_rank_once(feed_env, transactional_db):
    alice = make_reader("alice")
    bob = make_reader("bob")
    alice.user.following.create(followee=bob.user)
    for i in range(5):
        make_post(bob.user, HOUR * (i + 1))
    feed_env.sync()
    before = metrics.FEED_RANKINGS._value.get()
    barrier = threading.Barrier(50)
    results: list[object] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            barrier.wait(10)
            results.append(read_feed(alice.id, 5))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=read) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:3]
    assert len(results) == 50
    assert metrics.FEED_RANKINGS._value.get() - before == 1
    assert {page.snapshot.id for page in results} == {results[0].snapshot.id}  # type: ignore[attr-defined]
    assert sorted(page.source for page in results).count("ranked") == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("action", ["follow", "unfollow", "mute", "unmute"])
def test_relation_changes_invalidate_the_snapshot(world, action):
    alice, authors, *_ = world
    target = authors["erin"] if action in ("follow", "mute", "unmute") else authors["bob"]
    if action == "unmute":
        alice.api.post(f"/api/v1/users/{target.id}/mute/")
    assert _get(alice)["source"] in ("ranked", "cache")
    assert _get(alice)["source"] == "cache"
    path = f"/api/v1/users/{target.id}/{'mute' if 'mute' in action else 'follow'}/"
    response = alice.api.post(path) if action in ("follow", "mute") else alice.api.delete(path)
    assert response.status_code in (200, 201, 204)
    assert _get(alice)["source"] == "ranked"


def test_a_repeated_follow_keeps_the_cache(world):
    alice, authors, *_ = world
    _get(alice)
    assert alice.api.post(f"/api/v1/users/{authors['bob'].id}/follow/").status_code == 200  # already followed
    assert _get(alice)["source"] == "cache"


def test_a_followees_new_post_is_on_top_of_the_cached_feed(world):
    alice, authors, *_ = world
    _get(alice)
    response = authors["bob"].api.post("/api/v1/posts/", {"body": "just now"}, format="json")
    assert response.status_code == 201
    page = _get(alice)
    assert page["source"] == "cache"
    assert page["items"][0]["id"] == response.json()["id"]
    assert page["items"][0]["score"] is None
    # not twice: the next pages skip it
    rest = _get(alice, limit=50, cursor=page["next_cursor"])
    assert response.json()["id"] not in _ids(rest)
    # and the author sees it too; a stranger does not
    assert _get(authors["bob"])["items"][0]["id"] == response.json()["id"]
    assert response.json()["id"] not in _ids(_get(authors["erin"], limit=50))


def test_muting_an_author_removes_their_fresh_post(world):
    alice, authors, *_ = world
    _get(alice)
    post_id = authors["bob"].api.post("/api/v1/posts/", {"body": "x"}, format="json").json()["id"]
    assert _get(alice)["items"][0]["id"] == post_id
    alice.api.post(f"/api/v1/users/{authors['bob'].id}/mute/")
    assert post_id not in _ids(_get(alice, limit=50))


@pytest.mark.requires_kafka
def test_a_hide_accepted_by_the_events_api_is_gone_on_the_next_refresh(world):
    import uuid

    alice, *_ = world
    page = _get(alice)
    hidden = page["items"][1]["id"]
    response = alice.api.post(
        "/api/v1/events/",
        {
            "events": [
                {
                    "event_id": str(uuid.uuid4()),
                    "post_id": hidden,
                    "event_type": "hide",
                    "ts": __import__("django.utils.timezone", fromlist=["now"]).now().isoformat(),
                },
            ]
        },
        format="json",
    )
    assert response.status_code == 202, response.content
    again = _get(alice)
    assert again["source"] == "cache"
    assert hidden not in _ids(again)
    assert _ids(again) == [i for i in _ids(page) if i != hidden] + _ids(again)[len(_ids(page)) - 1 :]


def test_likes_comments_and_deletes_refresh_the_cached_post(world):
    alice, authors, posts, _ = world
    page = _get(alice)
    target = page["items"][0]
    assert alice.api.post(f"/api/v1/posts/{target['id']}/like/").status_code == 201
    assert alice.api.post(f"/api/v1/posts/{target['id']}/comments/", {"body": "hi"}, format="json").status_code == 201
    again = _get(alice)["items"][0]
    assert (again["like_count"], again["comment_count"]) == (target["like_count"] + 1, target["comment_count"] + 1)
    author = next(a for a in authors.values() if a.id == target["author"]["id"])
    assert author.api.delete(f"/api/v1/posts/{target['id']}/").status_code == 204
    assert target["id"] not in _ids(_get(alice, limit=50))


def test_a_deactivated_author_disappears_after_the_post_cache_ttl(world, settings):
    alice, authors, *_ = world
    settings.FEED_POST_TTL_SECONDS = 1
    flush_feed_keys()
    _get(alice)
    authors["dave"].user.is_active = False
    authors["dave"].user.save()
    flush_feed_keys()  # as if the TTL passed
    assert "dave" not in {item["author"]["username"] for item in _get(alice, limit=50)["items"]}


def test_a_cached_page_costs_one_query(world, django_assert_num_queries):
    alice, *_ = world
    _get(alice, limit=10)  # ranks, caches snapshot and posts
    with django_assert_num_queries(1):  # the token lookup; the feed itself is all Redis
        assert _get(alice, limit=10)["source"] == "cache"


def test_a_ranked_page_with_cold_post_cache_costs_few_queries(world, django_assert_num_queries):
    alice, *_ = world
    # token, active ranking profiles, hydrating the page's posts
    with django_assert_num_queries(3):
        assert _get(alice, limit=10)["source"] == "ranked"


def test_open_breaker_serves_the_chronological_fallback(world):
    alice, authors, posts, _ = world
    breaker_for("clickhouse").store.set_open(__import__("time").time())
    page = _get(alice, limit=5)
    assert page["source"] == "fallback"
    assert page["profile"] is None
    assert all(item["score"] is None for item in page["items"])
    newest = Post.objects.filter(author__username__in=FOLLOWED).order_by("-created_at", "-id")
    assert _ids(page) == list(newest.values_list("pk", flat=True)[:5])
    page2 = _get(alice, limit=5, cursor=page["next_cursor"])
    assert page2["source"] == "fallback"
    assert _ids(page2) == list(newest.values_list("pk", flat=True)[5:10])


def test_fallback_respects_mutes_and_deactivated_authors(world):
    alice, authors, *_ = world
    alice.api.post(f"/api/v1/users/{authors['bob'].id}/mute/")
    authors["carol"].user.is_active = False
    authors["carol"].user.save()
    breaker_for("clickhouse").store.set_open(__import__("time").time())
    page = _get(alice, limit=50)
    assert page["source"] == "fallback"
    assert {item["author"]["username"] for item in page["items"]} == set(FOLLOWED) - {"bob", "carol"}


def _hide(reader, post_id: int) -> None:
    import uuid

    from django.utils import timezone

    response = reader.api.post(
        "/api/v1/events/",
        {
            "events": [
                {
                    "event_id": str(uuid.uuid4()),
                    "post_id": post_id,
                    "event_type": "hide",
                    "ts": timezone.now().isoformat(),
                },
            ]
        },
        format="json",
    )
    assert response.status_code == 202, response.content


@pytest.mark.requires_kafka
def test_a_hidden_post_never_comes_back_in_the_backfill_or_the_fallback(world):
    alice, authors, posts, _ = world
    old_post = posts["bob"][5]  # 8 days old: only the backfill reaches it
    assert old_post.pk in _ids(_get(alice, limit=50))
    _hide(alice, old_post.pk)
    assert old_post.pk not in _ids(_get(alice, limit=50))
    breaker_for("clickhouse").store.set_open(__import__("time").time())
    assert old_post.pk not in _ids(_get(alice, limit=50))


def test_a_user_who_follows_nobody_gets_trending_posts_in_the_fallback(world):
    from ranking.trending import trending_key

    alice, authors, posts, _ = world
    newcomer = make_reader("newcomer")
    newcomer.api.post(f"/api/v1/users/{authors['carol'].id}/mute/")
    trending = [posts["erin"][0].pk, posts["carol"][0].pk, posts["bob"][0].pk]
    client = __import__("nova.redis", fromlist=["client"]).client()
    client.set(trending_key(), json.dumps(trending), ex=60)
    breaker_for("clickhouse").store.set_open(__import__("time").time())
    page = _get(newcomer)
    assert page["source"] == "fallback"
    assert _ids(page) == [posts["erin"][0].pk, posts["bob"][0].pk]  # carol is muted
    assert [item["rank"] for item in page["items"]] == [1, 2]
