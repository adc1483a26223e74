"""ClickHouse cluster benchmark (issue 16): the cost of replication and distribution
on the local cluster (`make cluster-up`: ZooKeeper, servers ch1 and ch2).

    .venv/bin/python bench/cluster.py [--rows 300000] [--batch 10000] [--users 3000]
        [--posts 20000] [--events 200000] [--repeats 20] [--seed 10]

Everything runs against ch1 in one run, so the topologies share the server, the
machine and the moment; the databases nova_bench_cl_* are dropped and rebuilt:
1. ingest: --rows events in --batch blocks through `events` (as the consumers
   insert, with the cluster's insert settings) into a single-node database on
   ch1, into nova_replicated (Distributed over ch1 and ch2, synchronous: the
   insert returns once a replica has the block; then the time until ch2 holds
   every row) and into nova_sharded (rows split by user_id over ch1 and ch2);
2. rank_feed: the world of bench/worldgen.py (probe users with 100 to 2,000
   followees) written into a single-node database on ch1 and into nova_sharded;
   per probe user 3 warm-up calls, then --repeats timed calls on each: P50/P95 of
   RankedFeed.total_seconds (statistics.median/quantiles), and whether both
   topologies rank the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from benchenv import ROOT, bench_env

sys.path.insert(0, str(ROOT))

from worldgen import build_world

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CH1_PORT, CH2_PORT = int(os.environ.get("NOVA_CH1_TCP_PORT", 59101)), int(os.environ.get("NOVA_CH2_TCP_PORT", 59102))
WARMUP = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--likes", type=int, default=20_000)
    parser.add_argument("--comments", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    if not 10_000 <= args.rows <= 2_000_000 or not 100 <= args.batch <= args.rows:
        parser.error("--rows must be in [10,000, 2,000,000] and --batch in [100, --rows] (bounded load)")
    if not (2_500 <= args.users <= 20_000 and 1_000 <= args.posts <= 200_000 and 10_000 <= args.events <= 1_000_000):
        parser.error("--users in [2,500, 20,000], --posts in [1,000, 200,000], --events in [10,000, 1,000,000]")
    return args


ARGS = parse_args()
os.environ.update(bench_env(LOG_LEVEL="WARNING"))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from nova.clickhouse import make_client  # noqa: E402
from pipeline.clickhouse_migrations import MigrationRunner, Topology  # noqa: E402
from pipeline.event_schema import ROW_COLUMNS  # noqa: E402
from ranking.params import RankingParams  # noqa: E402
from ranking.service import rank_feed  # noqa: E402
from ranking.world import World, write_world  # noqa: E402

SINGLE = Topology()
REPLICATED = Topology("nova_replicated", "/clickhouse/tables/replicated/{database}/{table}")
SHARDED = Topology("nova_sharded")
INSERT_SQL = f"INSERT INTO events ({', '.join(ROW_COLUMNS)}, _inserted_at) VALUES"


def say(text: str = "") -> None:
    print(text, flush=True)


def client(topology: Topology, database: str, port: int = CH1_PORT):
    config = dataclasses.replace(
        settings.CLICKHOUSE, port=port, database=database, cluster=topology.cluster, replica_path=topology.replica_path
    )
    return make_client(config, settings={"max_execution_time": 60})


def fresh_database(topology: Topology, name: str) -> str:
    database = f"nova_bench_cl_{name}"
    admin = client(topology, "default")
    admin.execute(f"DROP DATABASE IF EXISTS `{database}`{topology.on_cluster()}")
    MigrationRunner(client(topology, database), admin, database, settings.CLICKHOUSE_SQL_DIR, topology).apply()
    return database


def event_rows(count: int) -> list[tuple]:
    start = (NOW - timedelta(days=1)).replace(tzinfo=None)
    rows = []
    for i in range(count):
        ts = start + timedelta(milliseconds=i * 10)
        rows.append(
            (
                uuid.uuid4(),
                1 + i % 5_000,
                1 + i % 50_000,
                1 + i % 997,
                ("impression", "click", "like")[i % 3],
                ts,
                ts,
                int(ts.timestamp() * 1000),
                0,
                i % 20,
                "feed",
                "bench",
                i % 6,
                i,
                0,
                ts,
            )
        )
    return rows


def time_ingest(topology: Topology, name: str, rows: list[tuple]) -> dict[str, float]:
    database = fresh_database(topology, name)
    writer = client(topology, database)
    started = time.perf_counter()
    for first in range(0, len(rows), ARGS.batch):
        writer.execute(INSERT_SQL, rows[first : first + ARGS.batch])
    inserted = time.perf_counter() - started
    result = {"seconds": inserted, "rows_per_s": len(rows) / inserted}
    if topology is REPLICATED:  # until the other replica holds every row
        other = client(topology, database, CH2_PORT)
        while other.execute("SELECT count() FROM events_local")[0][0] < len(rows):
            time.sleep(0.05)
        result["replicated_s"] = time.perf_counter() - started
    return result


def time_ranking(topology: Topology, database: str, probes: dict[int, int]) -> dict[int, tuple]:
    runner = client(topology, database)
    results = {}
    for followees, user_id in sorted(probes.items()):
        for _ in range(WARMUP):
            rank_feed(user_id, NOW, RankingParams(), runner)
        totals, feed = [], None
        ranked = []
        for _ in range(ARGS.repeats):
            feed = rank_feed(user_id, NOW, RankingParams(), runner)
            totals.append(feed.total_seconds)
            ranked = [i.post_id for i in feed.items]
        results[followees] = (statistics.median(totals), statistics.quantiles(totals, n=20)[-1], ranked)
    return results


def main() -> None:
    started_at = datetime.now(UTC)
    version = client(SINGLE, "default").execute("SELECT version()")[0][0]
    say(
        f"ClickHouse {version} on ch1 :{CH1_PORT} and ch2 :{CH2_PORT}; {os.cpu_count()} CPUs; "
        f"{started_at:%Y-%m-%d %H:%M} UTC; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    rows = event_rows(ARGS.rows)
    say(f"\n## ingest: {ARGS.rows:,} events in blocks of {ARGS.batch:,} through `events`\n")
    say("| topology | insert s | rows/s | all rows on the 2nd replica after |")
    say("|---|---|---|---|")
    for topology, name in ((SINGLE, "single"), (REPLICATED, "replicated"), (SHARDED, "sharded")):
        result = time_ingest(topology, f"ingest_{name}", rows)
        replicated = f"{result['replicated_s']:.2f} s" if "replicated_s" in result else "-"
        say(f"| {topology.name} | {result['seconds']:.2f} | {result['rows_per_s']:,.0f} | {replicated} |")

    world, probes, source = build_world(ARGS, NOW)
    event_chunks = list(source.chunks(ARGS.events))  # the same events for both topologies
    databases = {}
    for topology, name in ((SINGLE, "rank_single"), (SHARDED, "rank_sharded")):
        databases[topology] = database = fresh_database(topology, name)
        writer = client(topology, database)
        write_world(writer, world)
        for chunk in event_chunks:
            write_world(writer, World(events=chunk))
    single = time_ranking(SINGLE, databases[SINGLE], probes)
    sharded = time_ranking(SHARDED, databases[SHARDED], probes)
    say(
        f"\n## rank_feed: {ARGS.users:,} users, {ARGS.posts:,} posts, {ARGS.events:,} events (seed {ARGS.seed}); "
        f"{ARGS.repeats} calls per user after {WARMUP} warm-up calls\n"
    )
    say("| followees | single-node P50 / P95 ms | nova_sharded P50 / P95 ms | same feed |")
    say("|---|---|---|---|")
    for followees in sorted(single):
        (p50, p95, items), (s50, s95, s_items) = single[followees], sharded[followees]
        say(
            f"| {followees:,} | {p50 * 1000:.0f} / {p95 * 1000:.0f} | {s50 * 1000:.0f} / {s95 * 1000:.0f} | "
            f"{'yes' if items == s_items else 'NO'} |"
        )
    say(
        f"\ndone in {(datetime.now(UTC) - started_at).total_seconds():.0f} s; "
        f"load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
