"""Ranking quality metrics (pure: sequences and mappings in, numbers out).

A feed is a sequence of post ids, best first; `relevance` maps post id → graded
relevance (here: the user's future engagement with the post; absent = 0).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    """Σ gain_i / log2(i + 1) over the first k positions (i from 1): linear gains,
    so a share (4) counts four clicks, not 2^4 - 1 = 15 of them."""
    return sum(gain / math.log2(position + 1) for position, gain in enumerate(gains[:k], start=1))


def ndcg_at_k(feed: Sequence[int], relevance: Mapping[int, float], k: int) -> float | None:
    """DCG of the feed's top k over the DCG of the best possible top k drawn from
    every relevant post (also the ones the feed does not hold: a feed that misses
    them is worse). None when nothing is relevant: the ratio is undefined, and
    counting it as 0 or 1 would move the mean by how many such users were sampled."""
    ideal = dcg_at_k(sorted(relevance.values(), reverse=True), k)
    if ideal <= 0:
        return None
    return dcg_at_k([relevance.get(post_id, 0.0) for post_id in feed], k) / ideal


def hit_rate_at_k(feed: Sequence[int], relevance: Mapping[int, float], k: int) -> float:
    """1.0 when at least one of the top k is relevant, else 0.0 (a mean over users is the hit rate)."""
    return 1.0 if any(relevance.get(post_id, 0.0) > 0 for post_id in feed[:k]) else 0.0


@dataclass(frozen=True)
class AuthorDiversity:
    distinct_share: float  # distinct authors / posts in the top k
    max_per_author: int  # the most posts one author has in the top k


def author_diversity(authors: Sequence[Hashable], k: int = 10) -> AuthorDiversity | None:
    """Over the first k authors of a feed; None for an empty feed. A feed shorter
    than k is measured on what it has (distinct / its length), not padded."""
    top = authors[:k]
    if not top:
        return None
    counts = Counter(top)
    return AuthorDiversity(distinct_share=len(counts) / len(top), max_per_author=max(counts.values()))


def out_of_network_share(out_of_network: Sequence[bool], k: int) -> float | None:
    """Share of the top k that is out of network; None for an empty feed."""
    top = out_of_network[:k]
    if not top:
        return None
    return sum(1 for flag in top if flag) / len(top)


def mean(values: Sequence[float | None]) -> float | None:
    """Mean of the defined values (None skipped); None when there are none."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def ratio_of_means_interval(
    numerators: Sequence[float], denominators: Sequence[float], *, resamples: int, seed: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of mean(numerators) / mean(denominators),
    resampling users in pairs (both feeds were ranked for the same users, so
    their errors are correlated and must move together). None when the pairs
    are empty or a resample's denominator is 0."""
    if len(numerators) != len(denominators):
        raise ValueError("numerators and denominators must pair up")
    n = len(numerators)
    if n == 0 or resamples < 1:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        denominator = sum(denominators[i] for i in picks)
        if denominator == 0:
            return None
        ratios.append(sum(numerators[i] for i in picks) / denominator)
    ratios.sort()
    tail = (1 - confidence) / 2
    low = ratios[min(resamples - 1, int(tail * resamples))]
    high = ratios[min(resamples - 1, max(0, math.ceil((1 - tail) * resamples) - 1))]
    return low, high
