"""The ranking formulas, edge by edge (no I/O)."""

from __future__ import annotations

import math

import pytest

from ranking.params import RankingParams
from ranking.scoring import (
    Features,
    affinity_score,
    decayed_interactions,
    engagement_score,
    fatigue_factor,
    freshness_score,
    score_features,
)


@pytest.mark.parametrize(
    ("age_hours", "half_life", "expected"),
    [
        (0, 6, 1.0),
        (6, 6, 0.5),
        (12, 6, 0.25),
        (72, 6, 2**-12),  # the in-network window's edge
        (3, 6, 2**-0.5),
        (-1, 6, 1.0),  # clock skew: a post from the future is new, not fresher than new
        (24, 24, 0.5),
    ],
)
def test_freshness(age_hours: float, half_life: float, expected: float) -> None:
    assert freshness_score(age_hours, half_life) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("clicks", "likes", "comments", "shares", "impressions", "prior", "expected"),
    [
        (0, 0, 0, 0, 0, 20, 0.0),  # nothing happened
        (0, 1, 0, 0, 0, 20, math.log(3) / math.log(21)),  # one like nobody saw: the prior keeps it modest
        (1, 1, 1, 1, 0, 20, math.log(11) / math.log(21)),  # weights 1, 2, 3, 4
        (10, 0, 0, 0, 10_000, 20, math.log(11) / math.log(10_021)),  # many impressions dilute
        (50, 50, 50, 50, 10, 20, 1.0),  # more actions than impressions: capped at 1
        (5, 0, 0, 0, 100, 1, math.log(6) / math.log(102)),
    ],
)
def test_engagement(clicks, likes, comments, shares, impressions, prior, expected) -> None:
    assert engagement_score(clicks, likes, comments, shares, impressions, prior) == pytest.approx(expected, rel=1e-12)


def test_engagement_smoothing_ranks_few_impressions_below_proven_posts() -> None:
    lucky = engagement_score(1, 0, 0, 0, 1, prior=20)  # 1 click of 1 impression
    proven = engagement_score(30, 5, 0, 0, 100, prior=20)
    assert lucky < proven


@pytest.mark.parametrize(
    ("daily", "half_life", "expected"),
    [
        ([], 7, 0.0),
        ([(0, 4)], 7, 4.0),
        ([(7, 4)], 7, 2.0),
        ([(0, 1), (14, 4)], 7, 2.0),
        ([(30, 8)], 7, 8 * 2 ** (-30 / 7)),
    ],
)
def test_decayed_interactions(daily, half_life, expected) -> None:
    assert decayed_interactions(daily, half_life) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("raw", "user_max", "floor", expected := "expected"),
    [
        (0.0, 0.0, 5.0, 0.0),
        (10.0, 10.0, 5.0, 1.0),  # the user's top author
        (5.0, 10.0, 5.0, 0.5),
        (1.0, 1.0, 5.0, 0.2),  # one click on one author is not a full affinity
        (5.0, 5.0, 5.0, 1.0),
    ],
)
def test_affinity_normalisation(raw, user_max, floor, expected) -> None:
    assert affinity_score(raw, user_max, floor) == pytest.approx(expected)
    assert 0.0 <= affinity_score(raw, user_max, floor) <= 1.0


@pytest.mark.parametrize(
    ("days", "expected"),
    [(None, 1.0), (0, 0.2), (30, 0.6), (60, 1.0), (90, 1.0), (15, 0.4), (-2, 0.2)],
)
def test_hide_fatigue(days, expected) -> None:
    assert fatigue_factor(days, factor=0.2, fade_days=60) == pytest.approx(expected)


NOW_US = 1_800_000_000 * 1_000_000


def features(**overrides) -> Features:
    base = dict(
        post_id=1,
        author_id=2,
        created_at_us=NOW_US - 6 * 3_600_000_000,
        out_of_network=False,
        impressions=0,
        clicks=0,
        likes=0,
        comments=0,
        shares=0,
        affinity_raw=0.0,
        user_max_affinity_raw=0.0,
        last_hide_s=0,
    )
    return Features(**{**base, **overrides})


def test_score_is_the_weighted_sum() -> None:
    c = score_features(features(likes=1, affinity_raw=2.5, user_max_affinity_raw=5.0), NOW_US, RankingParams())
    assert c.freshness == pytest.approx(0.5)
    assert c.engagement == pytest.approx(math.log(3) / math.log(21))
    assert c.affinity == pytest.approx(0.5)
    assert c.score == pytest.approx(0.4 * 0.5 + 0.35 * c.engagement + 0.25 * 0.5)


def test_out_of_network_and_fatigue_multiply_the_score() -> None:
    plain = score_features(features(), NOW_US, RankingParams())
    hidden_30_days_ago = NOW_US // 1_000_000 - 30 * 86_400
    both = score_features(features(out_of_network=True, last_hide_s=hidden_30_days_ago), NOW_US, RankingParams())
    assert both.network_factor == 0.75
    assert both.fatigue == pytest.approx(0.6)
    assert both.score == pytest.approx(plain.score * 0.75 * 0.6)


def test_every_weight_is_a_profile_setting() -> None:
    only_freshness = RankingParams(weight_freshness=1, weight_engagement=0, weight_affinity=0)
    assert score_features(features(likes=9), NOW_US, only_freshness).score == pytest.approx(0.5)
