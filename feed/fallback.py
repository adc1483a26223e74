"""The chronological feed from Postgres: the fallback when ClickHouse cannot
rank, and the backfill that continues a ranked feed past its snapshot.

Posts of the authors the user follows and the user's own, newest first, by
(created_at, id) keyset; deleted posts, muted and deactivated authors left out.
Postgres is the source of truth, so this honours a follow or mute made a
moment ago. One query (posts.created_at is indexed, and the follows and mutes
are subqueries).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from django.db.models import Q, QuerySet

from feed.models import Follow, Mute, Post
from feed.services import visible_posts


def chronological_posts(
    user_id: int, limit: int, before: tuple[int, int] | None = None, exclude: Collection[int] = ()
) -> list[Post]:
    """Up to `limit` posts older than `before` = (created_at µs, id), minus `exclude`."""
    followees = Follow.objects.filter(follower_id=user_id).values("followee_id")
    muted = Mute.objects.filter(user_id=user_id).values("muted_id")
    posts: QuerySet[Post] = (
        visible_posts()
        .filter(Q(author_id__in=followees) | Q(author_id=user_id), author__is_active=True)
        .exclude(author_id__in=muted)
    )
    if before is not None:
        created_at = from_epoch_us(before[0])
        posts = posts.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=before[1]))
    if exclude:
        posts = posts.exclude(id__in=list(exclude))
    return list(posts.order_by("-created_at", "-id")[:limit])


def from_epoch_us(value: int) -> datetime:
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)
