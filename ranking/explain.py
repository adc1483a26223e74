"""Why a post sits where it does in a user's feed, or why it is not there.

The components shown are recomputed by the pure scorer (ranking/scoring.py)
from the features ClickHouse returned, so an operator sees the arithmetic, and
the SQL's own score beside it (they agree: tests/ranking/test_agreement.py).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ranking.candidates import PostState
from ranking.scoring import epoch_us, score_features
from ranking.service import DroppedCandidate, RankedFeed, RankedItem

# why a post is not a candidate at all
NOT_REPLICATED = "not_replicated"
DELETED = "deleted"
AUTHOR_INACTIVE = "author_inactive"
OUTSIDE_WINDOW = "outside_window"
NOT_IN_NETWORK = "not_in_network"


def not_a_candidate_reason(state: PostState | None, feed: RankedFeed, user_id: int) -> str:
    if state is None:
        return NOT_REPLICATED
    if state.deleted:
        return DELETED
    if not state.author_active:
        return AUTHOR_INACTIVE
    now_us = epoch_us(feed.now)
    age_hours = (now_us - state.created_at_us) / 3_600_000_000
    in_network = state.author_followed or state.author_id == user_id
    window = feed.profile.in_network_window_hours if in_network else feed.profile.trending_window_hours
    if age_hours < 0 or age_hours > window:
        return OUTSIDE_WINDOW
    # in the trending window but not among the trending_pool most engaged posts
    return NOT_IN_NETWORK


def explain_post(feed: RankedFeed, post_id: int, state: PostState | None) -> dict[str, Any]:
    params = feed.profile
    entry: RankedItem | DroppedCandidate | None = feed.find(post_id)
    result: dict[str, Any] = {
        "user_id": feed.user_id,
        "post_id": post_id,
        "profile": params.name,
        "weights": params.weights,
        "ranked_at": feed.now.isoformat(),
        "cold_start": feed.cold_start,
        "status": "not_a_candidate",
        "rank": None,
        "reason": None,
        "source": None,
        "components": None,
        "features": None,
        "score": None,
        "sql_score": None,
    }
    if entry is None:
        result["reason"] = not_a_candidate_reason(state, feed, feed.user_id)
        return result
    candidate = entry.candidate
    components = score_features(candidate.features, epoch_us(feed.now), params)
    features = asdict(candidate.features)
    features.pop("post_id")
    result.update(
        source="out_of_network" if candidate.out_of_network else "in_network",
        components={k: v for k, v in asdict(components).items() if k != "score"},
        features=features,
        score=components.score,
        sql_score=candidate.score,
    )
    if isinstance(entry, RankedItem):
        result.update(status="ranked", rank=entry.rank)
    else:
        result.update(status="dropped", reason=entry.reason)
    return result
