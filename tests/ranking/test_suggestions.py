"""suggested_authors on a real Postgres graph."""

from __future__ import annotations

import pytest

from feed.models import Follow, Mute, User
from ranking.suggestions import suggested_authors

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db]


def users(*names: str) -> dict[str, User]:
    return {name: User.objects.create_user(name) for name in names}


def follow(who: User, *whom: User) -> None:
    for other in whom:
        Follow.objects.create(follower=who, followee=other)


def test_friends_of_friends_ranked_by_how_many_followees_follow_them() -> None:
    u = users("me", "f1", "f2", "popular_fof", "fof", "muted_fof", "gone_fof", "star")
    follow(u["me"], u["f1"], u["f2"])
    follow(u["f1"], u["popular_fof"], u["fof"], u["muted_fof"], u["gone_fof"], u["me"])
    follow(u["f2"], u["popular_fof"], u["f1"])
    Mute.objects.create(user=u["me"], muted=u["muted_fof"])
    User.objects.filter(pk=u["gone_fof"].pk).update(is_active=False)
    for fan in ("fof", "popular_fof", "muted_fof"):
        follow(u[fan], u["star"])
    got = suggested_authors(u["me"].pk, limit=3)
    # friends of friends first (2 followees follow popular_fof, 1 fof), then the global top fills up
    assert got == [u["popular_fof"].pk, u["fof"].pk, u["star"].pk]


def test_a_user_who_follows_nobody_gets_the_globally_popular() -> None:
    u = users("new", "a", "b", "c")
    follow(u["a"], u["c"], u["b"])
    follow(u["b"], u["c"])
    assert suggested_authors(u["new"].pk, limit=5) == [u["c"].pk, u["b"].pk]
