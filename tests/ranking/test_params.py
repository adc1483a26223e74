"""Ranking profiles: validation and the stable A/B split (no I/O)."""

from __future__ import annotations

from collections import Counter

import pytest

from ranking.params import RankingParams, assign_profile, traffic_bucket


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"engagement_prior": 0}, "engagement_prior must be > 0"),
        ({"freshness_half_life_hours": 0}, "freshness_half_life_hours must be > 0"),
        ({"in_network_window_hours": 12}, "in_network_window_hours must be >= trending_window_hours"),
        ({"author_cap": 0}, "caps, windows and feed_length must be >= 1"),
    ],
)
def test_impossible_profiles_are_refused(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        RankingParams(**overrides)


def test_bucket_is_stable_and_in_range() -> None:
    # fixed values: a change of the hash would silently move every user to another arm
    assert traffic_bucket(1) == traffic_bucket(1)
    assert all(0 <= traffic_bucket(user) < 100 for user in range(1000))
    assert [traffic_bucket(user) for user in (1, 2, 3)] == [pytest.approx(b) for b in _expected_buckets()]


def _expected_buckets() -> list[float]:
    import hashlib

    return [
        int.from_bytes(hashlib.sha256(f"nova-ranking:{u}".encode()).digest()[:8], "big") % 10_000 / 100
        for u in (1, 2, 3)
    ]


def test_split_follows_the_traffic_shares() -> None:
    arms = Counter(assign_profile(user, [("a", 30.0), ("b", 20.0)]) for user in range(20_000))
    assert arms["a"] / 20_000 == pytest.approx(0.30, abs=0.02)
    assert arms["b"] / 20_000 == pytest.approx(0.20, abs=0.02)
    assert arms[None] / 20_000 == pytest.approx(0.50, abs=0.02)


def test_no_active_profiles_means_the_default() -> None:
    assert assign_profile(42, []) is None


def test_growing_one_arm_moves_only_users_into_it() -> None:
    before = {user: assign_profile(user, [("a", 10.0)]) for user in range(5000)}
    after = {user: assign_profile(user, [("a", 20.0)]) for user in range(5000)}
    assert all(after[user] == "a" for user, arm in before.items() if arm == "a")
