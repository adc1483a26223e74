"""The generated social world of the ranking benchmarks (bench/ranking_latency.py,
bench/feed_api.py): deterministic per seed and `now`.

Posts spread over the 7 days before `now` with Zipf-ish author activity;
follows: probe users with exactly 100, 250, 500, 1,000 and 2,000 followees,
everyone else 10-60, half by author activity, half uniform; likes, comments, a
few mutes, 1 % inactive users, 0.5 % deleted posts; events (impressions mostly,
clicks, likes, shares, hides ...), all before `now`, 70 % of a user's actions
on their followees' posts. Plain data: importable before django.setup().
"""

from __future__ import annotations

import argparse
import bisect
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from ranking.world import WEvent, World, WPost, WRelation, WUser

PROBE_FOLLOWEES = (100, 250, 500, 1000, 2000)
EVENT_MIX = (
    ("impression", 0.80),
    ("view", 0.04),
    ("click", 0.08),
    ("like", 0.035),
    ("comment", 0.01),
    ("share", 0.015),
    ("hide", 0.005),
    ("dwell", 0.015),
)
EVENTS_PER_PROBE_USER = 1_000
EVENT_CHUNK = 100_000


class Picker:
    """Weighted picks by cumulative weights (rng.choices without its per-call set-up)."""

    def __init__(self, items: list[int], weights: list[float]) -> None:
        self.items = items
        self.cumulative = []
        total = 0.0
        for weight in weights:
            total += weight
            self.cumulative.append(total)
        self.total = total

    def pick(self, rng: random.Random) -> int:
        return self.items[bisect.bisect_right(self.cumulative, rng.random() * self.total)]


def zipf_weights(count: int, exponent: float, offset: int = 10) -> list[float]:
    return [1 / (rank + offset) ** exponent for rank in range(count)]


def world_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The generator's arguments (the benchmarks' common defaults: a world of 10,000 users)."""
    world = parser.add_argument_group("world (bench/worldgen.py; needs more users than the largest probe follows)")
    world.add_argument("--users", type=int, default=10_000)
    world.add_argument("--posts", type=int, default=100_000)
    world.add_argument("--events", type=int, default=1_000_000)
    world.add_argument("--likes", type=int, default=200_000)
    world.add_argument("--comments", type=int, default=50_000)
    world.add_argument("--seed", type=int, default=10)
    return world


def build_world(args: argparse.Namespace, now: datetime) -> tuple[World, dict[int, int], EventSource]:
    """Users, posts, follows, likes, comments and mutes, the probe users
    ({followee count: user id}) and the source of the events (written in chunks),
    everything before `now`. `args` needs users, posts, likes, comments and seed."""
    rng = random.Random(args.seed)
    user_ids = list(range(1, args.users + 1))
    by_activity = user_ids[:]
    rng.shuffle(by_activity)  # by_activity[r]: the author of activity rank r
    authors = Picker(by_activity, zipf_weights(args.users, 0.9))
    by_reading = user_ids[:]
    rng.shuffle(by_reading)
    readers = Picker(by_reading, zipf_weights(args.users, 0.7))

    # probe users: ordinary authors (not the busiest 5 %), all active
    candidates = by_activity[args.users // 20 :]
    probes = dict(zip(PROBE_FOLLOWEES, rng.sample(candidates, len(PROBE_FOLLOWEES)), strict=True))
    probe_ids = set(probes.values())
    inactive = set(rng.sample([u for u in user_ids if u not in probe_ids], args.users // 100))
    users = [WUser(u, active=u not in inactive) for u in user_ids]

    # posts: ids in creation order (as a Postgres sequence hands them out)
    week_s = 7 * 86_400
    offsets = sorted((rng.random() * week_s for _ in range(args.posts)), reverse=True)
    posts = []
    posts_by_author: dict[int, list[int]] = {}
    for post_id, offset in enumerate(offsets, start=1):
        author = authors.pick(rng)
        posts.append(WPost(post_id, author, now - timedelta(seconds=offset + 1), deleted=rng.random() < 0.005))
        posts_by_author.setdefault(author, []).append(post_id)
    post_ranks = list(range(1, args.posts + 1))
    rng.shuffle(post_ranks)
    popular = Picker(post_ranks, zipf_weights(args.posts, 0.8))

    # follows: half by author activity (people follow busy authors), half uniform
    followees: dict[int, list[int]] = {}
    follows: list[WRelation] = []
    for user in user_ids:
        wanted = next((k for k, u in probes.items() if u == user), None) or rng.randint(10, 60)
        chosen: set[int] = set()
        while len(chosen) < wanted:
            other = authors.pick(rng) if rng.random() < 0.5 else rng.randint(1, args.users)
            if other != user:
                chosen.add(other)
        followees[user] = sorted(chosen)
        for other in followees[user]:
            follows.append(
                WRelation(len(follows) + 1, user, other, now - timedelta(seconds=rng.randint(86_400, 365 * 86_400)))
            )

    source = EventSource(rng, posts, posts_by_author, followees, readers, popular, probes, now)

    def relations(count: int) -> list[WRelation]:
        seen: set[tuple[int, int]] = set()
        out: list[WRelation] = []
        for _ in range(count * 2):
            if len(out) == count:
                break
            user = readers.pick(rng)
            post = source.pick_post(user)
            if (user, post.id) in seen:
                continue
            seen.add((user, post.id))
            out.append(WRelation(len(out) + 1, user, post.id, source.moment_after(post.created_at)))
        return out

    likes = relations(args.likes)
    comments = relations(args.comments)
    mutes: list[WRelation] = []
    for user in probes.values():  # a few followees and a few others
        for author in rng.sample(followees[user], 3) + rng.sample(user_ids, 2):
            if author != user:
                mutes.append(WRelation(len(mutes) + 1, user, author, now - timedelta(days=rng.randint(1, 300))))
    for _ in range(args.users // 5):
        user, author = rng.choice(user_ids), rng.choice(user_ids)
        if user != author:
            mutes.append(WRelation(len(mutes) + 1, user, author, now - timedelta(days=rng.randint(1, 300))))
    world = World(users=users, posts=posts, follows=follows, likes=likes, comments=comments, mutes=mutes)
    return world, probes, source


class EventSource:
    """Events in the world's own rng order: each probe user's EVENTS_PER_PROBE_USER
    first, then readers by Zipf-ish activity; 70 % on a followee's post."""

    def __init__(
        self,
        rng: random.Random,
        posts: list[WPost],
        posts_by_author: dict[int, list[int]],
        followees: dict[int, list[int]],
        readers: Picker,
        popular: Picker,
        probes: dict[int, int],
        now: datetime,
    ) -> None:
        self.rng, self.posts, self.posts_by_author, self.now = rng, posts, posts_by_author, now
        self.followees, self.readers, self.popular, self.probes = followees, readers, popular, probes
        self.types = Picker(list(range(len(EVENT_MIX))), [share for _, share in EVENT_MIX])

    def pick_post(self, user: int) -> WPost:
        rng = self.rng
        if rng.random() < 0.7:
            own = self.posts_by_author.get(rng.choice(self.followees[user]))
            if own:
                return self.posts[rng.choice(own) - 1]
        return self.posts[self.popular.pick(rng) - 1]

    def moment_after(self, created_at: datetime) -> datetime:
        """Soon after the post (exponential, mean 6 h), never after now."""
        rng = self.rng
        moment = created_at + timedelta(seconds=rng.expovariate(1 / 21_600))
        if moment >= self.now:
            moment = created_at + (self.now - created_at) * rng.random()
        return moment

    def chunks(self, total: int) -> Iterator[list[WEvent]]:
        rng = self.rng
        probe_users = [u for _, u in sorted(self.probes.items())]
        produced = 0
        while produced < total:
            chunk: list[WEvent] = []
            for _ in range(min(EVENT_CHUNK, total - produced)):
                index = produced + len(chunk)
                user = (
                    probe_users[index // EVENTS_PER_PROBE_USER]
                    if index < EVENTS_PER_PROBE_USER * len(probe_users)
                    else self.readers.pick(rng)
                )
                post = self.pick_post(user)
                kind = EVENT_MIX[self.types.pick(rng)][0]
                chunk.append(
                    WEvent(
                        user,
                        post.id,
                        post.author_id,
                        kind,
                        self.moment_after(post.created_at),
                        dwell_ms=rng.randint(500, 60_000) if kind == "dwell" else 0,
                    )
                )
            produced += len(chunk)
            yield chunk
