"""Offline evaluation: the metrics, the baseline feed and the summaries, case by case (no I/O)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from ranking.candidates import ScoredCandidate
from ranking.evaluation import metrics
from ranking.evaluation.runner import (
    CHRONOLOGICAL,
    FeedPost,
    UserScore,
    chronological_feed,
    score_feed,
    summarize,
)
from ranking.params import RankingParams
from ranking.scoring import Components, Features
from ranking.service import DroppedCandidate, RankedFeed, RankedItem

LOG2_3 = math.log2(3)


@pytest.mark.parametrize(
    ("feed", "relevance", "k", "expected"),
    [
        ([1, 2, 3], {1: 3, 2: 2, 3: 1}, 3, 1.0),  # already the ideal order
        ([3, 2, 1], {1: 3, 2: 2, 3: 1}, 3, (1 + 2 / LOG2_3 + 3 / 2) / (3 + 2 / LOG2_3 + 1 / 2)),
        ([4, 5, 6], {1: 1}, 3, 0.0),  # nothing relevant shown
        ([4, 1], {1: 1}, 2, (1 / LOG2_3) / 1),  # the one relevant post second
        ([4, 5, 1], {1: 1}, 2, 0.0),  # ... or beyond k
        ([7, 8], {1: 2, 2: 1}, 20, 0.0),  # relevant posts the feed lacks still count in the ideal
        ([1], {1: 2, 2: 2}, 20, 2 / (2 + 2 / LOG2_3)),  # a short feed is not padded with luck
        ([], {1: 1}, 20, 0.0),
        ([1, 2], {1: 4, 2: 0}, 2, 1.0),  # zero gains are not relevant
        ([2, 1], {1: 4, 2: 1, 3: 1, 4: 1}, 1, 0.25),  # k = 1
    ],
)
def test_ndcg(feed: list[int], relevance: dict[int, float], k: int, expected: float) -> None:
    assert metrics.ndcg_at_k(feed, relevance, k) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("relevance", [{}, {1: 0, 2: 0}])
def test_ndcg_is_undefined_without_relevant_posts(relevance: dict[int, float]) -> None:
    assert metrics.ndcg_at_k([1, 2, 3], relevance, 20) is None


@pytest.mark.parametrize(
    ("feed", "relevance", "k", "expected"),
    [
        ([1, 2, 3], {3: 1}, 3, 1.0),
        ([1, 2, 3], {3: 1}, 2, 0.0),  # the hit is beyond k
        ([1, 2, 3], {}, 20, 0.0),
        ([], {1: 1}, 20, 0.0),
        ([1, 2], {1: 0, 2: 0}, 20, 0.0),  # gain 0 is no hit
        ([5, 9], {9: 10, 5: 1}, 20, 1.0),  # several hits still make one
    ],
)
def test_hit_rate(feed: list[int], relevance: dict[int, float], k: int, expected: float) -> None:
    assert metrics.hit_rate_at_k(feed, relevance, k) == expected


@pytest.mark.parametrize(
    ("authors", "k", "distinct_share", "max_per_author"),
    [
        (list(range(10)), 10, 1.0, 1),
        ([7] * 10, 10, 0.1, 10),
        ([1, 1, 2, 2, 3, 3, 4, 4, 5, 5], 10, 0.5, 2),  # the product rule's limit, exactly
        ([1, 2, 3, 1, 2, 3, 1, 4, 5, 6], 10, 0.6, 3),
        ([1, 2, 3], 10, 1.0, 1),  # shorter than k: measured on what is there
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 1, 1], 10, 1.0, 1),  # only the top k counts
    ],
)
def test_author_diversity(authors: list[int], k: int, distinct_share: float, max_per_author: int) -> None:
    assert metrics.author_diversity(authors, k) == metrics.AuthorDiversity(distinct_share, max_per_author)


def test_author_diversity_of_an_empty_feed_is_undefined() -> None:
    assert metrics.author_diversity([], 10) is None


@pytest.mark.parametrize(
    ("flags", "k", "expected"),
    [
        ([False] * 20, 20, 0.0),
        ([True] * 20, 20, 1.0),
        ([False, True, False, True], 20, 0.5),
        ([False] * 20 + [True] * 5, 20, 0.0),  # beyond k
        ([True, False, False, False], 2, 0.5),
        ([], 20, None),
    ],
)
def test_out_of_network_share(flags: list[bool], k: int, expected: float | None) -> None:
    assert metrics.out_of_network_share(flags, k) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1.0, 2.0, 3.0], 2.0), ([1.0, None, 3.0], 2.0), ([None, None], None), ([], None)],
)
def test_mean_skips_undefined_values(values: list[float | None], expected: float | None) -> None:
    assert metrics.mean(values) == expected


@pytest.mark.parametrize(
    ("numerators", "denominators", "expected"),
    [
        ([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], (2.0, 2.0)),  # the same ratio for every user: no spread
        ([], [], None),
        ([1.0, 1.0], [0.0, 0.0], None),  # the baseline scored nothing: no ratio
    ],
)
def test_ratio_interval_edges(
    numerators: list[float], denominators: list[float], expected: tuple[float, float] | None
) -> None:
    interval = metrics.ratio_of_means_interval(numerators, denominators, resamples=200, seed=1)
    assert interval == (pytest.approx(expected) if expected else None)


def test_ratio_interval_brackets_the_estimate_and_repeats_with_its_seed() -> None:
    numerators = [0.1 * (i % 7) for i in range(60)]
    denominators = [0.05 * (i % 5) + 0.1 for i in range(60)]
    interval = metrics.ratio_of_means_interval(numerators, denominators, resamples=500, seed=3)
    assert interval is not None
    low, high = interval
    estimate = sum(numerators) / sum(denominators)
    assert low < estimate < high
    assert metrics.ratio_of_means_interval(numerators, denominators, resamples=500, seed=3) == (low, high)


def test_ratio_interval_needs_pairs() -> None:
    with pytest.raises(ValueError, match="pair"):
        metrics.ratio_of_means_interval([1.0], [1.0, 2.0], resamples=10, seed=1)


# --- the chronological baseline and the per-feed summary ------------------------

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def candidate(
    post_id: int,
    author_id: int,
    hours_old: float,
    *,
    score: float = 0.5,
    out_of_network: bool = False,
    seen: bool = False,
    hidden: bool = False,
    muted: bool = False,
) -> ScoredCandidate:
    created_at_us = int((NOW.timestamp() - hours_old * 3600) * 1_000_000)
    features = Features(post_id, author_id, created_at_us, out_of_network, 0, 0, 0, 0, 0, 0.0, 0.0, 0)
    return ScoredCandidate(features, Components(0, 0, 0, 1, 1, score), seen=seen, hidden=hidden, muted=muted)


def ranked(items: list[ScoredCandidate], dropped: list[tuple[ScoredCandidate, str]]) -> RankedFeed:
    return RankedFeed(
        user_id=1,
        profile=RankingParams(),
        now=NOW,
        items=[RankedItem(rank, c) for rank, c in enumerate(items, start=1)],
        dropped=[DroppedCandidate(c, reason) for c, reason in dropped],
        cold_start=False,
        query_seconds=0.0,
        total_seconds=0.0,
    )


def test_chronological_feed_is_the_rankers_in_network_pool_newest_first() -> None:
    feed = ranked(
        items=[candidate(1, 10, 5, score=0.9), candidate(2, 11, 1, out_of_network=True), candidate(3, 10, 2)],
        dropped=[
            (candidate(4, 10, 0.5), "saturated"),  # held back by a diversity rule: chronological has none
            (candidate(5, 12, 0.1, seen=True), "seen"),
            (candidate(6, 12, 0.2, hidden=True), "hidden"),
            (candidate(7, 13, 0.3, muted=True), "muted"),
            (candidate(8, 14, 3), "beyond_feed_length"),
        ],
    )
    assert [p.post_id for p in chronological_feed(feed, 50)] == [4, 3, 8, 1]
    assert [p.post_id for p in chronological_feed(feed, 2)] == [4, 3]


def test_chronological_feed_breaks_time_ties_by_newest_post_id() -> None:
    feed = ranked(items=[candidate(1, 10, 1), candidate(3, 11, 1), candidate(2, 12, 1)], dropped=[])
    assert [p.post_id for p in chronological_feed(feed, 50)] == [3, 2, 1]


def test_score_feed_measures_each_metric_on_its_own_depth() -> None:
    feed = [FeedPost(post_id=i, author_id=i % 4, out_of_network=i % 5 == 0) for i in range(1, 31)]
    score = score_feed(feed, {2: 1, 25: 4})
    assert score.ndcg == pytest.approx((1 / LOG2_3) / (4 + 1 / LOG2_3))  # 25 is beyond K = 20
    assert score.hit == 1.0
    assert (score.distinct_share, score.max_per_author) == (0.4, 3)  # top 10: authors 1, 2, 3, 0 ...
    assert score.out_of_network_share == 4 / 20
    assert score.length == 30


def test_summarize_pairs_each_user_with_the_baseline() -> None:
    def user(ndcg: float | None, max_per_author: int) -> UserScore:
        return UserScore(ndcg, 1.0 if ndcg else 0.0, 0.8, max_per_author, 0.1, 50)

    chronological = [user(0.2, 4), user(0.4, 2), user(None, 1)]
    ranked_scores = [user(0.3, 2), user(0.6, 2), user(0.5, 2)]
    summary = summarize("ranked:default", ranked_scores, chronological, seed=1, resamples=100)
    assert summary.ndcg is not None and summary.ndcg == pytest.approx((0.3 + 0.6 + 0.5) / 3)
    assert summary.ndcg_ratio == pytest.approx(summary.ndcg / 0.3)
    assert summary.max_per_author == 2 and summary.users_over_author_limit == 0
    baseline = summarize(CHRONOLOGICAL, chronological, chronological, seed=1, resamples=100)
    assert baseline.ndcg_ratio == 1.0 and baseline.ndcg_ratio_interval == (1.0, 1.0)
    assert baseline.max_per_author == 4 and baseline.users_over_author_limit == 1
