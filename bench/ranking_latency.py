"""Ranking latency benchmark (issue 10): `ranking.service.rank_feed` on a generated
world, on the local ClickHouse (make services).

    .venv/bin/python bench/ranking_latency.py [--users 10000] [--posts 100000]
        [--events 1000000] [--likes 200000] [--comments 50000] [--seed 10]
        [--repeats 30] [--keep] [--database nova_bench_ranking] [--max-minutes 15]

Target (issue 10): on 10,000 users, 100,000 posts and 1,000,000 events, rank_feed
for a user with 500 followees has P95 ≤ 100 ms (query plus Python post-processing);
how P50/P95 grow from 100 to 2,000 followees; ClickHouse's share of the time.

Own namespace, never dev data: the ClickHouse database --database (dropped,
recreated and migrated as tests/conftest.py does, unless --keep finds one built
with the same arguments) and, for the fixed-overhead measure, <database>_empty
(migrated, no rows).

1. a deterministic world (random.Random(--seed), fixed NOW) written with
   ranking.world.write_world: posts spread over the 7 days before NOW with
   Zipf-ish author activity; follows: probe users with exactly 100, 250, 500,
   1,000 and 2,000 followees, everyone else 10-60; likes, comments, a few mutes,
   1 % inactive users, 0.5 % deleted posts; events (impressions mostly, clicks,
   likes, shares, hides ...), all before NOW, 70 % of a user's actions on their
   followees' posts; then the merges the inserts started are waited for;
2. per probe user: 3 warm-up calls, then --repeats timed calls of
   rank_feed(user, NOW, RankingParams(), runner) on one client (as a web worker's
   the request path): P50/P95/max of RankedFeed.total_seconds, its query_seconds
   (fetch_candidates: the three round trips and building the candidate objects),
   the three round trips alone as the client sees them ("ClickHouse", with the
   driver's decoding) and as the server logs them (system.query_log,
   log_queries=1 on these queries), Python = total - round trips, and the shares;
3. the 500-followee user's three queries one by one (user_context,
   user_post_flags, feed_candidates, bound as ranking.candidates binds them),
   timed client side and server side (system.query_log, log_queries=1), and
   the same queries on the empty database: the server's fixed cost per query
   (parse, analysis, pipeline set-up), whatever the data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from benchenv import ROOT, bench_env  # bench/ is the script's own folder

sys.path.insert(0, str(ROOT))

from worldgen import PROBE_FOLLOWEES, build_world, world_arguments  # plain data: no Django needed

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DETAIL_FOLLOWEES = 500
WARMUP = 3
QUERIES = ("user_context", "user_post_flags", "feed_candidates")
RUN = uuid.uuid4().hex[:8]


def say(text: str = "") -> None:
    print(text, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    world_arguments(parser)
    parser.add_argument("--repeats", type=int, default=30, help="timed rank_feed calls per probe user")
    parser.add_argument(
        "--keep", action="store_true", help="reuse --database if it holds a world built with the same arguments"
    )
    parser.add_argument("--database", default="nova_bench_ranking")
    parser.add_argument(
        "--max-minutes", type=float, default=15.0, help="stop timing (and report what was measured) after this long"
    )
    args = parser.parse_args()
    if not 2 * max(PROBE_FOLLOWEES) < args.users <= 200_000:
        parser.error(f"--users must be in ({2 * max(PROBE_FOLLOWEES)}, 200,000]")
    if not 100 <= args.posts <= 2_000_000 or not 10_000 <= args.events <= 5_000_000:
        parser.error("--posts must be in [100, 2,000,000], --events in [10,000, 5,000,000] (bounded load)")
    if not 0 <= args.likes <= 2_000_000 or not 0 <= args.comments <= 2_000_000:
        parser.error("--likes and --comments must be in [0, 2,000,000]")
    if not 1 <= args.repeats <= 1_000:
        parser.error("--repeats must be in [1, 1,000]")
    if not args.database.startswith("nova_bench"):
        parser.error("--database must start with nova_bench (never dev or test data)")
    return args


ARGS = parse_args()
os.environ.update(bench_env(CLICKHOUSE_DATABASE=ARGS.database, LOG_LEVEL="WARNING"))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from nova.clickhouse import make_client  # noqa: E402
from pipeline.clickhouse_migrations import MigrationRunner  # noqa: E402
from ranking.candidates import _windows, candidate_params, fetch_user_context, load_query  # noqa: E402
from ranking.params import RankingParams  # noqa: E402
from ranking.service import rank_feed  # noqa: E402
from ranking.world import World, write_world  # noqa: E402

# the server stops a query after this long (web workers use settings.CLICKHOUSE.query_timeout)
QUERY_SETTINGS: dict[str, object] = {"max_execution_time": 60}


class WorldMeta(TypedDict):
    """What bench_meta records about the world a database holds."""

    config: dict[str, object]  # world_config()
    probes: dict[str, int]  # followee count (as a JSON key) -> user id
    built_at: str


@dataclass
class ProbeTiming:
    """One probe user's timed rank_feed calls (seconds, one value per call) and its last feed."""

    totals: list[float]
    queries: list[float]
    executes: list[float]
    servers: list[float]
    candidates: int
    in_network: int
    out_of_network: int
    feed: int
    cold_start: bool


@dataclass
class QueryTiming:
    """One query timed alone: client seconds per run, and the server's view from system.query_log."""

    client: list[float]
    server_ms: list[float]
    read_rows: int
    memory: int
    rows: int


# ------------------------------------------------------------------ the world
# (bench/worldgen.py)


def world_config(args: argparse.Namespace) -> dict[str, object]:
    return {
        "users": args.users,
        "posts": args.posts,
        "events": args.events,
        "likes": args.likes,
        "comments": args.comments,
        "seed": args.seed,
        "now": NOW.isoformat(),
        "generator": 1,
    }


def load_meta(admin, database: str) -> WorldMeta | None:
    exists = admin.execute(
        "SELECT count() FROM system.tables WHERE database = %(d)s AND name = 'bench_meta'", {"d": database}
    )[0][0]
    if not exists:
        return None
    rows = admin.execute(f"SELECT value FROM `{database}`.bench_meta WHERE key = 'world'")
    return json.loads(rows[0][0]) if rows else None


def migrate(admin, database: str) -> None:
    admin.execute(f"DROP DATABASE IF EXISTS `{database}`")
    MigrationRunner(
        make_client(settings.CLICKHOUSE, database=database), admin, database, settings.CLICKHOUSE_SQL_DIR
    ).apply()


def prepare_world(args: argparse.Namespace, deadline: float) -> dict[int, int]:
    """The probe users ({followee count: user id}) of a world in args.database."""
    admin = make_client(settings.CLICKHOUSE, database="default")
    config = world_config(args)
    meta = load_meta(admin, args.database) if args.keep else None
    if meta is not None and meta.get("config") == config:
        say(f"--keep: reusing {args.database} (built {meta['built_at']})")
        return {int(k): v for k, v in meta["probes"].items()}
    if args.keep:
        say(f"--keep: {args.database} missing or built with other arguments: rebuilding")
    migrate(admin, args.database)
    client = make_client(settings.CLICKHOUSE, settings=QUERY_SETTINGS)
    started = time.perf_counter()
    world, probes, source = build_world(args, NOW)
    say(
        f"world: {len(world.users):,} users, {len(world.posts):,} posts, {len(world.follows):,} follows, "
        f"{len(world.likes):,} likes, {len(world.comments):,} comments, {len(world.mutes):,} mutes "
        f"generated in {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    write_world(client, world)
    del world
    written = 0
    for chunk in source.chunks(args.events):
        write_world(client, World(events=chunk))
        written += len(chunk)
        if time.monotonic() > deadline:
            raise SystemExit(f"time limit reached while writing events ({written:,} written)")
    say(f"written (with {args.events:,} events) in {time.perf_counter() - started:.1f} s")
    wait_for_merges(client, args.database)
    client.execute("CREATE TABLE bench_meta (key String, value String) ENGINE = TinyLog")
    meta = {
        "config": config,
        "probes": {str(k): v for k, v in probes.items()},
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    client.execute("INSERT INTO bench_meta (key, value) VALUES", [("world", json.dumps(meta))])
    return probes


def wait_for_merges(client, database: str, timeout: float = 180) -> None:
    """Let the inserts' merges finish: timed calls must not compete with them."""
    started = time.monotonic()
    while client.execute("SELECT count() FROM system.merges WHERE database = %(d)s", {"d": database})[0][0]:
        if time.monotonic() - started > timeout:
            say(f"merges still running after {timeout:.0f} s: timing anyway")
            break
        time.sleep(1)
    time.sleep(1)


def describe_world(client, database: str) -> None:
    rows = client.execute(
        "SELECT table, sum(rows), count() FROM system.parts WHERE database = %(d)s AND active "
        "GROUP BY table ORDER BY table",
        {"d": database},
    )
    say("tables (rows, active parts): " + ", ".join(f"{t} {r:,} ({p})" for t, r, p in rows))


# ------------------------------------------------------------------ timing
def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


class TimedRunner:
    """The client as rank_feed sees it (a QueryRunner), timing each execute
    (round trip, including the driver's decoding) and tagging it with a query id,
    so the server's own duration can be read from system.query_log afterwards."""

    def __init__(self, client, tag: str) -> None:
        self.client, self.tag = client, tag
        self.calls: list[list[tuple[str, float]]] = []  # per rank_feed call: (query id, seconds)

    def start_call(self) -> None:
        self.calls.append([])

    def execute(self, query: str, params=None):
        query_id = f"bench-{RUN}-{self.tag}-{len(self.calls)}-{len(self.calls[-1])}"
        started = time.perf_counter()
        rows = self.client.execute(query, params, query_id=query_id, settings={**QUERY_SETTINGS, "log_queries": 1})
        self.calls[-1].append((query_id, time.perf_counter() - started))
        return rows


def server_seconds(client, query_ids: list[str]) -> dict[str, float]:
    """query_duration_ms (whole milliseconds) of finished queries, by query id."""
    client.execute("SYSTEM FLUSH LOGS")
    found: dict[str, float] = {}
    for i in range(0, len(query_ids), 500):
        found.update(
            (query_id, ms_ / 1000)
            for query_id, ms_ in client.execute(
                "SELECT query_id, query_duration_ms FROM system.query_log "
                "WHERE type = 2 AND event_date >= yesterday() AND query_id IN %(ids)s",
                {"ids": tuple(query_ids[i : i + 500])},
            )
        )
    return found


def time_probe(client, user_id: int, repeats: int, deadline: float) -> ProbeTiming:
    """rank_feed's own total and query_seconds; the three executes' round trips
    (client side) and their server durations (query_log), per call."""
    params = RankingParams()
    runner = TimedRunner(client, f"probe{user_id}")
    for _ in range(WARMUP):
        runner.start_call()
        rank_feed(user_id, NOW, params, runner)
    runner.calls.clear()
    totals: list[float] = []
    queries: list[float] = []
    feed = None
    for _ in range(repeats):
        if time.monotonic() > deadline:
            break
        runner.start_call()
        feed = rank_feed(user_id, NOW, params, runner)
        totals.append(feed.total_seconds)
        queries.append(feed.query_seconds)
    assert feed is not None
    server = server_seconds(client, [query_id for call in runner.calls for query_id, _ in call])
    executes = [sum(seconds for _, seconds in call) for call in runner.calls]
    servers = [sum(server.get(query_id, float("nan")) for query_id, _ in call) for call in runner.calls]
    candidates = [*(item.candidate for item in feed.items), *(d.candidate for d in feed.dropped)]
    out_of_network = sum(1 for c in candidates if c.out_of_network)
    return ProbeTiming(
        totals=totals,
        queries=queries,
        executes=executes,
        servers=servers,
        candidates=len(candidates),
        in_network=len(candidates) - out_of_network,
        out_of_network=out_of_network,
        feed=len(feed.items),
        cold_start=feed.cold_start,
    )


def query_bindings(client, user_id: int) -> dict[str, dict]:
    params = RankingParams()
    context = fetch_user_context(client, user_id, NOW, params)
    bound = _windows(user_id, NOW, params)
    return {
        "user_context": bound,
        "user_post_flags": bound,
        "feed_candidates": candidate_params(user_id, NOW, params, context),
    }


def time_queries(client, bindings: dict[str, dict], repeats: int, tag: str, deadline: float) -> dict[str, QueryTiming]:
    """Each query alone, `repeats` times (after one untimed run): client-side
    seconds, and the server's query_duration_ms and rows read from system.query_log."""
    ids: dict[str, list[str]] = {name: [] for name in QUERIES}
    client_seconds: dict[str, list[float]] = {name: [] for name in QUERIES}
    result_rows: dict[str, int] = {}
    for name in QUERIES:
        client.execute(load_query(name), bindings[name])
    for i in range(repeats):
        if time.monotonic() > deadline:
            break
        for name in QUERIES:
            query_id = f"bench-{RUN}-{tag}-{name}-{i}"
            started = time.perf_counter()
            rows = client.execute(
                load_query(name), bindings[name], query_id=query_id, settings={**QUERY_SETTINGS, "log_queries": 1}
            )
            client_seconds[name].append(time.perf_counter() - started)
            ids[name].append(query_id)
            result_rows[name] = len(rows)
    client.execute("SYSTEM FLUSH LOGS")
    out: dict[str, QueryTiming] = {}
    for name in QUERIES:
        logged = client.execute(
            "SELECT query_duration_ms, read_rows, memory_usage FROM system.query_log "
            "WHERE type = 2 AND query_id IN %(ids)s AND event_date >= yesterday()",
            {"ids": tuple(ids[name])},
        )
        out[name] = QueryTiming(
            client=client_seconds[name],
            server_ms=[row[0] for row in logged],
            read_rows=max((row[1] for row in logged), default=0),
            memory=max((row[2] for row in logged), default=0),
            rows=result_rows.get(name, 0),
        )
    return out


# ------------------------------------------------------------------ report
def code_version() -> str:
    """The commit, and a digest of the three queries as this process loaded them
    (infra/clickhouse/queries/ changes while other work goes on)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    digest = hashlib.sha256("".join(load_query(name) for name in QUERIES).encode()).hexdigest()[:10]
    return f"commit {commit or '?'}, queries sha256 {digest}"


def machine() -> str:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {total_kib / 1024**2:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}, load average {load}"
    )


def probe_table(results: dict[int, ProbeTiming], users: dict[int, int]) -> list[str]:
    """total: rank_feed's total_seconds; query_seconds: its fetch_candidates part (three
    round trips plus building the candidate objects); ClickHouse: the three round trips
    as the client sees them (with the driver's decoding); server: query_log's durations;
    Python: total minus the three round trips. Shares: of the summed totals."""
    lines = [
        "| followees | user | candidates (in / out of network) | total P50 | total P95 | total max "
        "| query_seconds P50 | ClickHouse P50 | ClickHouse P95 | server P50 | Python P50 "
        "| ClickHouse share | server share | calls |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for followees, result in sorted(results.items()):
        totals, executes, servers = result.totals, result.executes, result.servers
        python = [t - e for t, e in zip(totals, executes, strict=True)]
        lines.append(
            f"| {followees:,} | {users[followees]} | {result.candidates:,} ({result.in_network:,} / "
            f"{result.out_of_network:,}) | {ms(percentile(totals, 0.5))} ms | **{ms(percentile(totals, 0.95))} ms** "
            f"| {ms(max(totals))} ms | {ms(percentile(result.queries, 0.5))} ms "
            f"| {ms(percentile(executes, 0.5))} ms | {ms(percentile(executes, 0.95))} ms "
            f"| {ms(percentile(servers, 0.5))} ms | {ms(percentile(python, 0.5))} ms "
            f"| {sum(executes) / sum(totals):.0%} | {sum(servers) / sum(totals):.0%} | {len(totals)} |"
        )
    return lines


def query_table(loaded: dict[str, QueryTiming], empty: dict[str, QueryTiming] | None) -> list[str]:
    lines = [
        "| query | rows out | rows read (server) | client P50 | client P95 | server P50 | server P95 "
        "| server P50 on empty tables |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in QUERIES:
        result = loaded[name]
        server = result.server_ms or [float("nan")]
        empty_ms = f"{percentile(empty[name].server_ms, 0.5):.0f} ms" if empty and empty[name].server_ms else "-"
        lines.append(
            f"| {name} | {result.rows:,} | {result.read_rows:,} | {ms(percentile(result.client, 0.5))} ms "
            f"| {ms(percentile(result.client, 0.95))} ms | {percentile(server, 0.5):.0f} ms "
            f"| {percentile(server, 0.95):.0f} ms | {empty_ms} |"
        )
    total = [sum(v) for v in zip(*(loaded[name].client for name in QUERIES), strict=True)]
    lines.append(f"| all three | | | {ms(percentile(total, 0.5))} ms | {ms(percentile(total, 0.95))} ms | | | |")
    return lines


def main() -> None:
    started_at = datetime.now(UTC)
    deadline = time.monotonic() + ARGS.max_minutes * 60
    version = make_client(settings.CLICKHOUSE, database="default").execute("SELECT version()")[0][0]
    say(f"machine: {machine()}; ClickHouse {version}; {started_at:%Y-%m-%d %H:%M} UTC")
    probes = prepare_world(ARGS, deadline)
    client = make_client(settings.CLICKHOUSE, settings=QUERY_SETTINGS)
    describe_world(client, ARGS.database)
    say(f"probe users (followees: user id): {probes}; now = {NOW.isoformat()}; {code_version()}")

    results: dict[int, ProbeTiming] = {}
    for followees, user_id in sorted(probes.items()):
        if time.monotonic() > deadline:
            say(f"time limit: {followees} followees and above not measured")
            break
        results[followees] = result = time_probe(client, user_id, ARGS.repeats, deadline)
        say(
            f"  {followees:>5} followees (user {user_id}): {result.candidates:,} candidates, "
            f"total P50 {ms(percentile(result.totals, 0.5))} ms P95 {ms(percentile(result.totals, 0.95))} ms, "
            f"ClickHouse round trips P50 {ms(percentile(result.executes, 0.5))} ms"
        )

    detail = None
    if DETAIL_FOLLOWEES in probes and time.monotonic() < deadline:
        bindings = query_bindings(client, probes[DETAIL_FOLLOWEES])
        detail = time_queries(client, bindings, ARGS.repeats, "loaded", deadline)
        empty_db = f"{ARGS.database}_empty"
        migrate(make_client(settings.CLICKHOUSE, database="default"), empty_db)
        empty_client = make_client(settings.CLICKHOUSE, database=empty_db, settings=QUERY_SETTINGS)
        empty = time_queries(empty_client, bindings, ARGS.repeats, "empty", deadline)

    say()
    say(
        f"## rank_feed, {ARGS.users:,} users / {ARGS.posts:,} posts / {ARGS.events:,} events (seed {ARGS.seed}), "
        f"{ARGS.repeats} calls per user after {WARMUP} warm-up calls"
    )
    say()
    for line in probe_table(results, probes):
        say(line)
    if detail:
        say()
        say(
            f"## the three queries alone, {DETAIL_FOLLOWEES}-followee user {probes[DETAIL_FOLLOWEES]} "
            f"(server: system.query_log query_duration_ms; empty tables: same queries on {ARGS.database}_empty)"
        )
        say()
        for line in query_table(detail, empty):
            say(line)
    say()
    say(
        f"done in {(datetime.now(UTC) - started_at).total_seconds():.0f} s; "
        f"load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
