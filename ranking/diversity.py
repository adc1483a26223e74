"""Post-processing of scored candidates (pure): one appearance per post, author
diversity and the out-of-network run limit, cut to the feed's length.

The arrangement is greedy: each position takes the best-scored candidate that
breaks no rule there. A candidate a rule holds back keeps its place in line and
is taken as soon as the rule allows (an author's third post can come back after
the window has moved on), so the feed stays as close to score order as the rules
let it. Whatever is left when the feed is full, or when nothing left fits, is
dropped with the rule that last held it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

SATURATED = "saturated"
OUT_OF_NETWORK_CAP = "out_of_network_cap"
BEYOND_FEED_LENGTH = "beyond_feed_length"


class Arrangeable(Protocol):
    @property
    def post_id(self) -> int: ...
    @property
    def author_id(self) -> int: ...
    @property
    def out_of_network(self) -> bool: ...


C = TypeVar("C", bound=Arrangeable)


@dataclass(frozen=True)
class Rules:
    feed_length: int
    author_cap: int  # at most this many posts of one author ...
    author_cap_window: int  # ... in any this many consecutive positions
    max_out_of_network_in_a_row: int | None  # None: no limit (cold start)


@dataclass(frozen=True)
class Arrangement(Generic[C]):
    feed: list[C]
    dropped: list[tuple[C, str]]
    duplicates: int


def dedupe(candidates: Sequence[C]) -> tuple[list[C], int]:
    """The first appearance of each post wins (callers pass candidates best first)."""
    seen: set[int] = set()
    unique: list[C] = []
    for candidate in candidates:
        if candidate.post_id not in seen:
            seen.add(candidate.post_id)
            unique.append(candidate)
    return unique, len(candidates) - len(unique)


def rule_broken(candidate: Arrangeable, placed: Sequence[Arrangeable], rules: Rules) -> str | None:
    """The rule that forbids `candidate` at the next position after `placed`, if any."""
    recent = placed[max(0, len(placed) - (rules.author_cap_window - 1)) :]
    if sum(1 for item in recent if item.author_id == candidate.author_id) >= rules.author_cap:
        return SATURATED
    run = rules.max_out_of_network_in_a_row
    if candidate.out_of_network and run is not None:
        tail = placed[max(0, len(placed) - run) :]
        if len(tail) == run and all(item.out_of_network for item in tail):
            return OUT_OF_NETWORK_CAP
    return None


def arrange(candidates: Sequence[C], rules: Rules) -> Arrangement[C]:
    """`candidates` best first (ties already broken by the caller)."""
    remaining, duplicates = dedupe(candidates)
    placed: list[C] = []
    held_back: dict[int, str] = {}
    while remaining and len(placed) < rules.feed_length:
        for index, candidate in enumerate(remaining):
            reason = rule_broken(candidate, placed, rules)
            if reason is None:
                placed.append(remaining.pop(index))
                break
            held_back[candidate.post_id] = reason
        else:
            break  # nothing left may go next, so nothing ever will
    dropped = [(candidate, held_back.get(candidate.post_id, BEYOND_FEED_LENGTH)) for candidate in remaining]
    return Arrangement(placed, dropped, duplicates)


def diversity_violations(feed: Sequence[Arrangeable], rules: Rules) -> list[str]:
    """Every place where `feed` breaks a rule (empty for a valid feed); for tests and audits."""
    problems = []
    for end in range(len(feed)):
        window = feed[max(0, end - rules.author_cap_window + 1) : end + 1]
        author = feed[end].author_id
        if sum(1 for item in window if item.author_id == author) > rules.author_cap:
            problems.append(f"position {end + 1}: author {author} over {rules.author_cap} in {len(window)}")
        run = rules.max_out_of_network_in_a_row
        if run is not None and end >= run:
            if all(item.out_of_network for item in feed[end - run : end + 1]):
                problems.append(f"position {end + 1}: {run + 1} out-of-network posts in a row")
    return problems
