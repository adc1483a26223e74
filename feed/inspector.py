"""The feed inspector (admin → Users → Feed inspector): one user's feed as the
API serves it, with each ranked item's score breakdown and the candidates the
ranking dropped, and why.

The served page comes from feed.read.read_feed itself, so the inspector shows
what the user gets (cache, ranked or fallback), not a re-computation; it has the
same effects as the user's own read (on a miss it ranks and caches; the user
counts as active for the cache warming). The
breakdown is the snapshot's (the numbers the served ranking used). Dropped
candidates are not kept in the snapshot, so they come from a live ranking
through the ClickHouse circuit breaker, as of the snapshot's build time: the same
scores as the served ranking, on today's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils import timezone

from feed import cache
from feed.cache import SnapshotEntry
from feed.models import User
from feed.read import FALLBACK, read_feed
from nova.breaker import CLICKHOUSE_FAILURES, BreakerOpen, guarded_clickhouse
from ranking.profiles import profile_for_user
from ranking.service import rank_feed

# where a served item comes from (docs/feed.md, "The read path")
FRESH = "fresh"  # a followee's post newer than the snapshot, on top of the first page
RANKED = "ranked"  # a snapshot entry: has a score breakdown
BACKFILL = "backfill"  # past the snapshot: followed authors' posts in time order
CHRONOLOGICAL = "fallback"  # ClickHouse could not rank: the chronological fallback


@dataclass(frozen=True)
class InspectedItem:
    rank: int
    post_id: int
    author_id: int
    author_username: str
    part: str
    score: float | None
    breakdown: SnapshotEntry | None  # None unless part == RANKED


@dataclass(frozen=True)
class InspectedDrop:
    post_id: int
    author_id: int
    author_username: str
    score: float
    out_of_network: bool
    reason: str


@dataclass(frozen=True)
class FeedInspection:
    user_id: int
    username: str
    source: str  # feed.read: cache, ranked, fallback
    profile: str | None
    fallback_reason: str | None
    cache_age_seconds: float | None  # None: no snapshot cached (fallback, or Redis down)
    snapshot_id: str | None
    snapshot_built_at: datetime | None
    snapshot_length: int
    cold_start: bool | None
    items: list[InspectedItem]
    # the live ranking: dropped candidates, or why it could not run
    dropped: list[InspectedDrop] | None
    ranked_live_as_of: datetime | None
    live_profile: str | None
    live_matches_snapshot: bool | None  # same feed as the snapshot? no: data changed since it was built
    live_error: str | None


def find_user(text: str) -> User | None:
    """A user by id (all digits) or else by username."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit() and int(text) < 2**63:
        user = User.objects.filter(pk=int(text)).first()
        if user is not None:
            return user
    return User.objects.filter(username=text).first()


def inspect_feed(user: User, limit: int) -> FeedInspection:
    page = read_feed(user.pk, limit)
    snapshot = page.snapshot
    # after the read: on a miss, the read itself cached the snapshot it served
    age = cache.snapshot_age_seconds(user.pk)
    entries = {entry.post_id: entry for entry in snapshot.entries} if snapshot else {}
    fresh = {post.post_id for post in cache.first_page_state(user.pk).fresh} if snapshot else set()
    items: list[InspectedItem] = []
    seen_ranked = False
    for item in page.items:
        entry = entries.get(item["id"]) if item["score"] is not None else None
        if page.source == FALLBACK:
            part = CHRONOLOGICAL
        elif entry is not None:
            part, seen_ranked = RANKED, True
        else:
            # fresh posts go above the snapshot's entries, the backfill below them (feed.read._ranked_page)
            part = FRESH if item["id"] in fresh and not seen_ranked else BACKFILL
        items.append(
            InspectedItem(
                rank=item["rank"],
                post_id=item["id"],
                author_id=item["author"]["id"],
                author_username=item["author"]["username"],
                part=part,
                score=item["score"],
                breakdown=entry,
            )
        )
    built_at = datetime.fromtimestamp(snapshot.built_at, tz=UTC) if snapshot else None
    dropped, live_as_of, live_profile, matches, live_error = _live_ranking(user, built_at, snapshot)
    return FeedInspection(
        user_id=user.pk,
        username=user.get_username(),
        source=page.source,
        profile=page.profile,
        fallback_reason=page.fallback_reason,
        cache_age_seconds=age,
        snapshot_id=snapshot.id if snapshot else None,
        snapshot_built_at=built_at,
        snapshot_length=len(snapshot.entries) if snapshot else 0,
        cold_start=snapshot.cold_start if snapshot else None,
        items=items,
        dropped=dropped,
        ranked_live_as_of=live_as_of,
        live_profile=live_profile,
        live_matches_snapshot=matches,
        live_error=live_error,
    )


def _live_ranking(
    user: User, built_at: datetime | None, snapshot: cache.Snapshot | None
) -> tuple[list[InspectedDrop] | None, datetime | None, str | None, bool | None, str | None]:
    # as of the snapshot's build time: scores decay with time, so only then do the
    # live ranking's numbers line up with the served ones
    as_of = built_at or timezone.now()
    try:
        ranked = rank_feed(user.pk, as_of, profile_for_user(user.pk), guarded_clickhouse())
    except BreakerOpen:
        return (
            None,
            None,
            None,
            None,
            ("ClickHouse is unavailable (circuit breaker open): the dropped candidates cannot be listed now."),
        )
    except CLICKHOUSE_FAILURES as exc:
        return (
            None,
            None,
            None,
            None,
            (f"ClickHouse is unavailable ({type(exc).__name__}): the dropped candidates cannot be listed now."),
        )
    authors = dict(
        User.objects.filter(pk__in={d.candidate.author_id for d in ranked.dropped}).values_list("pk", "username")
    )
    dropped = [
        InspectedDrop(
            post_id=d.post_id,
            author_id=d.candidate.author_id,
            author_username=authors.get(d.candidate.author_id, "?"),
            score=d.candidate.score,
            out_of_network=d.candidate.out_of_network,
            reason=d.reason,
        )
        for d in ranked.dropped
    ]
    matches = None
    if snapshot is not None:
        matches = [item.post_id for item in ranked.items] == [entry.post_id for entry in snapshot.entries]
    return dropped, as_of, ranked.profile.name, matches, None
