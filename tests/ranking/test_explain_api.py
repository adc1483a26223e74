"""GET /api/v1/feed/explain/: statuses, reasons and permissions, on a known world
in ClickHouse whose ids are the Postgres rows' ids."""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feed.models import Post, User
from nova.breaker import breaker_for
from ranking.world import WEvent, World, WPost, WRelation, WUser, write_world

pytestmark = [pytest.mark.requires_clickhouse, pytest.mark.requires_postgres, pytest.mark.django_db]
URL = "/api/v1/feed/explain/"


def client_for(user: User) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


@pytest.fixture
def world(world_db, settings):
    # a generous deadline: these tests are about explain, not ClickHouse's speed on a busy machine
    settings.CLICKHOUSE = dataclasses.replace(
        settings.CLICKHOUSE, database=world_db.connection.database, query_timeout=10.0
    )
    breaker_for("clickhouse").store.set_closed()
    now = timezone.now()
    reader, author, muted = (User.objects.create_user(name) for name in ("reader", "author", "muted"))
    posts = {
        name: Post.objects.create(author=who, body=name)
        for name, who in (
            ("fresh", author),
            ("hidden", author),
            ("seen", author),
            ("old", author),
            ("deleted", author),
            ("by_muted", muted),
        )
    }
    ages = {"fresh": 1, "hidden": 2, "seen": 3, "old": 100, "deleted": 1, "by_muted": 1}
    write_world(
        world_db,
        World(
            users=[WUser(u.pk) for u in (reader, author, muted)],
            posts=[
                WPost(p.pk, p.author_id, now - timedelta(hours=ages[name]), deleted=name == "deleted")
                for name, p in posts.items()
            ],
            follows=[
                WRelation(1, reader.pk, author.pk, now - timedelta(days=9)),
                WRelation(2, reader.pk, muted.pk, now - timedelta(days=9)),
            ],
            mutes=[WRelation(1, reader.pk, muted.pk, now - timedelta(days=1))],
            events=[
                WEvent(reader.pk, posts["hidden"].pk, author.pk, "hide", now - timedelta(minutes=30)),
                WEvent(reader.pk, posts["seen"].pk, author.pk, "impression", now - timedelta(minutes=30)),
            ],
        ),
    )
    staff = User.objects.create_user("operator", is_staff=True)
    return {"reader": reader, "posts": posts, "staff": client_for(staff), "plain": client_for(author)}


def explain(world, post: str, **params):
    query = {"user_id": world["reader"].pk, "post_id": world["posts"][post].pk, **params}
    return world["staff"].get(URL, query)


def test_a_ranked_post_shows_its_arithmetic(world) -> None:
    body = explain(world, "fresh").json()
    assert body["status"] == "ranked" and body["rank"] == 1 and body["reason"] is None
    assert body["profile"] == "default"
    assert body["weights"] == {"freshness": 0.4, "engagement": 0.35, "affinity": 0.25}
    assert set(body["components"]) == {"freshness", "engagement", "affinity", "fatigue", "network_factor"}
    assert body["components"]["freshness"] == pytest.approx(2 ** (-1 / 6), abs=1e-3)
    assert body["score"] == pytest.approx(body["sql_score"], abs=1e-6)
    assert body["source"] == "in_network"


@pytest.mark.parametrize(
    ("post", "status", "reason"),
    [
        ("hidden", "dropped", "hidden"),
        ("seen", "dropped", "seen"),
        ("by_muted", "dropped", "muted"),
        ("old", "not_a_candidate", "outside_window"),
        ("deleted", "not_a_candidate", "deleted"),
    ],
)
def test_why_a_post_is_not_served(world, post: str, status: str, reason: str) -> None:
    response = explain(world, post)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == (status, reason)


def test_only_staff_may_explain(world) -> None:
    query = {"user_id": world["reader"].pk, "post_id": world["posts"]["fresh"].pk}
    assert world["plain"].get(URL, query).status_code == 403
    assert APIClient().get(URL, query).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"user_id": None}, "user_id"),
        ({"post_id": "abc"}, "post_id"),
        ({"user_id": "-3"}, "user_id"),
        ({"post_id": str(2**63)}, "post_id"),
    ],
)
def test_bad_ids_are_400_naming_the_field(world, params, field) -> None:
    query = {"user_id": world["reader"].pk, "post_id": world["posts"]["fresh"].pk}
    query.update(params)
    response = world["staff"].get(URL, {k: v for k, v in query.items() if v is not None})
    assert response.status_code == 400
    assert field in response.json()


def test_unknown_user_or_post_is_404(world) -> None:
    assert explain(world, "fresh", user_id=987_654_321).status_code == 404
    assert explain(world, "fresh", post_id=987_654_321).status_code == 404


def test_clickhouse_unavailable_is_a_503_not_a_500(world):
    breaker_for("clickhouse").store.set_open(time.time())
    try:
        response = world["staff"].get(URL, {"user_id": world["reader"].pk, "post_id": world["posts"]["fresh"].pk})
        assert response.status_code == 503
        assert "ClickHouse is unavailable" in response.json()["detail"]
        assert response["Retry-After"]
    finally:
        breaker_for("clickhouse").store.set_closed()
