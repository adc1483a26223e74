"""The ranking on data that took the production path: social writes through the
real write API, Postgres logical decoding, the relay, Kafka, the CDC consumer,
ClickHouse replicas (processes as in tests/pipeline/cdc). Likes and comments made
through the API must count as engagement; a mute and an unfollow must act."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feed.models import User
from ranking.params import RankingParams
from ranking.service import rank_feed
from tests.pipeline.cdc.conftest import CdcNamespace, wait_until

pytestmark = [pytest.mark.requires_postgres, pytest.mark.requires_kafka, pytest.mark.requires_clickhouse]


def api_for(user: User) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return api


@pytest.mark.django_db(transaction=True)
def test_api_writes_reach_the_ranking(cdc_ns: CdcNamespace) -> None:
    cdc_ns.start_relay()
    cdc_ns.start_consumer()
    reader, alice, bob, carol = (
        User.objects.create_user(n, password="pw-12345!") for n in ("reader", "alice", "bob", "carol")
    )
    api = {u.username: api_for(u) for u in (reader, alice, bob, carol)}
    for author in (alice, bob, carol):
        assert api["reader"].post(f"/api/v1/users/{author.pk}/follow/").status_code == 201
    plain = api["bob"].post("/api/v1/posts/", {"body": "bob, no reactions"}, format="json").json()["id"]
    liked = api["alice"].post("/api/v1/posts/", {"body": "alice, liked"}, format="json").json()["id"]
    muted = api["carol"].post("/api/v1/posts/", {"body": "carol, muted"}, format="json").json()["id"]
    for fan in ("bob", "carol", "reader"):
        assert api[fan].post(f"/api/v1/posts/{liked}/like/").status_code == 201
    assert api["carol"].post(f"/api/v1/posts/{liked}/comments/", {"body": "nice"}, format="json").status_code == 201
    assert api["reader"].post(f"/api/v1/users/{carol.pk}/mute/").status_code == 201

    def ranked():
        return rank_feed(reader.pk, timezone.now() + timedelta(seconds=1), RankingParams(), cdc_ns.ch)

    def arrived():
        feed = ranked()
        liked_item = next((i for i in feed.items if i.post_id == liked), None)
        return liked_item is not None and liked_item.candidate.features.likes == 3 and feed.find(muted) is not None

    wait_until(arrived, 30, message=f"writes did not reach ClickHouse\n{cdc_ns.logs()}")
    feed = ranked()
    first = feed.items[0]
    assert first.post_id == liked, [i.post_id for i in feed.items]
    assert (first.candidate.features.likes, first.candidate.features.comments) == (3, 1)
    # the reader's own like and comment-less interaction give alice affinity
    assert first.candidate.components.affinity > 0
    assert [i.post_id for i in feed.items] == [liked, plain]
    assert feed.find(muted).reason == "muted"

    assert api["reader"].delete(f"/api/v1/users/{bob.pk}/follow/").status_code == 204
    wait_until(lambda: ranked().find(plain) is None, 30, message="the unfollow did not reach the ranking")
