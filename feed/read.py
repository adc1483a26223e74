"""The feed read path behind GET /api/v1/feed/.

First page (no cursor):
1. read the user's cached snapshot, fresh posts and hidden posts (one Redis round trip);
2. on a miss, rank once (single flight; ranking/service.rank_feed through the
   ClickHouse circuit breaker) and cache the snapshot; if ranking cannot run
   (breaker open, error, timeout), serve the chronological fallback from Postgres;
3. put followees' posts newer than the snapshot on top (they are not ranked
   yet; see docs/feed.md for why this rather than invalidating followers);
4. walk the snapshot, skipping hidden, deleted and deactivated authors' posts,
   hydrate from the post cache (Postgres for the misses), and hand back a cursor.
Next pages continue the same snapshot by index; past its end they continue with
a chronological backfill of followed authors' posts not served yet, so the feed
never dead-ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework.fields import DateTimeField

from feed import cache, cursors
from feed.cache import Snapshot, SnapshotEntry
from feed.cursors import Cursor, CursorError
from feed.fallback import chronological_posts
from feed.models import Mute, Post
from feed.services import visible_posts
from monitoring import metrics
from nova import redis as nova_redis
from nova.breaker import CLICKHOUSE_FAILURES, BreakerOpen, guarded_clickhouse
from ranking.profiles import profile_for_user
from ranking.scoring import epoch_us
from ranking.service import RankedFeed, rank_feed
from ranking.trending import trending_post_ids

log = logging.getLogger(__name__)

CACHE = "cache"
RANKED = "ranked"
FALLBACK = "fallback"
_datetime_field = DateTimeField()


@dataclass(frozen=True)
class FeedPage:
    source: str
    profile: str | None
    items: list[dict[str, Any]]
    next_cursor: str | None
    snapshot: Snapshot | None = None
    fallback_reason: str | None = None


def read_feed(user_id: int, limit: int, cursor_token: str | None = None, now: datetime | None = None) -> FeedPage:
    """One page of the user's feed. Raises CursorError for a bad cursor (a 400)."""
    now = now or timezone.now()
    now_s = int(now.timestamp())
    if cursor_token:
        cursor = cursors.decode(cursor_token, _cursor_key(), user_id, now_s, settings.FEED_CURSOR_TTL_SECONDS)
        if cursor.kind == cursors.RANKED:
            snapshot, hidden, muted = cache.snapshot_by_id(user_id, cursor.snapshot_id)
            if snapshot is None:
                raise CursorError(
                    "Expired cursor: the ranked feed it belongs to is gone; start again from the first page."
                )
            return _ranked_page(
                snapshot,
                CACHE,
                hidden,
                muted,
                [],
                cursor.offset,
                cursor.next_rank,
                limit,
                now_s,
                served_before=cursor.exclude,
            )
        if cursor.kind == cursors.BACKFILL:
            page = _chronological_page(user_id, limit, cursor, now_s)
            return replace(page, source=CACHE)
        return _chronological_page(user_id, limit, cursor, now_s)

    state = cache.first_page_state(user_id, now.timestamp())
    snapshot, source = state.snapshot, CACHE
    if snapshot is not None:
        metrics.FEED_CACHE_HITS.inc()
    else:
        metrics.FEED_CACHE_MISSES.inc()
        try:
            snapshot, built = cache.get_or_build(user_id, lambda: build_snapshot(user_id, now))
        except BreakerOpen:
            return _fallback_first_page(user_id, limit, now_s, "breaker_open")
        except CLICKHOUSE_FAILURES as exc:
            log.warning("ranking failed for user %s, serving the fallback: %s", user_id, exc)
            return _fallback_first_page(user_id, limit, now_s, "ranking_failed")
        source = RANKED if built else CACHE
    fresh = _fresh_posts(snapshot, state.fresh, state.hidden, state.muted)
    page = _ranked_page(
        snapshot,
        source,
        state.hidden,
        state.muted,
        fresh,
        0,
        1,
        limit,
        now_s,
        stored=state.redis_ok and nova_redis.client() is not None,
    )
    metrics.FEED_SOURCE.labels(source=source, reason="").inc()
    return page


def build_snapshot(user_id: int, now: datetime) -> Snapshot:
    metrics.FEED_RANKINGS.inc()
    ranked = rank_feed(user_id, now, profile_for_user(user_id), guarded_clickhouse())
    return snapshot_of(ranked)


def snapshot_of(ranked: RankedFeed) -> Snapshot:
    entries = tuple(
        SnapshotEntry(
            post_id=item.post_id,
            author_id=item.author_id,
            created_us=item.candidate.features.created_at_us,
            score=item.score,
            freshness=item.candidate.components.freshness,
            engagement=item.candidate.components.engagement,
            affinity=item.candidate.components.affinity,
            fatigue=item.candidate.components.fatigue,
            network_factor=item.candidate.components.network_factor,
            out_of_network=item.candidate.out_of_network,
        )
        for item in ranked.items
    )
    return Snapshot(
        id=cache.new_snapshot_id(),
        user_id=ranked.user_id,
        profile=ranked.profile.name,
        built_at=ranked.now.timestamp(),
        cold_start=ranked.cold_start,
        entries=entries,
    )


def _fresh_posts(
    snapshot: Snapshot, fresh: list[cache.FreshPost], hidden: frozenset[int], muted: frozenset[int]
) -> list[int]:
    """Followees' posts to put above the snapshot, newest first: not in it, and
    created after it was built, less an overlap for the CDC lag (a post written
    a second before the ranking may not have reached ClickHouse yet)."""
    in_snapshot = {entry.post_id for entry in snapshot.entries}
    since_us = int((snapshot.built_at - settings.FEED_FRESH_OVERLAP_SECONDS) * 1_000_000)
    chosen: dict[int, int] = {}
    for post in fresh:
        if (
            post.created_us >= since_us
            and post.post_id not in in_snapshot
            and post.post_id not in hidden
            and post.author_id not in muted
        ):
            chosen[post.post_id] = post.created_us
    return sorted(chosen, key=lambda post_id: (chosen[post_id], post_id), reverse=True)


def _ranked_page(
    snapshot: Snapshot,
    source: str,
    hidden: frozenset[int],
    muted: frozenset[int],
    fresh: list[int],
    offset: int,
    first_rank: int,
    limit: int,
    now_s: int,
    served_before: tuple[int, ...] = (),
    stored: bool = True,
) -> FeedPage:
    items: list[dict[str, Any]] = []
    rank = first_rank
    posts = hydrate(fresh)
    for post_id in fresh:
        if post_id in posts and len(items) < limit:
            items.append(_item(posts[post_id], rank, None))
            rank += 1
    served_fresh = [*served_before, *(item["id"] for item in items)]
    entries = snapshot.entries
    index = offset
    while len(items) < limit and index < len(entries):
        # hydrate a window a little larger than the page: some may be gone
        scan_end = min(len(entries), index + (limit - len(items)) + 5)
        window = [e for e in entries[index:scan_end] if e.post_id not in hidden and e.author_id not in muted]
        posts = hydrate([e.post_id for e in window])
        for position in range(index, scan_end):
            entry = entries[position]
            index = position + 1
            if entry.post_id in hidden or entry.author_id in muted or entry.post_id not in posts:
                continue
            items.append(_item(posts[entry.post_id], rank, entry.score))
            rank += 1
            if len(items) == limit:
                break
    key = _cursor_key()
    if index < len(entries) and not stored:
        # Redis is down: no snapshot to come back to, so the next pages are the
        # backfill (the rest of the ranked posts come in time order, none twice)
        served = tuple([*served_fresh, *(e.post_id for e in entries[:index])])
        return FeedPage(
            source,
            snapshot.profile,
            items,
            cursors.encode(Cursor(cursors.BACKFILL, snapshot.user_id, exclude=served, next_rank=rank), key, now_s),
            snapshot,
        )
    if index < len(entries):
        next_cursor = cursors.encode(
            Cursor(
                cursors.RANKED,
                snapshot.user_id,
                snapshot_id=snapshot.id,
                offset=index,
                exclude=tuple(served_fresh),
                next_rank=rank,
            ),
            key,
            now_s,
        )
        return FeedPage(source, snapshot.profile, items, next_cursor, snapshot)
    # the snapshot is used up: the rest of this page, and the next pages, come
    # from the chronological backfill, minus what the snapshot (or fresh) served
    # (fresh posts that did not fit on this page are not excluded: the backfill serves them)
    served = tuple(sorted({e.post_id for e in entries} | set(served_fresh)))
    backfill = Cursor(cursors.BACKFILL, snapshot.user_id, exclude=served, next_rank=rank)
    if len(items) < limit:
        more = _chronological_page(snapshot.user_id, limit - len(items), backfill, now_s)
        return FeedPage(source, snapshot.profile, items + more.items, more.next_cursor, snapshot)
    return FeedPage(source, snapshot.profile, items, cursors.encode(backfill, key, now_s), snapshot)


def _fallback_first_page(user_id: int, limit: int, now_s: int, reason: str) -> FeedPage:
    metrics.FEED_SOURCE.labels(source=FALLBACK, reason=reason).inc()
    page = _chronological_page(user_id, limit, Cursor(cursors.CHRONOLOGICAL, user_id), now_s)
    if page.next_cursor is None and len(page.items) < limit:
        # a user who follows nobody (or few) would get an empty feed: fill it with
        # the trending posts the refresh_trending task keeps in Redis
        page = replace(page, items=page.items + _trending_items(user_id, page, limit))
    return replace(page, fallback_reason=reason)


def _trending_items(user_id: int, page: FeedPage, limit: int) -> list[dict[str, Any]]:
    served = {item["id"] for item in page.items} | cache.hidden_posts(user_id)
    candidates = [post_id for post_id in trending_post_ids() if post_id not in served]
    if not candidates:
        return []
    muted = set(Mute.objects.filter(user_id=user_id).values_list("muted_id", flat=True))
    posts = hydrate(candidates)
    rank = len(page.items) + 1
    items = []
    for post_id in candidates:
        body = posts.get(post_id)
        if body is None or body["author"]["id"] in muted:
            continue
        items.append(_item(body, rank, None))
        rank += 1
        if len(page.items) + len(items) == limit:
            break
    return items


def _chronological_page(user_id: int, limit: int, cursor: Cursor, now_s: int) -> FeedPage:
    """Backfill or fallback: posts older than the cursor's position, newest first."""
    before = (cursor.before_us, cursor.before_id) if cursor.before_id else None
    # one more than the page, to know whether there is a next page; hidden posts
    # never come back (ClickHouse knows every hide, Postgres does not: Redis does)
    posts = chronological_posts(user_id, limit + 1, before, {*cursor.exclude, *cache.hidden_posts(user_id)})
    has_more = len(posts) > limit
    posts = posts[:limit]
    bodies = [post_body(post) for post in posts]
    items = [_item(body, cursor.next_rank + i, None) for i, body in enumerate(bodies)]
    next_cursor = None
    if has_more and posts:
        last = bodies[-1]
        # only posts older than the new position can still come up
        exclude = _older_than(cursor.exclude, last["created_us"])
        next_cursor = cursors.encode(
            Cursor(
                cursor.kind,
                user_id,
                before_us=last["created_us"],
                before_id=last["id"],
                exclude=exclude,
                next_rank=cursor.next_rank + len(items),
            ),
            _cursor_key(),
            now_s,
        )
    source = FALLBACK if cursor.kind == cursors.CHRONOLOGICAL else CACHE
    return FeedPage(source, None, items, next_cursor)


def _older_than(post_ids: tuple[int, ...], created_us: int) -> tuple[int, ...]:
    if not post_ids:
        return ()
    created = dict(Post.objects.filter(id__in=post_ids).values_list("id", "created_at"))
    return tuple(post_id for post_id in post_ids if post_id in created and epoch_us(created[post_id]) <= created_us)


def hydrate(post_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{id: post as the API shows it} for the posts still visible: the post cache,
    then one Postgres query for the misses (which are cached for the next reader)."""
    found = cache.cached_posts(post_ids)
    missing = [post_id for post_id in post_ids if post_id not in found]
    if missing:
        loaded = {post.pk: post_body(post) for post in visible_posts().filter(pk__in=missing, author__is_active=True)}
        cache.cache_posts(loaded)
        found.update(loaded)
    return found


def post_body(post: Post) -> dict[str, Any]:
    return {
        "id": post.pk,
        "author": {"id": post.author.pk, "username": post.author.username, "display_name": post.author.display_name},
        "body": post.body,
        "media_url": post.media_url,
        "created_at": _datetime_field.to_representation(post.created_at),
        "created_us": epoch_us(post.created_at),
        "like_count": post.like_count,  # type: ignore[attr-defined]
        "comment_count": post.comment_count,  # type: ignore[attr-defined]
    }


def _item(body: dict[str, Any], rank: int, score: float | None) -> dict[str, Any]:
    item = {key: value for key, value in body.items() if key != "created_us"}
    item["rank"] = rank
    item["score"] = score
    return item


def _cursor_key() -> bytes:
    return settings.SECRET_KEY.encode()
