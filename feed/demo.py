"""A deterministic, realistic demo social graph, as plain rows (no database).

Popularity follows a Zipf law, so a few authors collect most follows (with the
default 2,000 users the top authors have well over a thousand followers) while
the median user has a handful; activity (posting) and virality (likes on one
post) are Pareto-distributed for the same long tails. Same seed and `now` →
the same rows, in the same order.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

FIRST_NAMES = (
    "ada alan amara ana ben bruno carla chen dana diego elena emil fatima felix grace hana "
    "ivan jamal jin kai lara leo lina luca maya mei nadia noah omar paula ravi rosa sam "
    "sara tariq theo uma vera wei yara yusuf zoe"
).split()
LAST_NAMES = (
    "adams baker costa dubois eriksen fischer garcia haddad ito jensen kim lopez moreau "
    "nakamura novak okafor patel quinn rossi silva tanaka ueda varga walsh xu young zhang"
).split()
WORDS = (
    "today finally shipped coffee morning build release bug fix deploy feed ranking kafka "
    "postgres latency cache weekend hiking photo city music album launch team meeting idea "
    "design sunset river bread recipe garden book chapter train travel code review lunch "
    "coffee again tired happy excited new old small big fast slow really quite just about"
).split()
TAGS = ["#python", "#django", "#photography", "#music", "#travel", "#food", "#devops", "#books"]


@dataclass(frozen=True)
class DemoSizes:
    users: int = 2_000
    posts: int = 40_000
    days: float = 7.0
    mean_follows: int = 40
    likes_per_post: float = 3.0
    comments_per_post: float = 0.5
    mutes_per_user: float = 0.05
    zipf_exponent: float = 1.1


@dataclass
class DemoGraph:
    """Rows by index: user i is `users[i]`; posts are sorted by time, oldest first."""

    users: list[tuple[str, str, str]] = field(default_factory=list)  # username, display name, bio
    posts: list[tuple[int, datetime, str, str]] = field(default_factory=list)  # author, at, body, media url
    follows: list[tuple[int, int, datetime]] = field(default_factory=list)  # follower, followee, at
    likes: list[tuple[int, int, datetime]] = field(default_factory=list)  # user, post, at
    comments: list[tuple[int, int, datetime, str]] = field(default_factory=list)  # user, post, at, body
    mutes: list[tuple[int, int, datetime]] = field(default_factory=list)  # user, muted author, at


def zipf_weights(count: int, exponent: float) -> list[float]:
    return [1.0 / (rank**exponent) for rank in range(1, count + 1)]


def _sentence(rng: random.Random, low: int, high: int) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    if rng.random() < 0.3:
        words.append(rng.choice(TAGS))
    return " ".join(words).capitalize()


def _distinct_weighted(rng: random.Random, cum_weights: list[float], k: int, exclude: int) -> set[int]:
    """At least k distinct indices drawn by weight (never `exclude`); bounded retries, then uniform fill."""
    population = range(len(cum_weights))
    picked: set[int] = set()
    for _ in range(8):
        picked.update(rng.choices(population, cum_weights=cum_weights, k=2 * (k - len(picked))))
        picked.discard(exclude)
        if len(picked) >= k:
            break
    while len(picked) < k:  # the heavy head is exhausted: fill from the long tail
        candidate = rng.randrange(len(cum_weights))
        if candidate != exclude:
            picked.add(candidate)
    return picked  # may hold a few more than k: k is a sampled size anyway


def generate(sizes: DemoSizes, seed: int, now: datetime) -> DemoGraph:
    rng = random.Random(seed)
    graph = DemoGraph()
    span = timedelta(days=sizes.days)
    n = sizes.users

    # user 0 is the demo account; the rest get names from the lists plus their index
    for i in range(n):
        if i == 0:
            graph.users.append(("demo", "Demo User", "The account `seed_demo` prints credentials for."))
            continue
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        graph.users.append((f"{first}_{last}{i}", f"{first.title()} {last.title()}", _sentence(rng, 3, 10)))

    # popularity rank is a random permutation, so the demo user is an ordinary reader
    popularity = list(range(n))
    rng.shuffle(popularity)
    weight_of = dict(zip(popularity, zipf_weights(n, sizes.zipf_exponent), strict=True))
    follow_cum = list(itertools.accumulate(weight_of[i] for i in range(n)))

    for follower in range(n):
        # how many people someone follows is itself long-tailed (log-normal)
        k = max(1, min(n - 1, int(rng.lognormvariate(math.log(sizes.mean_follows), 0.8))))
        for followee in sorted(_distinct_weighted(rng, follow_cum, k, exclude=follower)):
            graph.follows.append((follower, followee, now - span * rng.random() * 4))

    # popular authors post more, with a Pareto spread on top
    activity = [weight_of[i] ** 0.5 * rng.paretovariate(2.0) for i in range(n)]
    authors = rng.choices(range(n), weights=activity, k=sizes.posts)
    stamps = sorted(now - span * rng.random() for _ in range(sizes.posts))
    virality: list[float] = []
    for author, at in zip(authors, stamps, strict=True):
        media = f"https://picsum.photos/seed/{rng.randrange(10**6)}/800/600" if rng.random() < 0.15 else ""
        graph.posts.append((author, at, _sentence(rng, 5, 40), media))
        virality.append(weight_of[author] ** 0.7 * rng.paretovariate(1.5))

    if graph.posts:
        post_cum = list(itertools.accumulate(virality))
        seen: set[tuple[int, int]] = set()
        for post in rng.choices(
            range(len(graph.posts)), cum_weights=post_cum, k=int(sizes.posts * sizes.likes_per_post)
        ):
            user = rng.randrange(n)
            if (user, post) not in seen:
                seen.add((user, post))
                graph.likes.append((user, post, _after(rng, graph.posts[post][1], now)))
        for post in rng.choices(
            range(len(graph.posts)), cum_weights=post_cum, k=int(sizes.posts * sizes.comments_per_post)
        ):
            graph.comments.append(
                (rng.randrange(n), post, _after(rng, graph.posts[post][1], now), _sentence(rng, 2, 20))
            )

    pairs: set[tuple[int, int]] = set()
    for _ in range(int(n * sizes.mutes_per_user)):
        user, muted = rng.randrange(n), rng.randrange(n)
        if user != muted and (user, muted) not in pairs:
            pairs.add((user, muted))
            graph.mutes.append((user, muted, now - span * rng.random()))
    return graph


def _after(rng: random.Random, start: datetime, now: datetime) -> datetime:
    """A reaction time after `start`: mostly within the first hours (exponential), never in the future."""
    return min(now, start + timedelta(hours=rng.expovariate(1 / 3)))
