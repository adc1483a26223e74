"""The numbers a ranking profile sets (pure: no settings, ORM or I/O).

`RankingParams()` holds the product defaults; settings.RANKING_DEFAULT_PROFILE
may replace any of them, and each `ranking.models.RankingProfile` row carries a
full set, editable in the admin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class RankingParams:
    name: str = "default"
    # score = (w_f·freshness + w_e·engagement + w_a·affinity) · network factor · fatigue
    weight_freshness: float = 0.4
    weight_engagement: float = 0.35
    weight_affinity: float = 0.25
    freshness_half_life_hours: float = 6.0
    # impressions every post is assumed to have had (smoothing); must be > 0
    engagement_prior: float = 20.0
    affinity_window_days: int = 30
    affinity_half_life_days: float = 7.0
    # decayed interactions an author needs before affinity can reach 1
    affinity_floor: float = 5.0
    # candidates: in-network posts this recent, trending posts this recent
    in_network_window_hours: int = 72
    trending_window_hours: int = 24
    trending_pool: int = 100
    seen_window_days: int = 7
    out_of_network_factor: float = 0.75
    max_out_of_network_in_a_row: int = 2
    # at most author_cap posts of one author in any author_cap_window consecutive positions
    author_cap: int = 2
    author_cap_window: int = 10
    feed_length: int = 50
    hide_fatigue_factor: float = 0.2
    hide_fatigue_days: float = 60.0
    # fewer in-network candidates than this: trending fills the feed without the out-of-network rules
    cold_start_min_candidates: int = 20

    def __post_init__(self) -> None:
        problems = []
        if self.engagement_prior <= 0:
            problems.append("engagement_prior must be > 0")
        for name in ("freshness_half_life_hours", "affinity_half_life_days", "hide_fatigue_days", "affinity_floor"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if self.in_network_window_hours < self.trending_window_hours:
            problems.append("in_network_window_hours must be >= trending_window_hours")
        if min(self.author_cap, self.author_cap_window, self.feed_length, self.max_out_of_network_in_a_row) < 1:
            problems.append("caps, windows and feed_length must be >= 1")
        if problems:
            raise ValueError(f"ranking profile {self.name!r}: " + "; ".join(problems))

    @property
    def weights(self) -> dict[str, float]:
        return {
            "freshness": self.weight_freshness,
            "engagement": self.weight_engagement,
            "affinity": self.weight_affinity,
        }

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "name"]


def traffic_bucket(user_id: int) -> float:
    """A stable position in [0, 100) for a user: the same in every process and
    release (Python's hash() is salted per process, so it is not used)."""
    digest = hashlib.sha256(f"nova-ranking:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def assign_profile(user_id: int, shares: Sequence[tuple[str, float]]) -> str | None:
    """The profile whose slice of traffic holds the user's bucket, or None for
    the default. `shares` are (name, percent) of the active profiles; slices are
    laid out in name order, so adding a profile moves only users of the slice
    that shrank or the unassigned rest."""
    bucket = traffic_bucket(user_id)
    start = 0.0
    for name, share in sorted(shares):
        if start <= bucket < start + share:
            return name
        start += share
    return None
