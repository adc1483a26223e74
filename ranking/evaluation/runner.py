"""The offline evaluation run: a simulated world written to its own ClickHouse
database, ranked at `now` by the real ranker, judged against what the
simulation's users engage with next.

1. write the world's history (ranking.world.write_world) into the client's database;
2. sample users with future engagement on posts that existed at `now` (without
   it NDCG is undefined), seeded;
3. per user: ranking.service.rank_feed with every profile and with
   engagement-only weights; the chronological feed from the same candidates;
4. per feed: each user's metrics (metrics.py), their means, and the NDCG ratio
   to chronological with a paired bootstrap interval.

Steps 1 and 3 do I/O; the rest are pure functions the tests call directly.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from clickhouse_driver import Client

from nova.clickhouse import make_client
from nova.config import ClickHouseConfig
from pipeline.clickhouse_migrations import MigrationRunner
from ranking.candidates import QueryRunner
from ranking.evaluation import metrics
from ranking.evaluation.simulation import Simulation, SimulationParams
from ranking.params import RankingParams
from ranking.service import RankedFeed, exclusion_reason, rank_feed
from ranking.world import write_world

K = 20
DIVERSITY_K = 10
# the product rule the target is stated against: at most 2 posts of one author in any top 10
AUTHOR_LIMIT_TOP10 = 2
CHRONOLOGICAL = "chronological"
ENGAGEMENT_ONLY = RankingParams(
    name="engagement_only", weight_freshness=0.0, weight_engagement=1.0, weight_affinity=0.0
)
DEFAULT_PROFILES = (
    RankingParams(),
    RankingParams(name="engagement_heavy", weight_freshness=0.2, weight_engagement=0.6, weight_affinity=0.2),
    RankingParams(name="affinity_heavy", weight_freshness=0.2, weight_engagement=0.3, weight_affinity=0.5),
)
# the two label sets (docs/ranking.md): what the user engages with in the
# simulated next hours, and what they would engage with if shown each post now
NEXT = "next"
SHOWN = "shown"
LABEL_SETS = {
    NEXT: "engagement in the simulated next hours (exposure in time order, independent of the feeds)",
    SHOWN: "engagement if shown at now, drawn for every unmet post of the in-network window",
}
DEFAULT_SAMPLE = 300
BOOTSTRAP_RESAMPLES = 1000
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FeedPost:
    post_id: int
    author_id: int
    out_of_network: bool


@dataclass(frozen=True)
class UserScore:
    ndcg: float | None
    hit: float
    distinct_share: float | None
    max_per_author: int | None
    out_of_network_share: float | None
    length: int


@dataclass(frozen=True)
class FeedSummary:
    name: str
    users: int
    ndcg: float | None
    hit_rate: float | None
    distinct_share: float | None
    max_per_author: int | None  # the worst top 10 over all sampled users
    users_over_author_limit: int  # users whose top 10 holds > AUTHOR_LIMIT_TOP10 posts of one author
    out_of_network_share: float | None
    mean_length: float | None
    ndcg_ratio: float | None  # ÷ chronological
    ndcg_ratio_interval: tuple[float, float] | None


@dataclass(frozen=True)
class LabelResults:
    labels: str  # NEXT or SHOWN
    relevant_per_user: float | None  # mean count of posts with gain > 0
    feeds: tuple[FeedSummary, ...]

    def feed(self, name: str) -> FeedSummary:
        return next(f for f in self.feeds if f.name == name)


@dataclass(frozen=True)
class EvaluationReport:
    simulation: SimulationParams
    profiles: tuple[RankingParams, ...]
    sample_size: int
    eligible_users: int
    sampled_users: tuple[int, ...]
    world: dict[str, int]
    results: tuple[LabelResults, ...]
    # wall times differ run to run; two reports of one seed compare equal without them
    seconds: dict[str, float] = field(default_factory=dict, compare=False)

    def labels(self, name: str) -> LabelResults:
        return next(r for r in self.results if r.labels == name)


def ranked_name(profile: RankingParams) -> str:
    return f"ranked:{profile.name}"


# --- pure steps ---------------------------------------------------------------


def sample_users(simulation: Simulation, size: int) -> tuple[list[int], int]:
    """(sampled users sorted, how many were eligible): users with engagement in the
    next hours on a post that existed at `now` (without it the NEXT labels'
    NDCG is undefined), drawn with a seed of their own."""
    eligible = sorted(u for u in simulation.labels if simulation.rankable_labels(u))
    rng = random.Random(f"{simulation.params.seed}:sample")
    return sorted(rng.sample(eligible, min(size, len(eligible)))), len(eligible)


def feed_posts(feed: RankedFeed) -> list[FeedPost]:
    return [FeedPost(item.post_id, item.author_id, item.candidate.out_of_network) for item in feed.items]


def chronological_feed(feed: RankedFeed, length: int) -> list[FeedPost]:
    """The newest in-network posts among the candidates the ranker saw, less what
    it must not show again (hidden, muted author, seen): the same pool as the
    ranker's, ordered by time alone and without diversity rules, as a plain
    following feed would be."""
    pool = [item.candidate for item in feed.items] + [dropped.candidate for dropped in feed.dropped]
    eligible = {c.post_id: c for c in pool if not c.out_of_network and exclusion_reason(c) is None}
    newest = sorted(eligible.values(), key=lambda c: (c.features.created_at_us, c.post_id), reverse=True)
    return [FeedPost(c.post_id, c.author_id, False) for c in newest[:length]]


def score_feed(feed: Sequence[FeedPost], relevance: Mapping[int, float]) -> UserScore:
    post_ids = [p.post_id for p in feed]
    diversity = metrics.author_diversity([p.author_id for p in feed], DIVERSITY_K)
    return UserScore(
        ndcg=metrics.ndcg_at_k(post_ids, relevance, K),
        hit=metrics.hit_rate_at_k(post_ids, relevance, K),
        distinct_share=diversity.distinct_share if diversity else None,
        max_per_author=diversity.max_per_author if diversity else None,
        out_of_network_share=metrics.out_of_network_share([p.out_of_network for p in feed], K),
        length=len(feed),
    )


def summarize(
    name: str,
    scores: Sequence[UserScore],
    baseline: Sequence[UserScore],
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> FeedSummary:
    """One feed's means over users; the NDCG ratio to `baseline` (the same users, in the same order)."""
    ndcg = metrics.mean([s.ndcg for s in scores])
    baseline_ndcg = metrics.mean([s.ndcg for s in baseline])
    pairs = [
        (s.ndcg, b.ndcg) for s, b in zip(scores, baseline, strict=True) if s.ndcg is not None and b.ndcg is not None
    ]
    maxima = [s.max_per_author for s in scores if s.max_per_author is not None]
    return FeedSummary(
        name=name,
        users=len(scores),
        ndcg=ndcg,
        hit_rate=metrics.mean([s.hit for s in scores]),
        distinct_share=metrics.mean([s.distinct_share for s in scores]),
        max_per_author=max(maxima, default=None),
        users_over_author_limit=sum(1 for m in maxima if m > AUTHOR_LIMIT_TOP10),
        out_of_network_share=metrics.mean([s.out_of_network_share for s in scores]),
        mean_length=metrics.mean([float(s.length) for s in scores]),
        ndcg_ratio=ndcg / baseline_ndcg if ndcg is not None and baseline_ndcg else None,
        ndcg_ratio_interval=metrics.ratio_of_means_interval(
            [p[0] for p in pairs], [p[1] for p in pairs], resamples=resamples, seed=seed
        ),
    )


# --- the run (I/O) ------------------------------------------------------------


def rank_user(
    runner: QueryRunner, simulation: Simulation, user_id: int, profiles: Sequence[RankingParams]
) -> dict[str, list[FeedPost]]:
    """Every feed of one user at `now`: each profile's, engagement-only, chronological."""
    feeds: dict[str, list[FeedPost]] = {}
    first: RankedFeed | None = None
    for profile in (*profiles, ENGAGEMENT_ONLY):
        ranked = rank_feed(user_id, simulation.now, profile, runner)
        first = first or ranked
        name = ENGAGEMENT_ONLY.name if profile is ENGAGEMENT_ONLY else ranked_name(profile)
        feeds[name] = feed_posts(ranked)
    assert first is not None
    feeds[CHRONOLOGICAL] = chronological_feed(first, profiles[0].feed_length)
    return feeds


def run_evaluation(
    runner: QueryRunner,
    simulation: Simulation,
    *,
    profiles: Sequence[RankingParams] = DEFAULT_PROFILES,
    sample_size: int = DEFAULT_SAMPLE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationReport:
    """Steps 1-4 of the module docstring; `runner` is bound to an empty, migrated database."""
    if not profiles:
        raise ValueError("at least one ranking profile is needed")
    names = [ranked_name(p) for p in profiles]
    if len(set(names)) != len(names) or ENGAGEMENT_ONLY.name in {p.name for p in profiles}:
        raise ValueError("profile names must be unique and not engagement_only")
    seconds = {}
    started = time.perf_counter()
    write_world(runner, simulation.world)
    seconds["write"] = time.perf_counter() - started

    users, eligible = sample_users(simulation, sample_size)
    feed_names = (*names, ENGAGEMENT_ONLY.name, CHRONOLOGICAL)
    scores: dict[str, dict[str, list[UserScore]]] = {labels: {name: [] for name in feed_names} for labels in LABEL_SETS}
    relevant: dict[str, list[float]] = {labels: [] for labels in LABEL_SETS}
    started = time.perf_counter()
    for done, user_id in enumerate(users, start=1):
        relevance = {
            NEXT: simulation.rankable_labels(user_id),
            SHOWN: simulation.shown_now_labels(user_id, profiles[0].in_network_window_hours),
        }
        for labels, gains in relevance.items():
            relevant[labels].append(float(len(gains)))
        for name, feed in rank_user(runner, simulation, user_id, profiles).items():
            for labels, gains in relevance.items():
                scores[labels][name].append(score_feed(feed, gains))
        if progress:
            progress(done, len(users))
    seconds["rank"] = time.perf_counter() - started

    seed = simulation.params.seed
    results = tuple(
        LabelResults(
            labels,
            metrics.mean(relevant[labels]),
            tuple(
                summarize(name, feed_scores, by_feed[CHRONOLOGICAL], seed=seed, resamples=resamples)
                for name, feed_scores in by_feed.items()
            ),
        )
        for labels, by_feed in scores.items()
    )
    return EvaluationReport(
        simulation=simulation.params,
        profiles=tuple(profiles),
        sample_size=sample_size,
        eligible_users=eligible,
        sampled_users=tuple(users),
        world=simulation.summary(),
        results=results,
        seconds=seconds,
    )


def prepare_database(config: ClickHouseConfig, database: str, sql_dir: Path) -> Client:
    """Drop `database`, recreate it with every migration, and return a client bound
    to it. The evaluation writes a whole simulated world: it gets a database of its
    own and never the service's."""
    if not _DATABASE_NAME.match(database):
        raise ValueError(f"not a plain database name: {database!r}")
    if database == config.database:
        raise ValueError(f"{database!r} is the service's ClickHouse database; the evaluation needs its own")
    admin = make_client(config, database="default")
    try:
        admin.execute(f"DROP DATABASE IF EXISTS `{database}`")
        MigrationRunner(make_client(config, database=database), admin, database, sql_dir).apply()
    finally:
        admin.disconnect()
    return make_client(config, database=database)


def drop_database(config: ClickHouseConfig, database: str) -> None:
    if not _DATABASE_NAME.match(database) or database == config.database:
        raise ValueError(f"refusing to drop {database!r}")
    admin = make_client(config, database="default")
    try:
        admin.execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        admin.disconnect()


# --- report -------------------------------------------------------------------


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def format_parameters(report: EvaluationReport) -> list[str]:
    """Every value a run depends on, so it can be repeated exactly."""
    sim = report.simulation.as_dict()
    lines = [
        f"seed: {report.simulation.seed}",
        "simulation: "
        + ", ".join(
            f"{name}={value.isoformat() if hasattr(value, 'isoformat') else value}" for name, value in sim.items()
        ),
    ]
    base = RankingParams()
    lines.append(
        "ranking defaults (RankingParams()): "
        + ", ".join(f"{name}={getattr(base, name)}" for name in RankingParams.field_names())
    )
    for profile in (*report.profiles, ENGAGEMENT_ONLY):
        changed = [
            f"{f.name}={getattr(profile, f.name)}"
            for f in fields(profile)
            if f.name != "name" and getattr(profile, f.name) != getattr(base, f.name)
        ]
        lines.append(f"profile {profile.name}: " + (", ".join(changed) or "the defaults"))
    lines.append(
        f"feeds: K={K}, diversity over the top {DIVERSITY_K}, chronological = newest in-network "
        f"candidates of profile {report.profiles[0].name}, not hidden/muted/seen"
    )
    lines.append(
        f"users: {len(report.sampled_users)} sampled (asked {report.sample_size}) of "
        f"{report.eligible_users} with engagement in the next hours on posts that existed at now; "
        f"sample seed '{report.simulation.seed}:sample'"
    )
    for result in report.results:
        lines.append(
            f"labels {result.labels}: {LABEL_SETS[result.labels]}; "
            f"{_number(result.relevant_per_user, 1)} relevant posts per sampled user"
        )
    lines.append("world: " + ", ".join(f"{name}={value}" for name, value in report.world.items()))
    return lines


def format_table(result: LabelResults) -> str:
    header = (
        f"| feed | users | NDCG@{K} | ÷ chronological (95% CI) | hit@{K} | distinct authors top {DIVERSITY_K} "
        f"| max posts/author top {DIVERSITY_K} | users > {AUTHOR_LIMIT_TOP10}/author | OON share top {K} "
        "| feed length |"
    )
    rows = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for feed in result.feeds:
        ratio = _number(feed.ndcg_ratio, 2)
        if feed.ndcg_ratio_interval and feed.name != CHRONOLOGICAL:
            low, high = feed.ndcg_ratio_interval
            ratio += f" ({low:.2f}–{high:.2f})"
        rows.append(
            f"| {feed.name} | {feed.users} | {_number(feed.ndcg)} | {ratio} | {_number(feed.hit_rate)} "
            f"| {_number(feed.distinct_share)} | {feed.max_per_author if feed.max_per_author is not None else '–'} "
            f"| {feed.users_over_author_limit} | {_number(feed.out_of_network_share)} "
            f"| {_number(feed.mean_length, 1)} |"
        )
    return "\n".join(rows)
