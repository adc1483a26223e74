"""The cast of every social API test (one named cast per area): alice and bob, who will
follow and like each other's posts, and charlie, who has no relation to anyone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feed.models import Mute, Post, User
from nova import redis as nova_redis
from nova.breaker import breaker_for
from tests.support.feed_world import Mirror, flush_feed_keys, make_post
from tests.support.private_services import PrivateServer


@dataclass
class Person:
    user: User
    api: APIClient

    @property
    def id(self) -> int:
        return self.user.pk


def _person(username: str) -> Person:
    user = User.objects.create_user(username=username, password=f"{username}-password", display_name=username.title())
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return Person(user, api)


@pytest.fixture
def alice(db) -> Person:
    return _person("alice")


@pytest.fixture
def bob(db) -> Person:
    return _person("bob")


@pytest.fixture
def charlie(db) -> Person:
    return _person("charlie")


@pytest.fixture
def anonymous(db) -> APIClient:
    return APIClient()


@pytest.fixture
def alice_post(alice: Person) -> Post:
    return Post.objects.create(author=alice.user, body="hello from alice")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # PBKDF2's deliberate slowness would dominate these tests; hashing itself is Django's
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# ---------------------------------------------------------------- feed inspector
@dataclass
class InspectorWorld:
    """alice's world for the feed inspector tests (tests/feed/test_inspector*.py)."""

    alice: Person
    authors: dict[str, Person]
    posts: dict[str, list[Post]]
    mirror: Mirror
    staff: User
    hidden: Post  # alice hid it: dropped as hidden, carol fatigued
    seen: Post  # alice saw it: dropped as seen
    trending: Post  # erin's, out of network


@pytest.fixture
def inspector_world(world_db, settings, transactional_db) -> Iterator[InspectorWorld]:
    """alice follows bob, carol, dave and mallory (muted) and hid one of carol's
    posts, saw one of bob's; erin, whom nobody follows, is trending. Ranked from
    this test's private ClickHouse database; Redis feed keys are fresh.
    Transactional: the live server and the feed's on_commit hooks see the rows."""
    # generous: these tests are about the inspector, not ClickHouse's speed on a busy machine
    settings.CLICKHOUSE = replace(settings.CLICKHOUSE, database=world_db.connection.database, query_timeout=10.0)
    flush_feed_keys()
    breaker_for("clickhouse").store.set_closed()
    mirror = Mirror(world_db)
    hour = timedelta(hours=1)
    alice = _person("alice")
    authors = {name: _person(name) for name in ("bob", "carol", "dave", "mallory", "erin")}
    posts: dict[str, list[Post]] = {name: [] for name in authors}
    for n, name in enumerate(("bob", "carol", "dave", "mallory")):
        alice.user.following.create(followee=authors[name].user)
        for i in range(3):
            posts[name].append(make_post(authors[name].user, hour * (2 + 7 * i + n)))
    Mute.objects.create(user=alice.user, muted=authors["mallory"].user)
    trending = make_post(authors["erin"].user, 3 * hour)
    posts["erin"].append(trending)
    for name in ("bob", "carol", "dave"):
        mirror.engage(authors[name].user, trending, "like", 2)
    mirror.engage(alice.user, posts["dave"][1], "like", 2)
    mirror.engage(alice.user, posts["carol"][0], "hide")
    mirror.engage(alice.user, posts["bob"][2], "impression")
    mirror.sync()
    staff = User.objects.create_superuser("root", password="root-password")
    yield InspectorWorld(
        alice, authors, posts, mirror, staff, hidden=posts["carol"][0], seen=posts["bob"][2], trending=trending
    )
    flush_feed_keys()
    breaker_for("clickhouse").store.set_closed()


# ---------------------------------------------------------------- a private Redis to stop or pause
@pytest.fixture
def private_redis(tmp_path, settings) -> Iterator[PrivateServer]:
    """The request path's Redis is a private server (tests/support/private_services.py)."""
    server = PrivateServer("redis", tmp_path / "var")
    server.up()
    settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
    settings.REDIS_RETRY_AFTER_SECONDS = 0.2
    nova_redis.reset()
    try:
        yield server
    finally:
        server.down()
        settings.REDIS_URL = django_settings.REDIS_URL
        nova_redis.reset()
