"""Post-processing rules on adversarial orders (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ranking.diversity import (
    BEYOND_FEED_LENGTH,
    OUT_OF_NETWORK_CAP,
    SATURATED,
    Rules,
    arrange,
    diversity_violations,
)

RULES = Rules(feed_length=50, author_cap=2, author_cap_window=10, max_out_of_network_in_a_row=2)


@dataclass(frozen=True)
class C:
    post_id: int
    author_id: int
    out_of_network: bool = False


def ids(items) -> list[int]:
    return [item.post_id for item in items]


def test_duplicates_appear_once_and_are_counted() -> None:
    result = arrange([C(1, 1), C(2, 2), C(1, 1), C(3, 3), C(2, 2)], RULES)
    assert ids(result.feed) == [1, 2, 3]
    assert result.duplicates == 2


def test_an_authors_third_post_waits_until_the_window_moves_on() -> None:
    # author 1 has the 3 best posts; others fill the gap until position 11
    candidates = [C(1, 1), C(2, 1), C(3, 1)] + [C(100 + i, 10 + i) for i in range(10)]
    result = arrange(candidates, RULES)
    assert ids(result.feed)[:3] == [1, 2, 100]
    assert ids(result.feed).index(3) == 10  # position 11: the window of 10 holds only posts 2..
    assert diversity_violations(result.feed, RULES) == []


def test_one_author_alone_yields_two_posts_and_the_rest_saturated() -> None:
    result = arrange([C(i, 7) for i in range(1, 6)], RULES)
    assert ids(result.feed) == [1, 2]
    assert [(c.post_id, reason) for c, reason in result.dropped] == [(i, SATURATED) for i in range(3, 6)]


def test_no_more_than_two_out_of_network_posts_in_a_row() -> None:
    candidates = [C(i, i, out_of_network=True) for i in range(1, 6)] + [C(10, 10), C(11, 11)]
    result = arrange(candidates, RULES)
    assert ids(result.feed) == [1, 2, 10, 3, 4, 11, 5]
    assert diversity_violations(result.feed, RULES) == []


def test_out_of_network_only_stops_after_the_run_limit() -> None:
    result = arrange([C(i, i, out_of_network=True) for i in range(1, 6)], RULES)
    assert ids(result.feed) == [1, 2]
    assert {reason for _, reason in result.dropped} == {OUT_OF_NETWORK_CAP}


def test_no_run_limit_in_cold_start() -> None:
    cold = Rules(feed_length=50, author_cap=2, author_cap_window=10, max_out_of_network_in_a_row=None)
    assert ids(arrange([C(i, i, out_of_network=True) for i in range(1, 6)], cold).feed) == [1, 2, 3, 4, 5]


def test_the_feed_is_cut_at_its_length() -> None:
    result = arrange([C(i, i) for i in range(1, 61)], RULES)
    assert ids(result.feed) == list(range(1, 51))
    assert {reason for _, reason in result.dropped} == {BEYOND_FEED_LENGTH}
    assert len(result.dropped) == 10


def test_checker_sees_violations() -> None:
    assert diversity_violations([C(1, 1), C(2, 1), C(3, 1)], RULES) != []
    assert diversity_violations([C(1, 1, True), C(2, 2, True), C(3, 3, True)], RULES) != []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.booleans()), max_size=80))
def test_any_order_yields_a_valid_feed_in_score_order_where_allowed(spec) -> None:
    candidates = [C(index, author, oon) for index, (author, oon) in enumerate(spec)]
    result = arrange(candidates, RULES)
    assert diversity_violations(result.feed, RULES) == []
    # every candidate is either served once or dropped once
    assert sorted(ids(result.feed) + [c.post_id for c, _ in result.dropped]) == list(range(len(candidates)))
    # greedy: nothing dropped could have gone at the end of the feed (unless the feed is full)
    if len(result.feed) < RULES.feed_length:
        for candidate, _ in result.dropped:
            assert diversity_violations([*result.feed, candidate], RULES) != []
