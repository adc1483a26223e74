"""Offline evaluation end to end: a small simulated world through the real
ClickHouse tables and the real ranker, in a database of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from ranking.evaluation import runner
from ranking.evaluation.simulation import SimulationParams, simulate
from ranking.params import RankingParams

# small enough for a few seconds per run on 18.16, large enough that every feed has candidates
SMALL = SimulationParams(seed=7, users=100, history_days=3.0)
PROFILES = (RankingParams(),)
SAMPLE = 5
FEEDS = {"ranked:default", runner.ENGAGEMENT_ONLY.name, runner.CHRONOLOGICAL}


def test_simulation_repeats_with_its_seed_and_keeps_the_future_out_of_the_world() -> None:
    first, second = simulate(SMALL), simulate(SMALL)
    assert first.world == second.world and first.labels == second.labels
    assert simulate(SimulationParams(seed=8, users=100, history_days=3.0)).labels != first.labels
    assert all(p.created_at <= SMALL.now for p in first.world.posts)
    assert all(p.created_at > SMALL.now for p in first.future_posts)
    assert all(e.ts < SMALL.now for e in first.world.events)
    for user_id, labels in first.labels.items():
        # a post met before `now` is an impression, never a label as well
        assert not set(labels) & first.hidden.met_before_now[user_id]
        assert all(gain > 0 for gain in labels.values())
    assert first.summary()["users_with_rankable_labels"] >= SAMPLE


@pytest.fixture
def eval_database() -> Iterator[str]:
    name = f"nova_eval_t{uuid.uuid4().hex[:10]}"
    yield name
    runner.drop_database(settings.CLICKHOUSE, name)


def evaluate(database: str) -> runner.EvaluationReport:
    client = runner.prepare_database(settings.CLICKHOUSE, database, settings.CLICKHOUSE_SQL_DIR)
    try:
        return runner.run_evaluation(client, simulate(SMALL), profiles=PROFILES, sample_size=SAMPLE, resamples=200)
    finally:
        client.disconnect()


@pytest.mark.requires_clickhouse
def test_evaluation_runs_end_to_end_and_repeats_with_its_seed(eval_database: str) -> None:
    report = evaluate(eval_database)

    assert len(report.sampled_users) == SAMPLE
    assert {r.labels for r in report.results} == set(runner.LABEL_SETS)
    for result in report.results:
        assert {f.name for f in result.feeds} == FEEDS
        for feed in result.feeds:
            assert feed.users == SAMPLE
            for value in (feed.ndcg, feed.hit_rate, feed.distinct_share, feed.out_of_network_share):
                assert value is not None and 0.0 <= value <= 1.0, (result.labels, feed)
            assert feed.mean_length and feed.mean_length > 0
        # the ranked feeds keep the product's author rule; the baseline has none to keep
        for name in ("ranked:default", runner.ENGAGEMENT_ONLY.name):
            max_per_author = result.feed(name).max_per_author
            assert max_per_author is not None and max_per_author <= runner.AUTHOR_LIMIT_TOP10
        assert result.feed(runner.CHRONOLOGICAL).out_of_network_share == 0.0
        assert result.feed(runner.CHRONOLOGICAL).ndcg_ratio == 1.0
    table = runner.format_table(report.labels(runner.NEXT))
    assert all(f"| {name} |" in table for name in FEEDS)
    assert any(line.startswith("seed: 7") for line in runner.format_parameters(report))

    # from scratch again (database dropped and migrated, world rewritten): the same figures
    assert evaluate(eval_database) == report


def test_the_service_database_is_refused() -> None:
    with pytest.raises(ValueError, match="service"):
        runner.prepare_database(settings.CLICKHOUSE, settings.CLICKHOUSE.database, settings.CLICKHOUSE_SQL_DIR)
    with pytest.raises(ValueError, match="plain database name"):
        runner.prepare_database(settings.CLICKHOUSE, "x`; DROP DATABASE nova", settings.CLICKHOUSE_SQL_DIR)
