"""The test oracle: a feed computed in plain Python from an in-memory World,
with the semantics docs/ranking.md gives the SQL (candidates, engagement with
CDC likes/comments, decayed affinity, fatigue, flags), scored by the pure
ranking.scoring and arranged by the pure ranking.service.arrange_candidates.

It shares no code with infra/clickhouse/queries/, so when the SQL and this
disagree, one of them is wrong."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Set
from datetime import UTC, date, datetime, timedelta

from ranking.candidates import ScoredCandidate
from ranking.params import RankingParams
from ranking.scoring import Features, epoch_us, score_features
from ranking.service import DroppedCandidate, arrange_candidates
from ranking.world import World, WRelation

INTERACTIONS = {"click", "like", "comment", "share", "dwell"}


def _s(moment: datetime) -> int:
    return epoch_us(moment) // 1_000_000


def expected_feed(
    world: World,
    user_id: int,
    now: datetime,
    params: RankingParams,
    deleted_relations: Set[tuple[str, int]] = frozenset(),
) -> tuple[list[ScoredCandidate], list[DroppedCandidate]]:
    now_us = epoch_us(now)
    now_s = now_us // 1_000_000
    in_since_s = now_s - params.in_network_window_hours * 3600
    in_since_hour_s = in_since_s - in_since_s % 3600
    trending_since_us = now_us - params.trending_window_hours * 3_600_000_000
    today = now.date()
    affinity_since = today - timedelta(days=params.affinity_window_days)
    affinity_since_s = _s(datetime(affinity_since.year, affinity_since.month, affinity_since.day, tzinfo=UTC))
    fatigue_since_s = now_s - int(params.hide_fatigue_days * 86_400)
    seen_since_s = now_s - params.seen_window_days * 86_400

    def live(table: str, relations: list[WRelation]) -> list[WRelation]:
        return [r for r in relations if (table, r.id) not in deleted_relations]

    followees = {r.target_id for r in live("follows", world.follows) if r.user_id == user_id}
    muted = {r.target_id for r in live("mutes", world.mutes) if r.user_id == user_id}
    inactive = {u.id for u in world.users if not u.active}
    author_of = {p.id: p.author_id for p in world.posts}
    likes, comments = live("likes", world.likes), live("comments", world.comments)

    # engagement per post
    recent_ids = {p.id for p in world.posts if _s(p.created_at) >= in_since_s}
    ev: defaultdict[int, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in world.events:
        hour_s = _s(e.ts) - _s(e.ts) % 3600
        if e.post_id in recent_ids and hour_s >= in_since_hour_s:
            ev[e.post_id][e.event_type] += 1
    cdc_likes: defaultdict[int, int] = defaultdict(int)
    cdc_comments: defaultdict[int, int] = defaultdict(int)
    for r in likes:
        if _s(r.created_at) >= in_since_s:
            cdc_likes[r.target_id] += 1
    for r in comments:
        if _s(r.created_at) >= in_since_s:
            cdc_comments[r.target_id] += 1

    # the user's affinity per author: per day, likes/comments as the larger of the two sources
    day_counts: defaultdict[tuple[int, date], defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in world.events:
        if e.user_id == user_id and e.author_id != 0 and e.ts.date() >= affinity_since:
            counters = day_counts[(e.author_id, e.ts.date())]
            if e.event_type in INTERACTIONS:
                counters["interactions"] += 1
            counters[e.event_type] += 1
    for kind, relations in (("cdc_like", likes), ("cdc_comment", comments)):
        for r in relations:
            if r.user_id == user_id and _s(r.created_at) >= affinity_since_s and r.target_id in author_of:
                day_counts[(author_of[r.target_id], r.created_at.date())][kind] += 1
    affinity: defaultdict[int, float] = defaultdict(float)
    for (author, day), c in day_counts.items():
        interactions = (
            c["interactions"]
            - c["like"]
            - c["comment"]
            + max(c["like"], c["cdc_like"])
            + max(c["comment"], c["cdc_comment"])
        )
        affinity[author] += interactions * math.exp(-math.log(2) * (today - day).days / params.affinity_half_life_days)
    user_max = max(affinity.values(), default=0.0)
    last_hide: defaultdict[int, int] = defaultdict(int)
    for e in world.events:
        if e.user_id == user_id and e.event_type == "hide" and _s(e.ts) >= fatigue_since_s:
            last_hide[e.author_id] = max(last_hide[e.author_id], _s(e.ts))
    seen = {
        e.post_id
        for e in world.events
        if e.user_id == user_id and e.event_type == "impression" and _s(e.ts) >= seen_since_s
    }
    hidden = {e.post_id for e in world.events if e.user_id == user_id and e.event_type == "hide"}

    in_network_authors = followees | {user_id}
    in_network: list[Features] = []
    trending: list[Features] = []
    for p in world.posts:
        created_s = _s(p.created_at)
        if p.deleted or p.author_id in inactive or not in_since_s <= created_s <= now_s:
            continue
        oon = p.author_id not in in_network_authors
        if oon and epoch_us(p.created_at) < trending_since_us:
            continue
        counts = ev[p.id]
        feats = Features(
            post_id=p.id,
            author_id=p.author_id,
            created_at_us=epoch_us(p.created_at),
            out_of_network=oon,
            impressions=counts["impression"],
            clicks=counts["click"],
            likes=max(counts["like"], cdc_likes[p.id]),
            comments=max(counts["comment"], cdc_comments[p.id]),
            shares=counts["share"],
            affinity_raw=affinity.get(p.author_id, 0.0),
            user_max_affinity_raw=user_max,
            last_hide_s=last_hide.get(p.author_id, 0),
        )
        (trending if oon else in_network).append(feats)
    trending = [f for f in trending if f.clicks + f.likes + f.comments + f.shares > 0]
    trending.sort(key=lambda f: (-(f.clicks + 2 * f.likes + 3 * f.comments + 4 * f.shares), -f.post_id))
    candidates = [
        ScoredCandidate(
            f,
            score_features(f, now_us, params),
            seen=f.post_id in seen,
            hidden=f.post_id in hidden,
            muted=f.author_id in muted,
        )
        for f in in_network + trending[: params.trending_pool]
    ]
    candidates.sort(key=lambda c: (-c.score, -c.post_id))
    feed, dropped, _, _ = arrange_candidates(candidates, params)
    return feed, dropped
