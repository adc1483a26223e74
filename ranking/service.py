"""`rank_feed`: candidates and scores from ClickHouse, then the pure post-processing.

1. fetch every candidate with its features and components (one query,
   infra/clickhouse/queries/feed_candidates.sql), best first;
2. drop what the user must not see again (hidden, muted author, seen), with the reason;
3. below `cold_start_min_candidates` in-network candidates, let trending posts
   fill the feed without the out-of-network rules (a new user's feed would
   otherwise hold two posts);
4. arrange: one appearance per post, author diversity, out-of-network runs,
   cut to the feed length (ranking/diversity.py);
5. count what happened (monitoring.metrics, the brief's ranking_* names).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from monitoring import metrics
from ranking import diversity
from ranking.candidates import QueryRunner, ScoredCandidate, fetch_candidates
from ranking.params import RankingParams

HIDDEN = "hidden"
MUTED = "muted"
SEEN = "seen"


@dataclass(frozen=True)
class RankedItem:
    rank: int  # 1-based
    candidate: ScoredCandidate

    @property
    def post_id(self) -> int:
        return self.candidate.post_id

    @property
    def author_id(self) -> int:
        return self.candidate.author_id

    @property
    def score(self) -> float:
        return self.candidate.score


@dataclass(frozen=True)
class DroppedCandidate:
    candidate: ScoredCandidate
    reason: str

    @property
    def post_id(self) -> int:
        return self.candidate.post_id


@dataclass(frozen=True)
class RankedFeed:
    user_id: int
    profile: RankingParams
    now: datetime
    items: list[RankedItem]
    dropped: list[DroppedCandidate]
    cold_start: bool
    query_seconds: float
    total_seconds: float

    def find(self, post_id: int) -> RankedItem | DroppedCandidate | None:
        entries: list[RankedItem | DroppedCandidate] = [*self.items, *self.dropped]
        for entry in entries:
            if entry.post_id == post_id:
                return entry
        return None


def exclusion_reason(candidate: ScoredCandidate) -> str | None:
    if candidate.hidden:
        return HIDDEN
    if candidate.muted:
        return MUTED
    if candidate.seen:
        return SEEN
    return None


def arrange_candidates(
    candidates: list[ScoredCandidate], params: RankingParams
) -> tuple[list[ScoredCandidate], list[DroppedCandidate], bool, int]:
    """Steps 2-4 (pure): (feed, dropped, cold_start, duplicates) from candidates best first."""
    dropped: list[DroppedCandidate] = []
    eligible: list[ScoredCandidate] = []
    for candidate in candidates:
        reason = exclusion_reason(candidate)
        if reason:
            dropped.append(DroppedCandidate(candidate, reason))
        else:
            eligible.append(candidate)
    in_network = len({c.post_id for c in eligible if not c.out_of_network})
    cold_start = in_network < params.cold_start_min_candidates
    if cold_start:
        # without followees' posts the out-of-network discount only reorders
        # trending posts among themselves, and the run limit would end the feed
        # after two posts: rank trending on its undiscounted score instead
        eligible.sort(key=lambda c: (-undiscounted_score(c), -c.post_id))
    rules = diversity.Rules(
        feed_length=params.feed_length,
        author_cap=params.author_cap,
        author_cap_window=params.author_cap_window,
        max_out_of_network_in_a_row=None if cold_start else params.max_out_of_network_in_a_row,
    )
    arrangement = diversity.arrange(eligible, rules)
    dropped.extend(DroppedCandidate(candidate, reason) for candidate, reason in arrangement.dropped)
    return arrangement.feed, dropped, cold_start, arrangement.duplicates


def undiscounted_score(candidate: ScoredCandidate) -> float:
    factor = candidate.components.network_factor
    return candidate.score / factor if factor else candidate.score


def rank_feed(user_id: int, now: datetime, profile: RankingParams, runner: QueryRunner) -> RankedFeed:
    started = time.perf_counter()
    candidates = fetch_candidates(runner, user_id, now, profile)
    query_seconds = time.perf_counter() - started
    feed, dropped, cold_start, duplicates = arrange_candidates(candidates, profile)
    items = [RankedItem(rank, candidate) for rank, candidate in enumerate(feed, start=1)]
    _count(candidates, items, dropped, duplicates)
    total_seconds = time.perf_counter() - started
    metrics.RANKING_DURATION.labels(part="query").observe(query_seconds)
    metrics.RANKING_DURATION.labels(part="total").observe(total_seconds)
    return RankedFeed(
        user_id=user_id,
        profile=profile,
        now=now,
        items=items,
        dropped=dropped,
        cold_start=cold_start,
        query_seconds=query_seconds,
        total_seconds=total_seconds,
    )


def _count(
    candidates: list[ScoredCandidate], items: list[RankedItem], dropped: list[DroppedCandidate], duplicates: int
) -> None:
    out_of_network = sum(1 for c in candidates if c.out_of_network)
    metrics.RANKING_POSTS_FETCHED.labels(source="in_network").inc(len(candidates) - out_of_network)
    metrics.RANKING_POSTS_FETCHED.labels(source="out_of_network").inc(out_of_network)
    metrics.RANKING_POSTS_DEDUPLICATED.inc(duplicates)
    metrics.RANKING_POSTS_SATURATION_REMOVED.inc(sum(1 for d in dropped if d.reason == diversity.SATURATED))
    for item in items:
        components = item.candidate.components
        metrics.RANKING_FRESHNESS_SCORE.observe(components.freshness)
        metrics.RANKING_ENGAGEMENT_SCORE.observe(components.engagement)
        metrics.RANKING_AFFINITY_SCORE.observe(components.affinity)
        metrics.RANKING_FINAL_SCORE.observe(components.score)
