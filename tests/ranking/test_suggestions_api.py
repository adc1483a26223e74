"""GET /api/v1/suggestions/: auth, limits, the rules, and the precomputed list
checked against what the user did a moment ago (real Postgres and Redis)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feed.models import Follow, Mute, Post, User
from nova.periodic import task_redis
from ranking.suggestions import (
    active_user_ids,
    cached_suggestions,
    refresh_suggestions,
    suggested_authors,
    suggestions_key,
)
from tests.support.redis_down import redis_down  # noqa: F401

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_redis, pytest.mark.django_db]
URL = "/api/v1/suggestions/"


def client_for(user: User) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return api


@pytest.fixture
def graph():
    """me follows f1, f2; they follow fof_a (both), fof_b, muted; `star` is followed by three
    others; `gone` is followed by f1 but inactive; `loner` follows nobody."""
    names = ("me", "f1", "f2", "fof_a", "fof_b", "muted", "gone", "star", "fan1", "fan2", "fan3", "loner")
    u = {name: User.objects.create_user(name, display_name=name.upper()) for name in names}

    def follow(who: str, *whom: str) -> None:
        for other in whom:
            Follow.objects.create(follower=u[who], followee=u[other])

    follow("me", "f1", "f2")
    follow("f1", "fof_a", "fof_b", "muted", "gone", "me")
    follow("f2", "fof_a")
    for fan in ("fan1", "fan2", "fan3"):
        follow(fan, "star")
    Mute.objects.create(user=u["me"], muted=u["muted"])
    User.objects.filter(pk=u["gone"].pk).update(is_active=False)
    store = task_redis()
    store.delete(*(suggestions_key(user.pk) for user in u.values()))
    yield u
    store.delete(*(suggestions_key(user.pk) for user in u.values()))


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_authentication_is_required(graph) -> None:
    response = APIClient().get(URL)
    assert response.status_code == 401
    assert "detail" in response.json()


@pytest.mark.parametrize("limit", ["0", "51", "-1", "x", "2.5", "1e3"])
def test_limit_outside_1_to_50_is_a_400(graph, limit) -> None:
    response = client_for(graph["me"]).get(URL, {"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.json()


def test_the_shape_and_the_rules_when_computed_live(graph) -> None:
    u = graph
    response = client_for(u["me"]).get(URL)
    assert ids(response) == [u["fof_a"].pk, u["fof_b"].pk, u["star"].pk]
    # the API's user shape (feed.serializers.UserSerializer)
    assert response.json()["items"][0] == {"id": u["fof_a"].pk, "username": "fof_a", "display_name": "FOF_A"}
    assert {u[n].pk for n in ("me", "f1", "f2", "muted", "gone")}.isdisjoint(ids(response))
    assert ids(client_for(u["me"]).get(URL, {"limit": 1})) == [u["fof_a"].pk]
    assert ids(client_for(u["loner"]).get(URL, {"limit": 2})) == [u["star"].pk, u["fof_a"].pk]


def test_a_cached_list_is_served_and_honours_a_follow_made_a_moment_ago(graph) -> None:
    u = graph
    Post.objects.create(author=u["me"], body="active")
    assert u["me"].pk in active_user_ids(timezone.now() - timedelta(hours=1), 100)
    refresh_suggestions(
        task_redis(), timezone.now(), active_window_seconds=3600, max_users=100, size=50, ttl_seconds=60
    )
    assert cached_suggestions(u["me"].pk) == [u["fof_a"].pk, u["fof_b"].pk, u["star"].pk]
    # a new, very popular author: the live answer would lead with them, the cached one does not know them
    newcomer = User.objects.create_user("newcomer")
    for fan in ("fan1", "fan2", "fan3", "f2", "loner"):
        Follow.objects.create(follower=u[fan], followee=newcomer)
    assert newcomer.pk in suggested_authors(u["me"].pk, 20)
    api = client_for(u["me"])
    assert ids(api.get(URL)) == [u["fof_a"].pk, u["fof_b"].pk, u["star"].pk], "served from the cache"

    Follow.objects.create(follower=u["me"], followee=u["fof_a"])
    Mute.objects.create(user=u["me"], muted=u["star"])
    assert ids(api.get(URL, {"limit": 1})) == [u["fof_b"].pk], "the cached list, less the new follow and mute"


def test_a_short_filtered_list_is_recomputed(graph) -> None:
    u = graph
    task_redis().set(suggestions_key(u["me"].pk), f"[{u['fof_a'].pk}, {u['f1'].pk}]", ex=60)
    # f1 is followed: the cached list would give one author where three exist
    assert ids(client_for(u["me"]).get(URL)) == [u["fof_a"].pk, u["fof_b"].pk, u["star"].pk]


def test_redis_down_or_a_corrupt_entry_still_answers(graph, request) -> None:
    u = graph
    task_redis().set(suggestions_key(u["me"].pk), b"{corrupt", ex=60)
    assert ids(client_for(u["me"]).get(URL)) == [u["fof_a"].pk, u["fof_b"].pk, u["star"].pk]
    request.getfixturevalue("redis_down")
    assert ids(client_for(u["me"]).get(URL)) == [u["fof_a"].pk, u["fof_b"].pk, u["star"].pk]
