"""A small social world written to Postgres through the ORM and mirrored into a
private ClickHouse database (ranking.world.write_world), so the feed API ranks
it for real without waiting for the CDC pipeline (whose path tests live in
tests/pipeline and tests/ranking/test_pipeline_path.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from feed.models import Comment, Follow, Like, Mute, Post, User
from nova import redis as nova_redis
from ranking.world import WEvent, World, WPost, WRelation, WUser, write_world


@dataclass
class Reader:
    user: User
    api: APIClient

    @property
    def id(self) -> int:
        return self.user.pk


def make_reader(username: str) -> Reader:
    user = User.objects.create_user(username=username, password="x", display_name=username.title())
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return Reader(user, api)


def make_post(author: User, age: timedelta, body: str = "") -> Post:
    post = Post.objects.create(author=author, body=body or f"post by {author.username}")
    Post.objects.filter(pk=post.pk).update(created_at=timezone.now() - age)
    post.refresh_from_db()
    return post


@dataclass
class Mirror:
    """Copies Postgres into the ClickHouse replicas; `events` are extra raw events."""

    clickhouse: object
    version: int = 0
    events: list[WEvent] = field(default_factory=list)

    def sync(self) -> None:
        self.version += 1
        world = World(
            users=[WUser(u.pk, u.is_active) for u in User.objects.all()],
            posts=[WPost(p.pk, p.author_id, p.created_at, p.deleted_at is not None) for p in Post.objects.all()],
            follows=[WRelation(f.pk, f.follower_id, f.followee_id, f.created_at) for f in Follow.objects.all()],
            likes=[WRelation(x.pk, x.user_id, x.post_id, x.created_at) for x in Like.objects.all()],
            comments=[WRelation(c.pk, c.user_id, c.post_id, c.created_at) for c in Comment.objects.all()],
            mutes=[WRelation(m.pk, m.user_id, m.muted_id, m.created_at) for m in Mute.objects.all()],
            events=self.events,
        )
        write_world(self.clickhouse, world, version=self.version)  # type: ignore[arg-type]
        self.events = []

    def engage(self, user: User, post: Post, event_type: str, count: int = 1, at: datetime | None = None) -> None:
        for _ in range(count):
            self.events.append(WEvent(user.pk, post.pk, post.author_id, event_type, at or timezone.now()))


def flush_feed_keys() -> None:
    """Remove this test namespace's feed and breaker keys (ids restart with each
    test database, so keys from an earlier run would be read as current)."""
    client = nova_redis.client()
    assert client is not None, "Redis is down"
    for pattern in (nova_redis.key("feed", "*"), nova_redis.key("breaker", "*")):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
