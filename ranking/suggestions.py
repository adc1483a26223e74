"""Authors to suggest to a user (cold start, GET /api/v1/suggestions/ in the feed API).

Friends of friends first: the authors most followed by the people the user
follows; then, to fill up, the most followed authors overall. Never the user,
an author they already follow, a muted author, or a deactivated account.
Read from Postgres, the source of truth for the graph: the answer must honour a
follow or mute made a moment ago, which the CDC replicas may not have yet.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import redis
from django.db.models import Count

from feed import cache as feed_cache
from feed.models import Comment, Follow, Like, Mute, Post, User
from nova import redis as nova_redis
from nova.periodic import loads_ids

log = logging.getLogger(__name__)


def suggested_authors(user_id: int, limit: int = 20) -> list[int]:
    followed = set(Follow.objects.filter(follower_id=user_id).values_list("followee_id", flat=True))
    excluded = followed | set(Mute.objects.filter(user_id=user_id).values_list("muted_id", flat=True)) | {user_id}
    inactive = User.objects.filter(is_active=False).values("pk")

    def top(follows) -> list[int]:
        rows = (
            follows.exclude(followee_id__in=excluded)
            .exclude(followee_id__in=inactive)
            .values("followee_id")
            .annotate(n=Count("id"))
            .order_by("-n", "followee_id")[:limit]
        )
        return [row["followee_id"] for row in rows]

    suggestions = top(Follow.objects.filter(follower_id__in=followed)) if followed else []
    if len(suggestions) < limit:
        for author in top(Follow.objects.all()):
            if author not in suggestions:
                suggestions.append(author)
            if len(suggestions) == limit:
                break
    return suggestions


# ---------------------------------------------------------------- precomputed (refresh_suggested_users)
# The periodic task stores each recently active user's suggestions (SUGGESTIONS_MAX_LIMIT
# of them) in Redis; GET /api/v1/suggestions/ reads them and drops, with one
# Postgres query, anyone the user followed or muted since, or who left.


_STORE_CHUNK = 100  # users per Redis round trip


def suggestions_key(user_id: int) -> str:
    return nova_redis.key("ranking", "suggestions", user_id)


def active_user_ids(since: datetime, limit: int, readers: Iterable[int] = ()) -> list[int]:
    """Active accounts among `readers` (feed readers, from the feed's activity set)
    and those who logged in (session login; token clients never update last_login)
    or wrote a post, like, comment, follow or mute since `since`; at most `limit`,
    lowest ids first."""
    sources = [
        Post.objects.filter(created_at__gte=since).values_list("author_id"),
        Like.objects.filter(created_at__gte=since).values_list("user_id"),
        Comment.objects.filter(created_at__gte=since).values_list("user_id"),
        Follow.objects.filter(created_at__gte=since).values_list("follower_id"),
        Mute.objects.filter(created_at__gte=since).values_list("user_id"),
    ]
    recent = User.objects.filter(last_login__gte=since).values_list("pk").union(*sources)  # UNION: distinct ids
    recent_ids = {user_id for (user_id,) in recent} | set(readers)
    return list(
        User.objects.filter(pk__in=recent_ids, is_active=True).order_by("pk").values_list("pk", flat=True)[:limit]
    )


def refresh_suggestions(
    client: redis.Redis, now: datetime, *, active_window_seconds: int, max_users: int, size: int, ttl_seconds: int
) -> int:
    """Store `size` suggestions for each active user: a feed reader, a login or a
    write within the window (idempotent: each list is replaced); returns how many
    users got one. Written in chunks, so a run cut
    short by its time limit keeps what it computed."""
    since = now - timedelta(seconds=active_window_seconds)
    # forget_before_s=0: trimming the activity set is the feed warmer's business
    readers = feed_cache.active_users(since.timestamp(), forget_before_s=0)
    user_ids = active_user_ids(since, max_users, readers)
    for start in range(0, len(user_ids), _STORE_CHUNK):
        pipe = client.pipeline(transaction=False)
        for user_id in user_ids[start : start + _STORE_CHUNK]:
            pipe.set(suggestions_key(user_id), json.dumps(suggested_authors(user_id, size)), ex=ttl_seconds)
        pipe.execute()
    return len(user_ids)


def cached_suggestions(user_id: int) -> list[int] | None:
    """The stored list, or None on a miss, a corrupt value or Redis being down."""
    client = nova_redis.client()
    if client is None:  # Redis failed a moment ago (nova/redis.py)
        return None
    try:
        raw = client.get(suggestions_key(user_id))
    except nova_redis.REDIS_ERRORS as exc:
        nova_redis.mark_down()
        log.warning("suggestions cache unavailable: %s", exc)
        return None
    return loads_ids(raw)


def visible_authors(user_id: int, author_ids: list[int]) -> list[User]:
    """`author_ids` in their order, less the user, whoever the user follows or
    mutes now, and inactive accounts. One query on the users' primary key.

    No follower counts: suggested authors are the most followed, so counting
    their followers reads tens of thousands of follows rows (28 ms on the demo
    graph, where this query takes about 1 ms)."""
    rows = (
        User.objects.filter(pk__in=author_ids, is_active=True)
        .exclude(pk=user_id)
        .exclude(pk__in=Follow.objects.filter(follower_id=user_id).values("followee_id"))
        .exclude(pk__in=Mute.objects.filter(user_id=user_id).values("muted_id"))
    )
    by_id = {user.pk: user for user in rows}
    return [by_id[author_id] for author_id in author_ids if author_id in by_id]


def suggestions_for(user_id: int, limit: int) -> list[User]:
    """What GET /api/v1/suggestions/ serves: the precomputed list checked against
    the user's current follows and mutes; computed live on a miss, with Redis
    down, or when what the user did since leaves the list short."""
    cached = cached_suggestions(user_id)
    if cached is not None:
        authors = visible_authors(user_id, cached)
        if len(authors) >= limit or len(authors) == len(cached):
            return authors[:limit]
    return visible_authors(user_id, suggested_authors(user_id, limit))
