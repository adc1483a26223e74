"""The ranking, explain and trending queries on two shards (nova_sharded) give
what they give on one server, on the same generated worlds: the Distributed
tables spread the rows by their sharding keys, and every subquery of a sharded
table is GLOBAL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.retention import active_partition_ids, enforce_events_retention
from ranking.candidates import fetch_post_state
from ranking.service import RankedFeed, rank_feed
from ranking.trending import fetch_trending
from tests.cluster.conftest import SERVERS, SHARDED
from tests.cluster.test_cluster_writes import INSERT_SQL, event_block
from tests.ranking.test_agreement import PROFILES, write
from tests.ranking.worlds import NOW, USER, generated_world

pytestmark = [pytest.mark.requires_cluster, pytest.mark.requires_clickhouse]


def summary(feed: RankedFeed) -> tuple:
    return (feed.cold_start, [i.post_id for i in feed.items], [(d.post_id, d.reason) for d in feed.dropped])


@pytest.mark.parametrize("seed", [1, 2])
def test_rank_feed_on_two_shards_equals_single_node(local_cluster, cluster_db, world_db, seed: int) -> None:
    database = cluster_db(SHARDED)
    sharded = local_cluster.client("ch1", SHARDED, database)
    world, deleted = generated_world(seed)
    write(world_db, world, deleted)
    write(sharded, world, deleted)  # through the Distributed tables, as the consumers write

    for table in ("posts", "follows", "events"):  # both shards hold part of each table
        [(total,)] = sharded.execute(f"SELECT count() FROM {table}")
        parts = [
            local_cluster.client(s, SHARDED, database).execute(f"SELECT count() FROM {table}_local")[0][0]
            for s in SERVERS
        ]
        assert sum(parts) == total and min(parts) > 0, (table, parts)

    for user_id in (USER, 2, 3, 7):
        for params in PROFILES:
            single, spread = rank_feed(user_id, NOW, params, world_db), rank_feed(user_id, NOW, params, sharded)
            assert summary(spread) == summary(single), (user_id, params.name)
            assert [i.score for i in spread.items] == pytest.approx([i.score for i in single.items], abs=1e-9)
    assert fetch_trending(sharded, NOW, 48, 50) == fetch_trending(world_db, NOW, 48, 50)
    for post_id in range(1, 60):
        assert fetch_post_state(sharded, USER, post_id) == fetch_post_state(world_db, USER, post_id), post_id


def test_retention_drops_old_months_on_every_shard(local_cluster, cluster_db) -> None:
    database = cluster_db(SHARDED)
    sharded = local_cluster.client("ch1", SHARDED, database)
    sharded.execute(INSERT_SQL, event_block(0, size=100))  # November 2026, on both shards (by user_id)
    old = [(*row[:5], row[5] - timedelta(days=400), *row[6:]) for row in event_block(100, size=100)]
    sharded.execute(INSERT_SQL, old)  # October 2025

    def months(server: str) -> set[str]:
        client = local_cluster.client(server, SHARDED, database)
        return set(active_partition_ids(client, "events_local"))

    assert all(months(server) == {"202510", "202611"} for server in SERVERS)
    now = NOW + timedelta(days=10)
    assert enforce_events_retention(sharded, now, 90, SHARDED.cluster, database) == ["202510"]
    assert all(months(server) == {"202611"} for server in SERVERS)
    assert enforce_events_retention(sharded, now, 90, SHARDED.cluster, database) == []
