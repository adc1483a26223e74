"""The ranking formulas as pure functions: plain numbers and an explicit `now` in,
numbers out. No settings, ORM or I/O.

`infra/clickhouse/queries/feed_candidates.sql` computes the same values in
ClickHouse; this module is the oracle the agreement test checks it against, and
what explain uses to show the arithmetic. A change here is a change there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ranking.params import RankingParams

MICROS_PER_HOUR = 3_600_000_000
SECONDS_PER_DAY = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (float seconds would round): the
    unit of the replicas' *_us columns. `moment` must be timezone-aware."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def freshness_score(age_hours: float, half_life_hours: float) -> float:
    """exp(-ln 2 · age / half-life): 1 when new, ½ after one half-life. A post
    from the future (clock skew) counts as new, not as fresher than new."""
    return math.exp(-math.log(2) * max(age_hours, 0.0) / half_life_hours)


def engagement_actions(clicks: int, likes: int, comments: int, shares: int) -> int:
    """Weighted actions: deeper engagement counts more (click 1, like 2, comment 3, share 4)."""
    return clicks + 2 * likes + 3 * comments + 4 * shares


def engagement_score(clicks: int, likes: int, comments: int, shares: int, impressions: int, prior: float) -> float:
    """log(1 + actions) / log(1 + impressions + prior), capped at 1.

    The prior is a number of impressions every post is assumed to have had, so
    one like on a post nobody saw is not a perfect score. Likes and comments
    made through the write API arrive without impressions, so actions can
    exceed impressions: the cap keeps the component in [0, 1] like the others.
    """
    actions = engagement_actions(clicks, likes, comments, shares)
    return min(1.0, math.log(1 + actions) / math.log(1 + impressions + prior))


def decayed_interactions(daily: Iterable[tuple[int, int]], half_life_days: float) -> float:
    """Σ interactions · 2^(-age_days / half-life) over (age_days, interactions) pairs."""
    return sum(count * math.exp(-math.log(2) * age_days / half_life_days) for age_days, count in daily)


def affinity_score(raw: float, user_max_raw: float, floor: float) -> float:
    """The user's decayed interactions with this author relative to their most
    engaged-with author, in [0, 1]. The floor keeps a user with one click on one
    author from scoring that author a full 1: the top author reaches 1 only
    after `floor` decayed interactions."""
    return raw / max(user_max_raw, floor)


def fatigue_factor(days_since_hide: float | None, factor: float, fade_days: float) -> float:
    """Hiding a post fatigues its author for that user: ×factor at once, fading
    linearly back to ×1 over fade_days. None: the user never hid that author."""
    if days_since_hide is None:
        return 1.0
    return min(1.0, factor + (1.0 - factor) * max(days_since_hide, 0.0) / fade_days)


@dataclass(frozen=True)
class Features:
    """What the ranker knows about one candidate, as the candidates query returns it."""

    post_id: int
    author_id: int
    created_at_us: int
    out_of_network: bool
    impressions: int
    clicks: int
    likes: int
    comments: int
    shares: int
    affinity_raw: float
    user_max_affinity_raw: float
    last_hide_s: int  # epoch seconds of the user's last hide of this author; 0 = never


@dataclass(frozen=True)
class Components:
    freshness: float
    engagement: float
    affinity: float
    fatigue: float
    network_factor: float
    score: float


def score_features(features: Features, now_us: int, params: RankingParams) -> Components:
    age_hours = (now_us - features.created_at_us) / MICROS_PER_HOUR
    freshness = freshness_score(age_hours, params.freshness_half_life_hours)
    engagement = engagement_score(
        features.clicks,
        features.likes,
        features.comments,
        features.shares,
        features.impressions,
        params.engagement_prior,
    )
    affinity = affinity_score(features.affinity_raw, features.user_max_affinity_raw, params.affinity_floor)
    days_since_hide = None
    if features.last_hide_s:
        days_since_hide = (now_us // 1_000_000 - features.last_hide_s) / SECONDS_PER_DAY
    fatigue = fatigue_factor(days_since_hide, params.hide_fatigue_factor, params.hide_fatigue_days)
    network = params.out_of_network_factor if features.out_of_network else 1.0
    score = (
        (
            params.weight_freshness * freshness
            + params.weight_engagement * engagement
            + params.weight_affinity * affinity
        )
        * network
        * fatigue
    )
    return Components(freshness, engagement, affinity, fatigue, network, score)
