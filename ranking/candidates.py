"""Candidate generation and scoring in ClickHouse: loads the SQL of
infra/clickhouse/queries/ once, binds every value through the driver, and
returns plain rows. What the rows mean is ranking/scoring.py's business."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from ranking.params import RankingParams
from ranking.scoring import Components, Features, epoch_us

QUERIES_DIR = Path(__file__).resolve().parent.parent / "infra" / "clickhouse" / "queries"


class QueryRunner(Protocol):
    """clickhouse_driver.Client.execute, or the circuit breaker wrapping it."""

    def execute(self, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]: ...


@cache
def load_query(name: str) -> str:
    return (QUERIES_DIR / f"{name}.sql").read_text()


@dataclass(frozen=True)
class ScoredCandidate:
    features: Features
    components: Components
    seen: bool
    hidden: bool
    muted: bool

    # diversity.Arrangeable
    @property
    def post_id(self) -> int:
        return self.features.post_id

    @property
    def author_id(self) -> int:
        return self.features.author_id

    @property
    def out_of_network(self) -> bool:
        return self.features.out_of_network

    @property
    def score(self) -> float:
        return self.components.score


@dataclass(frozen=True)
class UserContext:
    """The user's relation to authors and posts, from user_context.sql and user_post_flags.sql."""

    followees: frozenset[int]
    muted: frozenset[int]
    affinity_raw: dict[int, float]
    last_hide_s: dict[int, int]
    seen: frozenset[int]
    hidden: frozenset[int]

    @property
    def user_max_affinity_raw(self) -> float:
        return max(self.affinity_raw.values(), default=0.0)


def _windows(user_id: int, now: datetime, params: RankingParams) -> dict[str, Any]:
    now_us = epoch_us(now)
    now_s = now_us // 1_000_000
    in_network_since_s = now_s - params.in_network_window_hours * 3600
    affinity_since = (now.astimezone(UTC) - timedelta(days=params.affinity_window_days)).date()
    return {
        "user_id": user_id,
        "now_s": now_s,
        "now_us": now_us,
        "today": now.astimezone(UTC).date(),
        "in_network_since_s": in_network_since_s,
        "in_network_since_hour_s": in_network_since_s - in_network_since_s % 3600,
        "trending_since_us": now_us - params.trending_window_hours * 3_600_000_000,
        "seen_since_s": now_s - params.seen_window_days * 86_400,
        "affinity_since": affinity_since,
        "affinity_since_s": epoch_us(
            datetime(affinity_since.year, affinity_since.month, affinity_since.day, tzinfo=UTC)
        )
        // 1_000_000,
        "fatigue_since_s": now_s - int(params.hide_fatigue_days * 86_400),
        "affinity_half_life_days": params.affinity_half_life_days,
    }


def fetch_user_context(runner: QueryRunner, user_id: int, now: datetime, params: RankingParams) -> UserContext:
    bound = _windows(user_id, now, params)
    followees, muted, affinity, hides = set(), set(), {}, {}
    for author_id, followed, is_muted, affinity_raw, last_hide_s in runner.execute(load_query("user_context"), bound):
        if followed:
            followees.add(author_id)
        if is_muted:
            muted.add(author_id)
        if affinity_raw:
            affinity[author_id] = affinity_raw
        if last_hide_s:
            hides[author_id] = last_hide_s
    seen, hidden = set(), set()
    for post_id, is_seen, is_hidden in runner.execute(load_query("user_post_flags"), bound):
        if is_seen:
            seen.add(post_id)
        if is_hidden:
            hidden.add(post_id)
    return UserContext(frozenset(followees), frozenset(muted), affinity, hides, frozenset(seen), frozenset(hidden))


def candidate_params(user_id: int, now: datetime, params: RankingParams, context: UserContext) -> dict[str, Any]:
    """Every value the candidates query binds (pure)."""
    # the user is always first in the lookup arrays, so they are never empty
    # (an empty array literal has no element type for transform())
    authors = [user_id, *(a for a in sorted(set(context.affinity_raw) | set(context.last_hide_s)) if a != user_id)]
    return {
        **_windows(user_id, now, params),
        "in_network_authors": [user_id, *sorted(context.followees)],
        "context_authors": authors,
        "context_affinity": [float(context.affinity_raw.get(a, 0.0)) for a in authors],
        "context_last_hide_s": [context.last_hide_s.get(a, 0) for a in authors],
        "user_max_affinity_raw": float(context.user_max_affinity_raw),
        "trending_pool": params.trending_pool,
        **{
            name: getattr(params, name)
            for name in (
                "weight_freshness",
                "weight_engagement",
                "weight_affinity",
                "freshness_half_life_hours",
                "engagement_prior",
                "affinity_floor",
                "hide_fatigue_factor",
                "hide_fatigue_days",
                "out_of_network_factor",
            )
        },
    }


def fetch_candidates(runner: QueryRunner, user_id: int, now: datetime, params: RankingParams) -> list[ScoredCandidate]:
    """Every candidate of the user's feed with its features and scores, best first
    (ties by newest post id). Seen, hidden and muted candidates are included and
    flagged, so the ranker can say why they were dropped."""
    context = fetch_user_context(runner, user_id, now, params)
    rows = runner.execute(load_query("feed_candidates"), candidate_params(user_id, now, params, context))
    user_max = context.user_max_affinity_raw
    candidates = []
    for (
        post_id,
        author_id,
        created_at_us,
        out_of_network,
        impressions,
        clicks,
        likes,
        comments,
        shares,
        affinity_raw,
        last_hide_s,
        freshness,
        engagement,
        affinity,
        fatigue,
        network_factor,
        score,
    ) in rows:
        features = Features(
            post_id=post_id,
            author_id=author_id,
            created_at_us=created_at_us,
            out_of_network=bool(out_of_network),
            impressions=impressions,
            clicks=clicks,
            likes=likes,
            comments=comments,
            shares=shares,
            affinity_raw=affinity_raw,
            user_max_affinity_raw=user_max,
            last_hide_s=last_hide_s,
        )
        components = Components(freshness, engagement, affinity, fatigue, network_factor, score)
        candidates.append(
            ScoredCandidate(
                features,
                components,
                seen=post_id in context.seen,
                hidden=post_id in context.hidden,
                muted=author_id in context.muted,
            )
        )
    return candidates


@dataclass(frozen=True)
class PostState:
    """A post as the replicas know it, for explaining why it is not a candidate."""

    post_id: int
    author_id: int
    created_at_us: int
    deleted: bool
    author_active: bool
    author_followed: bool


def fetch_post_state(runner: QueryRunner, user_id: int, post_id: int) -> PostState | None:
    rows = runner.execute(load_query("post_state"), {"user_id": user_id, "post_id": post_id})
    if not rows:
        return None
    _, author_id, created_at_us, deleted, author_active, author_followed = rows[0]
    return PostState(post_id, author_id, created_at_us, bool(deleted), bool(author_active), bool(author_followed))
