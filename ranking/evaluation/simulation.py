"""A simulated social network with hidden preferences, for the offline evaluation
of the ranker (pure: parameters and a seed in, a World and labels out; no I/O,
no settings). docs/ranking.md, "Offline evaluation", describes the model.

1. users, of whom a share are creators; each user has a hidden taste per topic,
   each creator a topic, a popularity, a posting rate and a mean quality;
2. creators post over [now - history_days, now + future_hours] (Poisson), each
   post with a hidden topic and quality;
3. users follow creators by popularity and taste; each follow has a hidden bond
   (how much the user cares about that person);
4. exposure: a user meets each followee post with probability `activity`, some
   hours after it was posted, and meets out-of-network posts by discovery
   (recent posts, weighted by quality);
5. each meeting is answered from the hidden preferences (click, like, comment,
   share or hide); meetings before `now` become the world's events and CDC rows,
   meetings in the next future_hours become the labels: what the user engages
   with next, which the feeds ranked at `now` are judged against.

The ranker never sees the hidden values: only the follow graph, the posts and
the history's events, as in production.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from ranking.scoring import engagement_actions
from ranking.world import WEvent, World, WPost, WRelation, WUser

# seconds from an impression to each action it leads to; a meeting belongs to
# the history only if all of them fit before `now`, so no label is half-written
ACTION_OFFSET_S = {"hide": 10, "click": 20, "like": 40, "comment": 60, "share": 80}
ACTION_SPAN_S = 120
# follows were made before the history starts: up to this long before
FOLLOW_AGE_MAX_DAYS = 90


@dataclass(frozen=True)
class SimulationParams:
    seed: int = 42
    # the split: the feeds are ranked at `now`; a fixed moment, so runs repeat exactly
    now: datetime = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    users: int = 1000
    creator_share: float = 0.3
    topics: int = 20
    # 10 days of history: the 72 h candidate window plus a week of affinity
    history_days: float = 10.0
    future_hours: float = 24.0
    # posting: a Poisson rate per creator, lognormal around the median (a few prolific accounts)
    posts_per_creator_day: float = 1.5
    posts_per_creator_day_sigma: float = 0.8
    max_posts_per_creator_day: float = 12.0
    # a creator posts on their own topic this often, otherwise on any topic
    creator_topic_focus: float = 0.8
    # quality: creators' means ~ Beta(alpha, beta); a post ~ Beta around its creator's
    # mean with this concentration (higher: closer to the creator's mean)
    creator_quality_alpha: float = 2.0
    creator_quality_beta: float = 3.0
    post_quality_concentration: float = 8.0
    # taste per topic ~ Gamma(shape), scaled so a user's favourite topic is 1:
    # a small shape gives each user a few strong interests
    taste_shape: float = 0.3
    # follow graph: followee count lognormal; the chance to follow a creator grows
    # with popularity · (1 + follow_taste_weight · taste for the creator's topic)
    followees_median: float = 30.0
    followees_sigma: float = 0.7
    creator_popularity_sigma: float = 1.0
    follow_taste_weight: float = 4.0
    # bond with a followee ~ Beta(alpha, beta): most follows are loose, a few close
    bond_alpha: float = 1.2
    bond_beta: float = 2.5
    # exposure: activity = share of followees' posts a user ever meets ~ Beta;
    # a meeting happens an exponential delay after the post
    activity_alpha: float = 2.0
    activity_beta: float = 2.0
    encounter_delay_mean_hours: float = 8.0
    # discovery: out-of-network meetings per day of a fully active user, among
    # posts of the last discovery_window_hours weighted by quality^power
    discovery_per_day: float = 8.0
    discovery_window_hours: float = 24.0
    discovery_quality_power: float = 2.0
    # response to a meeting: logits over taste (topic), bond (author) and quality;
    # the click probability also halves every staleness_half_life_hours of the post's age
    staleness_half_life_hours: float = 12.0
    click_base: float = -3.5
    click_topic: float = 2.5
    click_bond: float = 2.0
    click_quality: float = 2.0
    # like, comment and share are answers to a clicked post
    like_base: float = -1.5
    like_topic: float = 1.5
    like_bond: float = 1.5
    like_quality: float = 1.0
    comment_base: float = -3.5
    comment_topic: float = 1.0
    comment_bond: float = 3.0
    share_base: float = -4.0
    share_topic: float = 1.0
    share_quality: float = 3.5
    # a post not clicked is hidden with probability hide_rate · (1 - taste) · (1 - quality)
    hide_rate: float = 0.05

    def __post_init__(self) -> None:
        problems = []
        if self.users < 2 or self.topics < 1:
            problems.append("users must be >= 2 and topics >= 1")
        if not 0 < self.creator_share <= 1:
            problems.append("creator_share must be in (0, 1]")
        if self.history_days <= 0 or self.future_hours <= 0:
            problems.append("history_days and future_hours must be > 0")
        if self.now.tzinfo is None:
            problems.append("now must be timezone-aware")
        for name in (
            "posts_per_creator_day",
            "followees_median",
            "encounter_delay_mean_hours",
            "discovery_window_hours",
            "staleness_half_life_hours",
            "taste_shape",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if problems:
            raise ValueError("simulation: " + "; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Creator:
    user_id: int
    topic: int
    popularity: float
    posts_per_day: float
    mean_quality: float


@dataclass(frozen=True)
class PostTruth:
    author_id: int
    created_at: datetime
    topic: int
    quality: float


@dataclass(frozen=True)
class Hidden:
    """What the simulation knows and the ranker does not."""

    taste: dict[int, list[float]]  # user → taste per topic in [0, 1]
    activity: dict[int, float]  # user → share of followees' posts met
    creators: dict[int, Creator]
    bond: dict[tuple[int, int], float]  # (user, followee) → bond in [0, 1]
    posts: dict[int, PostTruth]
    met_before_now: dict[int, frozenset[int]]  # user → posts met in the history (impressions)


@dataclass(frozen=True)
class Response:
    clicked: bool = False
    liked: bool = False
    commented: bool = False
    shared: bool = False
    hid: bool = False

    @property
    def gain(self) -> int:
        """The graded relevance of a future meeting: the ranker's own action weights."""
        return engagement_actions(int(self.clicked), int(self.liked), int(self.commented), int(self.shared))


@dataclass(frozen=True)
class Simulation:
    params: SimulationParams
    world: World  # everything before `now`: what the ranker may read
    future_posts: list[WPost]  # posted after `now`: no feed at `now` can hold them
    labels: dict[int, dict[int, int]]  # user → post → gain of the user's next engagement (> 0 only)
    hidden: Hidden

    @property
    def now(self) -> datetime:
        return self.params.now

    def rankable_labels(self, user_id: int) -> dict[int, int]:
        """Labels of posts that existed at `now`: the ones a feed could have shown."""
        future = self._future_post_ids
        return {post: gain for post, gain in self.labels.get(user_id, {}).items() if post not in future}

    @cached_property
    def _future_post_ids(self) -> frozenset[int]:
        return frozenset(p.id for p in self.future_posts)

    def shown_now_labels(self, user_id: int, window_hours: float) -> dict[int, int]:
        """The other label set: what the user would do if shown, at `now`, each post
        of the last window_hours they have not met yet (gain > 0 only). Exposure
        plays no part, so these labels favour no feed's order; the draws are
        seeded per user, so they do not depend on which users are sampled."""
        rng = random.Random(f"{self.params.seed}:shown:{user_id}")
        met = self.hidden.met_before_now.get(user_id, frozenset())
        since = self.now - timedelta(hours=window_hours)
        taste = self.hidden.taste[user_id]
        labels = {}
        for post_id, post in self.hidden.posts.items():
            if not since <= post.created_at <= self.now or post.author_id == user_id or post_id in met:
                continue
            age_hours = (self.now - post.created_at).total_seconds() / 3600
            bond = self.hidden.bond.get((user_id, post.author_id), 0.0)
            response = respond(rng, self.params, taste[post.topic], bond, post.quality, age_hours)
            if response.gain:
                labels[post_id] = response.gain
        return labels

    def summary(self) -> dict[str, int]:
        future = self._future_post_ids
        counts = {
            "users": len(self.world.users),
            "creators": len(self.hidden.creators),
            "posts_history": len(self.world.posts),
            "posts_future": len(self.future_posts),
            "follows": len(self.world.follows),
            "likes_rows": len(self.world.likes),
            "comments_rows": len(self.world.comments),
        }
        for event_type in ("impression", "click", "like", "comment", "share", "hide"):
            counts[f"events_{event_type}"] = sum(1 for e in self.world.events if e.event_type == event_type)
        counts["labels"] = sum(len(posts) for posts in self.labels.values())
        counts["labels_rankable"] = sum(1 for posts in self.labels.values() for p in posts if p not in future)
        counts["users_with_rankable_labels"] = sum(
            1 for posts in self.labels.values() if any(p not in future for p in posts)
        )
        return counts


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def click_probability(params: SimulationParams, taste: float, bond: float, quality: float, age_hours: float) -> float:
    interest = sigmoid(
        params.click_base + params.click_topic * taste + params.click_bond * bond + params.click_quality * quality
    )
    return interest * 0.5 ** (max(age_hours, 0.0) / params.staleness_half_life_hours)


def respond(
    rng: random.Random, params: SimulationParams, taste: float, bond: float, quality: float, age_hours: float
) -> Response:
    """A user's answer to meeting a post `age_hours` old."""
    if rng.random() >= click_probability(params, taste, bond, quality, age_hours):
        return Response(hid=rng.random() < params.hide_rate * (1 - taste) * (1 - quality))
    return Response(
        clicked=True,
        liked=rng.random()
        < sigmoid(
            params.like_base + params.like_topic * taste + params.like_bond * bond + params.like_quality * quality
        ),
        commented=rng.random()
        < sigmoid(params.comment_base + params.comment_topic * taste + params.comment_bond * bond),
        shared=rng.random() < sigmoid(params.share_base + params.share_topic * taste + params.share_quality * quality),
    )


def _weighted_sample_without_replacement(rng: random.Random, weights: dict[int, float], k: int) -> list[int]:
    # Efraimidis–Spirakis: the k largest u^(1/w); one draw per item, order-independent
    keys = sorted(((rng.random() ** (1.0 / w), item) for item, w in weights.items() if w > 0), reverse=True)
    return sorted(item for _, item in keys[:k])


@dataclass(frozen=True)
class _Post:
    at_s: int  # seconds relative to `now`
    author_id: int
    topic: int
    quality: float


def _generate_creators(rng: random.Random, params: SimulationParams) -> dict[int, Creator]:
    count = max(1, round(params.users * params.creator_share))
    creators = {}
    for user_id in sorted(rng.sample(range(1, params.users + 1), count)):
        creators[user_id] = Creator(
            user_id=user_id,
            topic=rng.randrange(params.topics),
            popularity=rng.lognormvariate(0.0, params.creator_popularity_sigma),
            posts_per_day=min(
                params.max_posts_per_creator_day,
                rng.lognormvariate(math.log(params.posts_per_creator_day), params.posts_per_creator_day_sigma),
            ),
            mean_quality=rng.betavariate(params.creator_quality_alpha, params.creator_quality_beta),
        )
    return creators


def _generate_posts(rng: random.Random, params: SimulationParams, creators: dict[int, Creator]) -> list[_Post]:
    start_s = -round(params.history_days * 86_400)
    end_s = round(params.future_hours * 3600)
    posts = []
    for creator in creators.values():
        at = float(start_s)
        while True:
            at += rng.expovariate(creator.posts_per_day / 86_400)
            if at >= end_s:
                break
            topic = creator.topic if rng.random() < params.creator_topic_focus else rng.randrange(params.topics)
            k = params.post_quality_concentration
            quality = rng.betavariate(max(k * creator.mean_quality, 1e-3), max(k * (1 - creator.mean_quality), 1e-3))
            posts.append(_Post(int(at), creator.user_id, topic, quality))
    # ids in posting order, as Postgres' sequence gives them
    posts.sort(key=lambda p: (p.at_s, p.author_id))
    return posts


def _generate_follows(
    rng: random.Random, params: SimulationParams, creators: dict[int, Creator], taste: dict[int, list[float]]
) -> dict[int, list[int]]:
    followees = {}
    for user_id in range(1, params.users + 1):
        weights = {
            c.user_id: c.popularity * (1 + params.follow_taste_weight * taste[user_id][c.topic])
            for c in creators.values()
            if c.user_id != user_id
        }
        wanted = max(1, round(rng.lognormvariate(math.log(params.followees_median), params.followees_sigma)))
        followees[user_id] = _weighted_sample_without_replacement(rng, weights, min(wanted, len(weights)))
    return followees


def simulate(params: SimulationParams) -> Simulation:
    rng = random.Random(params.seed)
    now = params.now

    def moment(at_s: float) -> datetime:
        return now + timedelta(seconds=at_s)

    taste = {}
    for user_id in range(1, params.users + 1):
        raw = [rng.gammavariate(params.taste_shape, 1.0) for _ in range(params.topics)]
        top = max(raw) or 1.0
        taste[user_id] = [value / top for value in raw]
    activity = {u: rng.betavariate(params.activity_alpha, params.activity_beta) for u in range(1, params.users + 1)}
    creators = _generate_creators(rng, params)
    posts = _generate_posts(rng, params, creators)
    post_ids = list(range(1, len(posts) + 1))
    followees = _generate_follows(rng, params, creators, taste)

    world = World(users=[WUser(u) for u in range(1, params.users + 1)])
    bond: dict[tuple[int, int], float] = {}
    history_start_s = -params.history_days * 86_400
    for user_id, authors in followees.items():
        for author_id in authors:
            bond[(user_id, author_id)] = rng.betavariate(params.bond_alpha, params.bond_beta)
            followed_at = history_start_s - rng.random() * FOLLOW_AGE_MAX_DAYS * 86_400
            world.follows.append(WRelation(len(world.follows) + 1, user_id, author_id, moment(int(followed_at))))

    numbered = list(zip(post_ids, posts, strict=True))
    history_posts = [WPost(pid, p.author_id, moment(p.at_s)) for pid, p in numbered if p.at_s <= 0]
    future_posts = [WPost(pid, p.author_id, moment(p.at_s)) for pid, p in numbered if p.at_s > 0]
    world.posts.extend(history_posts)
    posts_by_author: dict[int, list[int]] = {}
    for index, post in enumerate(posts):
        posts_by_author.setdefault(post.author_id, []).append(index)
    post_times = [p.at_s for p in posts]
    # cumulative discovery weights over posts in time order: a discovery at time t
    # draws from the slice of posts made in the window before t in O(log n)
    cumulative = [0.0]
    for post in posts:
        cumulative.append(cumulative[-1] + post.quality**params.discovery_quality_power)

    end_s = params.future_hours * 3600
    delay_rate = 1 / (params.encounter_delay_mean_hours * 3600)
    window_s = params.discovery_window_hours * 3600
    labels: dict[int, dict[int, int]] = {}
    met_before_now: dict[int, frozenset[int]] = {}
    for user_id in range(1, params.users + 1):
        met: dict[int, float] = {}  # post index → meeting time (s)
        followed = set(followees[user_id])
        for author_id in followees[user_id]:
            for index in posts_by_author.get(author_id, []):
                if rng.random() < activity[user_id]:
                    at = posts[index].at_s + rng.expovariate(delay_rate)
                    if at < end_s:
                        met[index] = at
        discovery_rate = params.discovery_per_day * activity[user_id] / 86_400
        at = history_start_s
        while discovery_rate > 0:
            at += rng.expovariate(discovery_rate)
            if at >= end_s:
                break
            low, high = bisect_left(post_times, at - window_s), bisect_left(post_times, at)
            if high == low:
                continue
            draw = cumulative[low] + rng.random() * (cumulative[high] - cumulative[low])
            index = min(max(bisect_right(cumulative, draw) - 1, low), high - 1)
            post = posts[index]
            if post.author_id == user_id or post.author_id in followed or index in met:
                continue  # followees' posts are met through the follow, once
            met[index] = at
        history = set()
        for index, at in sorted(met.items(), key=lambda item: (item[1], item[0])):
            post = posts[index]
            response = respond(
                rng,
                params,
                taste[user_id][post.topic],
                bond.get((user_id, post.author_id), 0.0),
                post.quality,
                (at - post.at_s) / 3600,
            )
            if at + ACTION_SPAN_S < 0:
                history.add(post_ids[index])
                _write_history(world, user_id, post_ids[index], post.author_id, moment(at), response)
            elif response.gain:
                labels.setdefault(user_id, {})[post_ids[index]] = response.gain
        met_before_now[user_id] = frozenset(history)

    hidden = Hidden(
        taste=taste,
        activity=activity,
        creators=creators,
        bond=bond,
        posts={pid: PostTruth(p.author_id, moment(p.at_s), p.topic, p.quality) for pid, p in numbered},
        met_before_now=met_before_now,
    )
    return Simulation(params, world, future_posts, labels, hidden)


def _write_history(world: World, user_id: int, post_id: int, author_id: int, at: datetime, response: Response) -> None:
    """A meeting before `now` as production records it: the impression and each
    action as events; likes and comments also as CDC rows (the write API's)."""
    world.events.append(WEvent(user_id, post_id, author_id, "impression", at))
    actions = [
        ("click", response.clicked),
        ("like", response.liked),
        ("comment", response.commented),
        ("share", response.shared),
        ("hide", response.hid),
    ]
    for event_type, happened in actions:
        if happened:
            ts = at + timedelta(seconds=ACTION_OFFSET_S[event_type])
            world.events.append(WEvent(user_id, post_id, author_id, event_type, ts))
            if event_type == "like":
                world.likes.append(WRelation(len(world.likes) + 1, user_id, post_id, ts))
            elif event_type == "comment":
                world.comments.append(WRelation(len(world.comments) + 1, user_id, post_id, ts))
