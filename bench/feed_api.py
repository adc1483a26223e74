"""Feed API benchmark (issue 11): GET /api/v1/feed/ through gunicorn started as
`make run` starts it (the Procfile's web line), on the ranking benchmark's world
(bench/worldgen.py: 10,000 users, 100,000 posts, 1,000,000 events by default),
anchored at the current time, in ClickHouse and, with the same ids, in Postgres.

    .venv/bin/python bench/feed_api.py [--phases throughput,miss,hitrate,freshness]
        [--keep] [--seconds 20] [--connections 16] [--max-minutes 45] ...   (see --help)

Targets and what each phase measures:
1. throughput: cached first pages, >= 1,000 requests/s with P99 <= 50 ms. wrk
   (a Lua script rotating over --tokens users' tokens) for --seconds each, in
   one run side by side: (a) GET /api/v1/feed/ with warm caches; (b) the
   ceiling, a plain Django view reading the same Redis keys (snapshot GET, posts
   MGET), with the feed's token authentication and (b0) without it; (c) a naive
   DRF view building the page from Postgres per request. The feed must reach
   70 % of the ceiling's requests/s and 5x the naive view's. The comparison
   views live in bench/feed_api_site.py (served with
   DJANGO_SETTINGS_MODULE=bench.feed_api_settings), never in the product's URLs.
   wrk and gunicorn share the machine's cores: CPU per process group is reported.
2. miss: a first page with no snapshot (invalidated before each request), over
   HTTP, for the probe users with --miss-followees followees: P50/P95 and the
   source (ranked or fallback) at CLICKHOUSE_QUERY_TIMEOUT --query-timeout (the
   product default, 0.5 s), then again on a server with --high-timeout (the
   ranking's own latency). Target P95 <= 150 ms.
3. hitrate: --active-users active users requesting with Zipf(--zipf) weights.
   The last hour's activity is a first trace of --replay requests from that
   distribution, recorded in the feed's activity set as first pages record it.
   Warming on: a real Celery worker (the Procfile's worker line) runs
   feed.tasks.warm_feed_caches (its lock and time limits included), sent every
   FEED_WARM_INTERVAL_SECONDS as beat's schedule sends it, for --warm-minutes
   before the replay and during it. The replay is a second trace of --replay
   requests from the same distribution, sent by --replay-clients keep-alive
   clients. Hit rate = share of `source: cache` answers. Target >= 95 %.
   --hit-control also replays the trace with cold caches and no warming.
4. freshness: a followee POSTs /api/v1/posts/, the follower polls GET
   /api/v1/feed/ until the post is on the first page, --fresh-posts times while
   the follower's snapshot is cached: P50/P95. Target P95 <= 2 s.

Own namespaces, never dev data: Postgres database --database (created, migrated,
filled with COPY; dropped at the end unless --keep), ClickHouse database of the
same name (idem), Redis key prefix novabenchfeed<run> (deleted at the end),
Kafka topic prefix novabenchfeed (no topic is created), gunicorn on a free
loopback port (stopped at the end). Everything is bounded: wrk by --seconds,
HTTP calls by timeouts, phases by --max-minutes.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import itertools
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

from benchenv import (  # bench/ is the script's own folder
    ROOT,
    bench_env,
    commit,
    free_port,
    load_avg,
    machine,
    postgres,
    procfile_line,
    venv_path,
)

sys.path.insert(0, str(ROOT))

from worldgen import PROBE_FOLLOWEES, build_world, world_arguments  # plain data: no Django needed

RUN = uuid.uuid4().hex[:6]
PHASES = ("throughput", "miss", "hitrate", "freshness")
PAGE = 20


def say(text: str = "") -> None:
    print(text, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    world = world_arguments(parser)
    world.add_argument(
        "--database", default="nova_bench_feed", help="Postgres and ClickHouse database (must start with nova_bench)"
    )
    world.add_argument(
        "--keep",
        action="store_true",
        help="keep both databases at the end, and reuse them if built with the same arguments "
        "less than --keep-hours ago",
    )
    world.add_argument("--keep-hours", type=float, default=6.0)
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of " + ",".join(PHASES))
    parser.add_argument("--max-minutes", type=float, default=45.0, help="stop starting new steps after this long")
    load = parser.add_argument_group("1. throughput")
    load.add_argument("--seconds", type=int, default=20, help="each wrk run")
    load.add_argument(
        "--connections", default="8,16", help="wrk connections; a comma-separated list runs every target at each"
    )
    load.add_argument("--wrk-threads", type=int, default=1)
    load.add_argument("--tokens", type=int, default=200, help="users the wrk script rotates over")
    load.add_argument("--rounds", type=int, default=1, help="feed, ceiling, ceiling-noauth, naive: this many times")
    load.add_argument("--targets", default="feed,ceiling,ceiling-noauth,naive", help="which of them to run")
    miss = parser.add_argument_group("2. miss")
    miss.add_argument("--miss-followees", default="100,500,2000")
    miss.add_argument("--miss-samples", type=int, default=20, help="per user and timeout")
    miss.add_argument("--query-timeout", type=float, default=0.5, help="CLICKHOUSE_QUERY_TIMEOUT of the server")
    miss.add_argument("--high-timeout", type=float, default=5.0, help="second miss run's timeout (0: skip)")
    hit = parser.add_argument_group("3. hitrate")
    hit.add_argument("--active-users", type=int, default=2_000)
    hit.add_argument("--zipf", type=float, default=1.1)
    hit.add_argument("--replay", type=int, default=10_000, help="requests in each trace")
    hit.add_argument("--replay-clients", type=int, default=4)
    hit.add_argument(
        "--warm-minutes",
        type=float,
        default=5.0,
        help="the warm task runs on its schedule this long before the replay starts",
    )
    hit.add_argument("--hit-control", action="store_true", help="also replay with cold caches, no warming")
    fresh = parser.add_argument_group("4. freshness")
    fresh.add_argument("--fresh-posts", type=int, default=50)
    fresh.add_argument("--fresh-pairs", type=int, default=5, help="(follower, followee) pairs the posts rotate over")
    args = parser.parse_args()
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    args.miss_followees = [int(x) for x in args.miss_followees.split(",") if x.strip()]
    args.connections = [int(x) for x in args.connections.split(",") if x.strip()]
    args.targets = [x.strip() for x in args.targets.split(",") if x.strip()]
    if unknown := set(args.targets) - {"feed", "ceiling", "ceiling-noauth", "naive"}:
        parser.error(f"unknown targets: {sorted(unknown)}")
    if unknown := set(args.phases) - set(PHASES):
        parser.error(f"unknown phases: {sorted(unknown)}")
    if not set(args.miss_followees) <= set(PROBE_FOLLOWEES):
        parser.error(f"--miss-followees must be among {PROBE_FOLLOWEES}")
    if not 2 * max(PROBE_FOLLOWEES) < args.users <= 200_000:
        parser.error(f"--users must be in ({2 * max(PROBE_FOLLOWEES)}, 200,000]")
    if not 100 <= args.posts <= 2_000_000 or not 10_000 <= args.events <= 5_000_000:
        parser.error("--posts must be in [100, 2,000,000], --events in [10,000, 5,000,000]")
    if (
        not 1 <= args.seconds <= 120
        or not all(1 <= c <= 256 for c in args.connections)
        or not args.connections
        or not 1 <= args.wrk_threads <= 8
    ):
        parser.error("--seconds in [1, 120], --connections in [1, 256], --wrk-threads in [1, 8]")
    if not 1 <= args.tokens <= 2_000 or not 1 <= args.rounds <= 5:
        parser.error("--tokens in [1, 2,000], --rounds in [1, 5]")
    if not 1 <= args.miss_samples <= 200 or not 1 <= args.replay <= 100_000 or not 1 <= args.replay_clients <= 32:
        parser.error("--miss-samples in [1, 200], --replay in [1, 100,000], --replay-clients in [1, 32]")
    if not 10 <= args.active_users <= args.users // 2 or not 1 <= args.fresh_posts <= 1_000:
        parser.error("--active-users in [10, users/2], --fresh-posts in [1, 1,000]")
    if not args.database.startswith("nova_bench"):
        parser.error("--database must start with nova_bench (never dev or test data)")
    return args


ARGS = parse_args()
PREFIX = f"novabenchfeed{RUN}"
PG_PORT = os.environ.get("NOVA_PG_PORT", "55432")
SERVER_ENV = {
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PG_PORT}/{ARGS.database}",
    "CLICKHOUSE_DATABASE": ARGS.database,
    "REDIS_KEY_PREFIX": PREFIX,
    "KAFKA_TOPIC_PREFIX": "novabenchfeed",
    "DJANGO_DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "CLICKHOUSE_QUERY_TIMEOUT": str(ARGS.query_timeout),
    "CELERY_TASK_DEFAULT_QUEUE": PREFIX,  # this run's Celery queue on the shared Redis
}
os.environ.update(bench_env(**SERVER_ENV))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import DatabaseError, connection  # noqa: E402
from worlddb import CLICKHOUSE_SETTINGS, write_clickhouse, write_postgres  # noqa: E402

from feed import cache  # noqa: E402
from feed.read import read_feed  # noqa: E402
from nova import redis as nova_redis  # noqa: E402
from nova.clickhouse import make_client  # noqa: E402
from pipeline.clickhouse_migrations import MigrationRunner  # noqa: E402


class WorldMeta(TypedDict):
    """What bench_feed_meta and bench_meta record about the world the databases hold."""

    config: dict[str, object]  # world_config()
    now: str  # ISO time the world was generated for
    world_id: str
    probes: dict[str, int]  # followee count (as a JSON key) -> user id
    inactive: list[int]


class WrkRun(TypedDict):
    """One wrk run: feed_api_wrk.lua's BENCH_JSON summary, plus what the bench measured around it."""

    requests: int
    duration_us: int
    p50_us: float
    p95_us: float
    p99_us: float
    max_us: float
    status_errors: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    path: str
    rps: float
    cpu: dict[str, float]  # cores by group (CpuMeter)
    cpu_index: float
    spread: list[int]  # connections per gunicorn worker
    load_before: str
    load_after: str
    command: str
    name: str
    round: int
    rankings_during: int
    rewarmed: int
    connections: int


class ThroughputResult(TypedDict):
    runs: list[WrkRun]
    tokens: int
    cold: list[int]
    access_log_bytes: int


class MissSample(TypedDict):
    seconds: float
    status: int
    source: str | None
    breaker_before: str
    items: int


class MissResult(TypedDict):
    results: dict[float, dict[int, list[MissSample]]]  # CLICKHOUSE_QUERY_TIMEOUT -> followees -> samples
    users: dict[int, int]


class Replay(TypedDict):
    rows: list[tuple[int, str, float, int]]  # user, source, seconds, status
    seconds: float
    cpu: dict[str, float]


class HitSummary(TypedDict):
    requests: int
    sources: dict[str, int]
    hit_rate: float
    seconds: float
    p50: float
    p95: float
    p99: float
    warm_requests: int
    warm_hit_rate: float
    distinct_users: int


class WorkerRuns(TypedDict):
    """What the Celery worker's log says about the warm task's runs."""

    received: int
    succeeded: list[tuple[float, str]]  # seconds, result
    soft_time_limit: int
    failed: int
    skipped: int


class HitrateResult(TypedDict, total=False):
    warm_set: int
    trace_users: int
    alive_at_start: int
    coverage: list[tuple[float, int]]
    runs: WorkerRuns
    sent: int
    breaker: dict[str, int]
    ranking_failed: int
    warm: HitSummary
    control: HitSummary
    metrics: list[dict[str, float | None]]


class FreshRow(TypedDict, total=False):
    """One post: seen on the follower's first page after `seconds`, or why not (status, detail)."""

    ok: bool
    status: int
    detail: str
    seconds: float | None
    post: float  # the POST's own seconds
    polls: int
    sources: dict[str | None, int]


class FreshnessResult(TypedDict):
    rows: list[FreshRow]
    pairs: list[tuple[int, int]]


# ------------------------------------------------------------------ small helpers
def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


class Deadline:
    def __init__(self, minutes: float) -> None:
        self.at = time.monotonic() + minutes * 60

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0


# ------------------------------------------------------------------ the world, in ClickHouse and Postgres
def world_config() -> dict[str, object]:
    return {
        "users": ARGS.users,
        "posts": ARGS.posts,
        "events": ARGS.events,
        "likes": ARGS.likes,
        "comments": ARGS.comments,
        "seed": ARGS.seed,
        "generator": 1,
        "postgres": 1,
    }


def stored_meta() -> WorldMeta | None:
    """The world both databases hold (same world id in each), or None."""
    admin = make_client(settings.CLICKHOUSE, database="default")
    if not admin.execute(
        "SELECT count() FROM system.tables WHERE database = %(d)s AND name = 'bench_meta'", {"d": ARGS.database}
    )[0][0]:
        return None
    rows = admin.execute(f"SELECT value FROM `{ARGS.database}`.bench_meta WHERE key = 'world'")
    if not rows:
        return None
    meta = json.loads(rows[0][0])
    with postgres("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [ARGS.database]).fetchone():
            return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT value FROM bench_feed_meta WHERE key = 'world'")
            row = cursor.fetchone()
    except DatabaseError:  # no such table: not a world this bench wrote
        connection.close()
        return None
    return meta if row and json.loads(row[0]).get("world_id") == meta.get("world_id") else None


def prepare_world(deadline: Deadline) -> WorldMeta:
    meta = stored_meta() if ARGS.keep else None
    if meta is not None:
        age_h = (datetime.now(UTC) - datetime.fromisoformat(meta["now"])).total_seconds() / 3600
        if meta.get("config") == world_config() and age_h < ARGS.keep_hours:
            say(f"--keep: reusing {ARGS.database} (world of {meta['now']}, {age_h:.1f} h old)")
            return meta
        say(f"--keep: {ARGS.database} built with other arguments or {age_h:.1f} h old: rebuilding")
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    started = time.perf_counter()
    world, probes, source = build_world(ARGS, now)
    say(
        f"world: {len(world.users):,} users, {len(world.posts):,} posts, {len(world.follows):,} follows, "
        f"{len(world.likes):,} likes, {len(world.comments):,} comments, {len(world.mutes):,} mutes, "
        f"generated in {time.perf_counter() - started:.1f} s (now = {now.isoformat()})"
    )
    meta = {
        "config": world_config(),
        "now": now.isoformat(),
        "world_id": uuid.uuid4().hex,
        "probes": {str(k): v for k, v in probes.items()},
        "inactive": [u.id for u in world.users if not u.active],
    }

    # Postgres: the source of truth the API reads (tokens, hydration, fallback, writes)
    started = time.perf_counter()
    connection.close()
    with postgres("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{ARGS.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{ARGS.database}"')
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    counts = write_postgres(world, ARGS.seed + 1)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_feed_meta (key text PRIMARY KEY, value text NOT NULL)")
        cursor.execute("INSERT INTO bench_feed_meta VALUES ('world', %s)", [json.dumps(meta)])
    say(
        f"Postgres {ARGS.database}: "
        + ", ".join(f"{n:,} {t}" for t, n in counts.items())
        + f" in {time.perf_counter() - started:.1f} s (migrate + COPY + VACUUM ANALYZE)"
    )

    # ClickHouse: what the ranking reads, as CDC and the events consumer would have written it
    started = time.perf_counter()
    admin = make_client(settings.CLICKHOUSE, database="default")
    admin.execute(f"DROP DATABASE IF EXISTS `{ARGS.database}`")
    MigrationRunner(make_client(settings.CLICKHOUSE), admin, ARGS.database, settings.CLICKHOUSE_SQL_DIR).apply()
    client = make_client(settings.CLICKHOUSE, settings=CLICKHOUSE_SETTINGS)
    write_clickhouse(client, ARGS.database, world, source, ARGS.events, deadline.passed)
    del world
    client.execute("CREATE TABLE bench_meta (key String, value String) ENGINE = TinyLog")
    client.execute("INSERT INTO bench_meta (key, value) VALUES", [("world", json.dumps(meta))])
    say(f"ClickHouse {ARGS.database}: world and {ARGS.events:,} events in {time.perf_counter() - started:.1f} s")
    return meta


def tokens_of(user_ids: list[int]) -> dict[int, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id, key FROM authtoken_token WHERE user_id = ANY(%s)", [user_ids])
        return dict(cursor.fetchall())


def followee_counts(user_ids: list[int]) -> dict[int, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT follower_id, count(*) FROM follows WHERE follower_id = ANY(%s) GROUP BY 1", [user_ids])
        return dict(cursor.fetchall())


def ordinary_users(meta: WorldMeta, count: int, salt: int) -> list[int]:
    """`count` active users who are not probe users, in a deterministic random order."""
    excluded = set(meta["inactive"]) | set(meta["probes"].values())
    users = [u for u in range(1, ARGS.users + 1) if u not in excluded]
    random.Random(ARGS.seed * 1000 + salt).shuffle(users)
    return users[:count]


# ------------------------------------------------------------------ Redis state of this run
def redis():
    client = nova_redis.client()
    if client is None:
        raise SystemExit("Redis is unavailable")
    return client


def clear_namespace() -> int:
    """Delete every key of this run's prefix (feed cache, breaker, throttle history)."""
    client, deleted = redis(), 0
    batch = []
    for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
        batch.append(key)
        if len(batch) == 500:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


def reset_breaker() -> None:
    redis().delete(nova_redis.key("breaker", "clickhouse"), nova_redis.key("breaker", "clickhouse", "probe"))


def breaker_state() -> str:
    raw = redis().hget(nova_redis.key("breaker", "clickhouse"), "state")
    return raw.decode() if raw else "closed"


def snapshot_ids(users: list[int]) -> dict[int, str | None]:
    pipe = redis().pipeline(transaction=False)
    for user in users:
        pipe.get(nova_redis.key("feed", "snap", user))
    return {user: (json.loads(raw)["id"] if raw else None) for user, raw in zip(users, pipe.execute(), strict=True)}


def warm_users(users: list[int], min_ttl: int, tries: int = 3) -> tuple[list[int], int]:
    """Every user's snapshot cached with at least `min_ttl` s left (ranked in this
    process, as a miss would), then a first page read so its posts are hydrated
    in the post cache. Returns (users without a snapshot after `tries`, rankings)."""
    rankings = 0
    for _ in range(tries):
        ttls = cache.snapshot_ttls(users)
        stale = [u for u in users if ttls.get(u, -2) < min_ttl]
        if not stale:
            break
        for user in stale:
            cache.invalidate_feed(user)
            redis().delete(nova_redis.key("feed", "changed", user))  # a full TTL, not the follow grace period
            page = read_feed(user, PAGE)
            rankings += page.source == "ranked"
        reset_breaker()
    # the first page's posts with a full post-cache TTL (a key hydrated 50 s ago would expire during the run
    # and be hydrated again by the feed, while the ceiling view would answer 409), then a first page each
    # hydrates what is missing
    pipe = redis().pipeline(transaction=False)
    for user in users:
        pipe.get(nova_redis.key("feed", "snap", user))
    ttl = settings.FEED_POST_TTL_SECONDS
    pipe_expire = redis().pipeline(transaction=False)
    for raw in pipe.execute():
        for row in json.loads(raw)["entries"][: PAGE + 5] if raw else []:
            pipe_expire.expire(nova_redis.key("feed", "post", row[0]), ttl)
    pipe_expire.execute()
    for user in users:
        read_feed(user, PAGE)
    ttls = cache.snapshot_ttls(users)
    return [u for u in users if ttls.get(u, -2) < min_ttl], rankings


# ------------------------------------------------------------------ gunicorn, as `make run` starts it
class Server:
    """`bash -c 'exec <Procfile web line>'` (the shell expands ${WEB_BIND:-...} as
    honcho's does) with DJANGO_SETTINGS_MODULE=bench.feed_api_settings; its own
    process group, stopped by its id."""

    def __init__(self, logdir: Path, query_timeout: float, tokens_file: Path) -> None:
        self.port = free_port()
        self.line = procfile_line("web")
        env = {
            **os.environ,
            **SERVER_ENV,
            "CLICKHOUSE_QUERY_TIMEOUT": str(query_timeout),
            "DJANGO_SETTINGS_MODULE": "bench.feed_api_settings",
            "WEB_BIND": f"127.0.0.1:{self.port}",
            "BENCH_FEED_TOKENS": str(tokens_file),
            "PATH": venv_path(),
        }
        for name in ("WEB_WORKERS", "WEB_THREADS"):  # the Procfile's defaults, as `make run` without .env
            env.pop(name, None)
        self.query_timeout = query_timeout
        self.log = logdir / f"gunicorn-{self.port}.log"
        self.access = logdir / f"access-{self.port}.log"
        with open(self.log, "wb") as err, open(self.access, "wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {self.line}"], cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited: {self.log.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            self.stop()
            raise SystemExit("gunicorn did not come up in 60 s")
        say(
            f"gunicorn up on 127.0.0.1:{self.port} (pid {self.process.pid}, CLICKHOUSE_QUERY_TIMEOUT "
            f"{query_timeout}): {self.line}"
        )

    def pids(self) -> list[int]:
        """The master and its workers."""
        found = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            found += [int(pid) for pid in children]
        except OSError:
            pass
        return found

    def warnings(self) -> list[str]:
        try:
            return [line for line in self.log.read_text(errors="replace").splitlines() if "WARNING" in line]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


class CeleryWorker:
    """The Procfile's worker line (`celery -A nova worker ...`) in this run's
    namespace (queue, Redis prefix, databases), with its own --hostname so it
    never answers another worker's broadcast as a twin; stopped by its id."""

    def __init__(self, logdir: Path) -> None:
        self.line = procfile_line("worker") + f" --hostname bench-{RUN}@%h"
        env = {**os.environ, **SERVER_ENV, "DJANGO_SETTINGS_MODULE": "nova.settings", "PATH": venv_path()}
        env.pop("CELERY_CONCURRENCY", None)
        self.log = logdir / f"celery-{RUN}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", f"exec {self.line}"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while " ready." not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"celery worker did not come up: {self.text()[-2000:]}")
            time.sleep(0.5)
        say(f"celery worker up (pid {self.process.pid}, queue {PREFIX}): {self.line}")

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def runs(self) -> WorkerRuns:
        """What the worker's log says about the warm task's runs."""
        lines = [line for line in self.text().splitlines() if "feed.tasks.warm_feed_caches[" in line]
        succeeded = [line for line in lines if " succeeded in " in line]
        results: list[tuple[float, str]] = []
        for line in succeeded:
            seconds = float(line.split(" succeeded in ")[1].split("s:")[0])
            body = line.split("s: ", 1)[1] if "s: " in line else ""
            results.append((seconds, body.strip()))
        return {
            "received": sum(1 for line in lines if "] received" in line),
            "succeeded": results,
            "soft_time_limit": sum(
                1 for line in self.text().splitlines() if "SoftTimeLimitExceeded" in line and "raised" in line
            ),
            "failed": sum(1 for line in lines if " raised unexpected" in line),
            "skipped": sum(1 for _, body in results if "skipped" in body),
        }

    def pids(self) -> list[int]:
        found = [self.process.pid]
        try:
            found += [
                int(pid)
                for pid in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
            ]
        except OSError:
            pass
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # warm shutdown: the running task finishes (<= 58 s)
            try:
                self.process.wait(timeout=75)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


class BeatEmulator(threading.Thread):
    """Celery beat for the one schedule entry that matters here: send
    feed.tasks.warm_feed_caches every FEED_WARM_INTERVAL_SECONDS with
    expires=interval, as settings.CELERY_BEAT_SCHEDULE does; and, every
    `sample_every` s, how many of `watched` users have a snapshot."""

    def __init__(self, watched: list[int], sample_every: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.watched, self.sample_every = watched, sample_every
        self.interval = settings.FEED_WARM_INTERVAL_SECONDS
        self.sent = 0
        self.coverage: list[tuple[float, int]] = []
        self.breaker: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        from feed.tasks import warm_feed_caches

        next_send = self.t0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= next_send:
                warm_feed_caches.apply_async(expires=float(self.interval))
                self.sent += 1
                next_send += self.interval
            ttls = cache.snapshot_ttls(self.watched)
            self.coverage.append((now - self.t0, sum(1 for ttl in ttls.values() if ttl > 0)))
            self.breaker.append((now - self.t0, breaker_state()))
            self.stopping.wait(max(0.05, min(self.sample_every, next_send - time.monotonic())))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)


class Http:
    """One keep-alive connection (not thread-safe: one per thread)."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Token {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                break
            except (OSError, http.client.HTTPException):
                # the server closed an idle keep-alive connection: reconnect once
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        try:
            return response.status, json.loads(payload) if payload else {}
        except ValueError:
            return response.status, {"raw": payload[:200].decode(errors="replace")}


# ------------------------------------------------------------------ CPU accounting
def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _processes_named(*names: str) -> list[int]:
    """Pids whose comm is one of `names` (the kernel cuts comm to 15 characters: clickhouse-serv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in names:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _machine_ticks() -> tuple[int, int, int]:
    """(busy, iowait, total) ticks of all cores; steal counts as busy."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, fields[4], sum(fields[:8])


class CpuMeter:
    """CPU seconds per process group over a run, and the machine's busy share."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = {pid: _ticks(pid) for pids in groups.values() for pid in pids}
        self.machine = _machine_ticks()
        self.t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = self.elapsed = time.monotonic() - self.t0
        busy0, iowait0, total0 = self.machine
        busy1, iowait1, total1 = _machine_ticks()
        # a process that exited during the run (a Postgres backend) counts for nothing
        out = {
            name: sum(max(0, _ticks(p) - self.start[p]) for p in pids) / hz / elapsed
            for name, pids in self.groups.items()
        }
        out["machine busy"] = (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)
        out["other"] = max(0.0, out["machine busy"] - sum(v for k, v in out.items() if k != "machine busy"))
        out["iowait"] = (iowait1 - iowait0) / max(1, total1 - total0) * (os.cpu_count() or 1)
        return out


def cpu_groups(server: Server, extra: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    return {
        "gunicorn": server.pids(),
        **(extra or {}),
        "redis": _processes_named("redis-server"),
        "postgres (all)": _processes_named("postgres"),
        "clickhouse": _processes_named("clickhouse-serv"),
    }


def cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in cpu.items())


# ------------------------------------------------------------------ 1. throughput
def cpu_index(seconds: float = 0.5) -> float:
    """Rounds per second of a fixed pure-Python loop in this (otherwise idle) process:
    this VM's single-core speed was seen to swing by 2x within minutes, so each
    run records it, taken just before the run."""
    started = time.perf_counter()
    rounds = 0
    while time.perf_counter() - started < seconds:
        total = 0
        for i in range(10_000):
            total += i * i
        rounds += 1
    return rounds / (time.perf_counter() - started)


def connections_per_worker(server: Server) -> list[int]:
    """Established client connections held by each gunicorn worker (ss), most first:
    with keep-alive, the worker that accepted a connection serves it to the end."""
    try:
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established", f"( sport = :{server.port} )"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    held: Counter[int] = Counter()
    for line in out.splitlines():
        for pid in {int(x) for x in re.findall(r"pid=(\d+)", line)}:
            held[pid] += 1
    workers = [pid for pid in server.pids() if pid != server.process.pid]
    return sorted((held.get(pid, 0) for pid in workers), reverse=True)


def wrk_run(server: Server, path: str, tokens_file: Path, connections: int) -> WrkRun:
    command = [
        "wrk",
        f"-t{ARGS.wrk_threads}",
        f"-c{connections}",
        f"-d{ARGS.seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(ROOT / "bench" / "feed_api_wrk.lua"),
        f"http://127.0.0.1:{server.port}{path}",
    ]
    speed = cpu_index()
    load_before = load_avg()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BENCH_WRK_TOKENS": str(tokens_file)},
    )
    meter = CpuMeter(cpu_groups(server))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(min(3.0, ARGS.seconds / 4))
    spread = connections_per_worker(server)
    try:
        out, _ = process.communicate(timeout=ARGS.seconds + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    cpu = meter.stop()
    # wrk has exited: its CPU is in this process's reaped children's usage (nothing else is reaped meanwhile)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu["wrk"] = ((reaped.ru_utime + reaped.ru_stime) - (children.ru_utime + children.ru_stime)) / meter.elapsed
    cpu["other"] = max(0.0, cpu["other"] - cpu["wrk"])
    line = next((x for x in out.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no summary: {out[-1500:]}")
    # the rest of a WrkRun (name, round, ...) is the caller's to add
    result: WrkRun = json.loads(line.removeprefix("BENCH_JSON "))
    result["path"] = path
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["cpu"], result["cpu_index"], result["spread"] = cpu, speed, spread
    result["load_before"], result["load_after"] = load_before, load_avg()
    result["command"] = " ".join(command)
    return result


def check_endpoint(server: Server, path: str, token: str) -> str:
    status, body = Http(server.port).call("GET", path, token)
    items = body.get("items") if isinstance(body, dict) else None
    return f"{status}, {len(items) if items is not None else '?'} items, source {body.get('source', '-')}"


def phase_throughput(meta: WorldMeta, logdir: Path, deadline: Deadline) -> ThroughputResult:
    say(f"\n## 1. throughput (load average {load_avg()})")
    clear_namespace()
    users = ordinary_users(meta, ARGS.tokens, salt=1)
    tokens = tokens_of(users)
    tokens_file = logdir / "wrk-tokens.txt"
    tokens_file.write_text("\n".join(tokens[u] for u in users) + "\n")
    (logdir / "tokens.json").write_text(json.dumps({tokens[u]: u for u in users}))
    server = Server(logdir, ARGS.query_timeout, logdir / "tokens.json")
    runs: list[WrkRun] = []
    try:
        started = time.perf_counter()
        cold, rankings = warm_users(users, min_ttl=ARGS.seconds + 30)
        say(
            f"warmed {len(users)} users' snapshots and posts in {time.perf_counter() - started:.1f} s "
            f"({rankings} rankings; without a snapshot: {cold or 'none'})"
        )
        sample = tokens[users[0]]
        for _name, path in TARGETS:
            say(f"  check {path}: {check_endpoint(server, path, sample)}")
        targets = [(name, path) for name, path in TARGETS if name in ARGS.targets]
        for connections, round_, (name, path) in itertools.product(ARGS.connections, range(ARGS.rounds), targets):
            if deadline.left() < ARGS.seconds + 60:
                say("time limit: throughput runs stopped")
                break
            cold, rankings = warm_users(users, min_ttl=ARGS.seconds + 15)
            before = snapshot_ids(users)
            result = wrk_run(server, path, tokens_file, connections)
            after = snapshot_ids(users)
            result["name"], result["round"], result["connections"] = name, round_ + 1, connections
            result["rankings_during"] = sum(before[u] != after[u] for u in users)
            result["rewarmed"] = rankings
            runs.append(result)
            say(
                f"  {name:<15} c={connections:<3} {result['rps']:8,.1f} req/s  P50 {result['p50_us'] / 1000:6.1f} ms  "
                f"P95 {result['p95_us'] / 1000:6.1f} ms  P99 {result['p99_us'] / 1000:6.1f} ms  "
                f"max {result['max_us'] / 1000:7.1f} ms  errors {result['status_errors']}+"
                f"{result['connect_errors'] + result['read_errors'] + result['write_errors']}+"
                f"{result['timeouts']} (status/socket/timeout)  snapshots re-ranked during run "
                f"{result['rankings_during']}  load {result['load_before']} -> {result['load_after']}  "
                f"CPU index {result['cpu_index']:.0f}  connections per worker {result['spread']}"
            )
            say(f"      CPU (cores): {cpu_text(result['cpu'])}")
        warnings = server.warnings()
        if warnings:
            say(f"  server warnings: {len(warnings)}, first: {warnings[0][:200]}")
    finally:
        server.stop()
    return {"runs": runs, "tokens": len(users), "cold": cold, "access_log_bytes": server.access.stat().st_size}


TARGETS = (
    ("feed", "/api/v1/feed/"),
    ("ceiling", "/bench/ceiling/"),
    ("ceiling-noauth", "/bench/ceiling-noauth/"),
    ("naive", "/bench/naive/"),
)


# ------------------------------------------------------------------ 2. miss
def phase_miss(meta: WorldMeta, logdir: Path, deadline: Deadline) -> MissResult:
    say(f"\n## 2. cache miss (load average {load_avg()})")
    probes = {int(k): v for k, v in meta["probes"].items()}
    users = {f: probes[f] for f in ARGS.miss_followees}
    tokens = tokens_of(list(users.values()))
    results: dict[float, dict[int, list[MissSample]]] = {}
    timeouts = [ARGS.query_timeout] + ([ARGS.high_timeout] if ARGS.high_timeout > 0 else [])
    for timeout in timeouts:
        if deadline.left() < 120:
            say("time limit: miss runs stopped")
            break
        clear_namespace()
        server = Server(logdir, timeout, logdir / "tokens.json")
        samples: dict[int, list[MissSample]] = {f: [] for f in users}
        try:
            http_ = Http(server.port)
            for user in users.values():  # warm-up: connections, ClickHouse's caches; not timed
                for _ in range(2):
                    cache.invalidate_feed(user)
                    http_.call("GET", f"/api/v1/feed/?limit={PAGE}", tokens[user])
            reset_breaker()
            load_before = load_avg()
            for _ in range(ARGS.miss_samples):
                if deadline.left() < 30:
                    break
                for followees, user in users.items():
                    state = breaker_state()
                    cache.invalidate_feed(user)
                    started = time.perf_counter()
                    status, body = http_.call("GET", f"/api/v1/feed/?limit={PAGE}", tokens[user])
                    samples[followees].append(
                        {
                            "seconds": time.perf_counter() - started,
                            "status": status,
                            "source": body.get("source"),
                            "breaker_before": state,
                            "items": len(body.get("items") or []),
                        }
                    )
            warnings = server.warnings()
        finally:
            server.stop()
        results[timeout] = samples
        say(
            f"CLICKHOUSE_QUERY_TIMEOUT {timeout} s, {ARGS.miss_samples} misses per user, round-robin over the users "
            f"(load {load_before} -> {load_avg()}; server warnings {len(warnings)}):"
        )
        for followees, rows in samples.items():
            seconds = [r["seconds"] for r in rows]
            sources = Counter(r["source"] for r in rows)
            opened = sum(1 for r in rows if r["breaker_before"] != "closed")
            ranked = [r["seconds"] for r in rows if r["source"] == "ranked"]
            say(
                f"  {followees:>5} followees (user {users[followees]}): P50 {ms(percentile(seconds, 0.5))}  "
                f"P95 {ms(percentile(seconds, 0.95))}  max {ms(max(seconds))}  sources {dict(sources)}  "
                f"breaker not closed before {opened}  ranked-only P50/P95 {ms(percentile(ranked, 0.5))} / "
                f"{ms(percentile(ranked, 0.95))}  statuses {dict(Counter(r['status'] for r in rows))}"
            )
    return {"results": results, "users": users}


# ------------------------------------------------------------------ 3. hit rate
class Zipf:
    def __init__(self, n: int, s: float) -> None:
        self.cumulative = []
        total = 0.0
        for rank in range(1, n + 1):
            total += rank**-s
            self.cumulative.append(total)
        self.total = total

    def draw(self, rng: random.Random) -> int:
        return bisect.bisect_right(self.cumulative, rng.random() * self.total)


def replay(
    server: Server, trace: list[int], tokens: dict[int, str], clients: int, extra: dict[str, list[int]] | None = None
) -> Replay:
    """Send the trace's first pages in order over `clients` keep-alive connections."""
    lock = threading.Lock()
    position = [0]
    rows: list[tuple[int, str, float, int]] = []

    def work() -> None:
        http_ = Http(server.port)
        while True:
            with lock:
                if position[0] >= len(trace):
                    return
                user = trace[position[0]]
                position[0] += 1
            started = time.perf_counter()
            try:
                status, body = http_.call("GET", f"/api/v1/feed/?limit={PAGE}", tokens[user])
                source = body.get("source") or f"http {status}"
            except (OSError, http.client.HTTPException) as exc:
                status, source = 0, type(exc).__name__
            with lock:
                rows.append((user, source, time.perf_counter() - started, status))

    started = time.monotonic()
    meter = CpuMeter(cpu_groups(server, {"bench (client)": [os.getpid()], **(extra or {})}))
    threads = [threading.Thread(target=work, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=1800)
    return {"rows": rows, "seconds": time.monotonic() - started, "cpu": meter.stop()}


def hit_summary(label: str, result: Replay, warm_set: set[int]) -> HitSummary:
    rows = result["rows"]
    sources = Counter(source for _, source, _, _ in rows)
    hits = sources.get("cache", 0)
    in_warm = [r for r in rows if r[0] in warm_set]
    hit_warm = sum(1 for r in in_warm if r[1] == "cache")
    latencies = [r[2] for r in rows]
    summary: HitSummary = {
        "requests": len(rows),
        "sources": dict(sources),
        "hit_rate": hits / max(1, len(rows)),
        "seconds": result["seconds"],
        "p50": percentile(latencies, 0.5),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "warm_requests": len(in_warm),
        "warm_hit_rate": hit_warm / max(1, len(in_warm)),
        "distinct_users": len({r[0] for r in rows}),
    }
    say(
        f"  {label}: {summary['requests']:,} requests in {summary['seconds']:.1f} s "
        f"({summary['requests'] / summary['seconds']:,.0f}/s), {summary['distinct_users']:,} distinct users; "
        f"sources {summary['sources']}; hit rate {summary['hit_rate']:.1%} (requests of users in the warmed "
        f"set: {summary['warm_requests']:,}, their hit rate {summary['warm_hit_rate']:.1%}); latency P50 "
        f"{ms(summary['p50'])} P95 {ms(summary['p95'])} P99 {ms(summary['p99'])}"
    )
    say(f"      CPU (cores): {cpu_text(result['cpu'])}")
    return summary


def phase_hitrate(meta: WorldMeta, logdir: Path, deadline: Deadline) -> HitrateResult:
    say(f"\n## 3. hit rate, Zipf({ARGS.zipf}) over {ARGS.active_users:,} active users (load average {load_avg()})")
    clear_namespace()
    users = ordinary_users(meta, ARGS.active_users, salt=3)  # users[k]: Zipf rank k + 1
    tokens = tokens_of(users)
    zipf = Zipf(len(users), ARGS.zipf)
    rng = random.Random(ARGS.seed * 7 + 3)
    last_hour = [users[zipf.draw(rng)] for _ in range(ARGS.replay)]
    trace = [users[zipf.draw(rng)] for _ in range(ARGS.replay)]
    # the last hour's first pages, spread over it, recorded as read_feed records them (feed/cache.py feed:active)
    now_s = time.time()
    activity: dict[str, float] = {}
    for i, user in enumerate(last_hour):
        activity[str(user)] = now_s - 3600 + 3600 * (i + 0.5) / len(last_hour)
    redis().zadd(nova_redis.key("feed", "active"), activity)
    warm_set = {int(u) for u in activity}
    say(
        f"last hour: {len(last_hour):,} first pages by {len(warm_set):,} users recorded as active; "
        f"replay trace: {len(trace):,} requests by {len(set(trace)):,} users, "
        f"{sum(1 for u in trace if u in warm_set) / len(trace):.1%} of them by users active in the last hour"
    )

    server = Server(logdir, ARGS.query_timeout, logdir / "tokens.json")
    out: HitrateResult = {"warm_set": len(warm_set), "trace_users": len(set(trace))}
    worker = beat = None
    try:
        worker = CeleryWorker(logdir)
        beat = BeatEmulator(sorted(warm_set))
        beat.start()
        warm_for = min(ARGS.warm_minutes * 60, max(0.0, deadline.left() - 600))
        say(f"  the warm task runs every {beat.interval} s for {warm_for:.0f} s before the replay, and during it")
        time.sleep(warm_for)
        alive = beat.coverage[-1][1] if beat.coverage else 0
        say(
            f"  at the replay's start: {alive:,} of {len(warm_set):,} active users have a snapshot; "
            f"worker so far: {worker.runs()}"
        )
        replay_started = time.monotonic() - beat.t0
        result = replay(server, trace, tokens, ARGS.replay_clients, extra={"celery": worker.pids()})
        beat.stop()
        during = [n for t, n in beat.coverage if t >= replay_started]
        runs = worker.runs()
        say(
            f"  warm task: {beat.sent} sent; worker log: {runs['received']} received, {len(runs['succeeded'])} "
            f"succeeded, {runs['failed']} raised ({runs['soft_time_limit']} at the soft time limit)"
        )
        for seconds, body in runs["succeeded"]:
            say(f"    run of {seconds:.1f} s: {body[:160]}")
        say(
            f"  active users with a snapshot during the replay: min {min(during, default=0):,}, "
            f"max {max(during, default=0):,} of {len(warm_set):,}"
        )
        states = Counter(state for t, state in beat.breaker if t >= replay_started)
        failed = [line for line in server.warnings() if "ranking failed" in line]
        say(
            f"  ClickHouse breaker sampled every {beat.sample_every:.0f} s during the replay: {dict(states)}; "
            f"the web's 'ranking failed' warnings (fallback for a timeout or error): {len(failed)}"
            + (f", e.g. {failed[0][:160]}" if failed else "")
        )
        out.update(
            {
                "alive_at_start": alive,
                "coverage": beat.coverage,
                "runs": runs,
                "sent": beat.sent,
                "breaker": dict(states),
                "ranking_failed": len(failed),
            }
        )
        out["warm"] = hit_summary("replay with warming", result, warm_set)
        if ARGS.hit_control and deadline.left() > 300:
            clear_namespace()
            out["control"] = hit_summary(
                "replay, cold caches, no warming", replay(server, trace, tokens, ARGS.replay_clients), warm_set
            )
        # /metrics: every gunicorn worker's counters added up (multiprocess mode, gunicorn.conf.py)
        scrapes: list[dict[str, float | None]] = []
        for _ in range(4):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
            values = {
                name: next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")), None)
                for name in ("feed_cache_hits_total", "feed_cache_misses_total")
            }
            scrapes.append(values)
        say(f"  /metrics scraped 4 times (all gunicorn workers' counters added up): {scrapes}")
        out["metrics"] = scrapes
    finally:
        if beat is not None:
            beat.stop()
        if worker is not None:
            worker.stop()
        server.stop()
        # this run's Celery queue and kombu's binding for it (the name differs between kombu versions)
        redis().delete(PREFIX, f"_kombu.binding.{PREFIX}", f"_kombu.binding_permanent.{PREFIX}")
    return out


# ------------------------------------------------------------------ 4. post-to-feed
def phase_freshness(meta: WorldMeta, logdir: Path, deadline: Deadline) -> FreshnessResult:
    say(f"\n## 4. post to feed (load average {load_avg()})")
    clear_namespace()
    followers = ordinary_users(meta, ARGS.fresh_pairs * 3, salt=4)
    inactive = set(meta["inactive"])
    rng = random.Random(ARGS.seed * 11 + 4)
    pairs: list[tuple[int, int]] = []
    with connection.cursor() as cursor:
        for follower in followers:
            cursor.execute(
                "SELECT followee_id FROM follows WHERE follower_id = %s AND followee_id NOT IN "
                "(SELECT muted_id FROM mutes WHERE user_id = %s) ORDER BY followee_id",
                [follower, follower],
            )
            followees = [row[0] for row in cursor.fetchall() if row[0] not in inactive]
            if followees:
                pairs.append((follower, rng.choice(followees)))
            if len(pairs) == ARGS.fresh_pairs:
                break
        cursor.execute(
            "SELECT followee_id, count(*) FROM follows WHERE followee_id = ANY(%s) GROUP BY 1", [[a for _, a in pairs]]
        )
        audience = dict(cursor.fetchall())
    tokens = tokens_of([u for pair in pairs for u in pair])
    server = Server(logdir, ARGS.query_timeout, logdir / "tokens.json")
    rows: list[FreshRow] = []
    try:
        cold, _ = warm_users([f for f, _ in pairs], min_ttl=120)
        say(
            f"pairs (follower, author, author's followers): "
            f"{[(f, a, audience.get(a, 0)) for f, a in pairs]}; followers without a snapshot: {cold or 'none'}"
        )
        writer, reader = Http(server.port), Http(server.port)
        load_before = load_avg()
        for i in range(ARGS.fresh_posts):
            if deadline.left() < 20:
                break
            follower, author = pairs[i % len(pairs)]
            started = time.perf_counter()
            status, body = writer.call("POST", "/api/v1/posts/", tokens[author], {"body": f"bench post {RUN}-{i}"})
            posted = time.perf_counter() - started
            if status != 201:
                rows.append({"ok": False, "status": status, "detail": str(body)[:200]})
                continue
            post_id, polls = body["id"], 0
            polled: Counter[str | None] = Counter()
            seen_after: float | None = None
            while time.perf_counter() - started < 10:
                polls += 1
                _, page = reader.call("GET", f"/api/v1/feed/?limit={PAGE}", tokens[follower])
                polled[page.get("source")] += 1
                if any(item["id"] == post_id for item in page.get("items", [])):
                    seen_after = time.perf_counter() - started
                    break
                time.sleep(0.01)
            rows.append(
                {
                    "ok": seen_after is not None,
                    "seconds": seen_after,
                    "post": posted,
                    "polls": polls,
                    "sources": dict(polled),
                }
            )
            time.sleep(0.1)
    finally:
        server.stop()
    seen = [r["seconds"] for r in rows if r["ok"] and r["seconds"] is not None]
    sources: Counter[str | None] = Counter()
    for r in rows:
        sources.update(r.get("sources", {}))
    say(
        f"{len(rows)} posts ({load_before} -> {load_avg()}): on the follower's first page for {len(seen)}; "
        f"post -> on the page P50 {ms(percentile(seen, 0.5))} P95 {ms(percentile(seen, 0.95))} max "
        f"{ms(max(seen) if seen else float('nan'))}; POST alone P50 "
        f"{ms(percentile([r['post'] for r in rows if r['ok']], 0.5))}; polls per post max "
        f"{max((r['polls'] for r in rows if r['ok']), default=0)}; sources of the polls {dict(sources)}"
    )
    failed = [r for r in rows if not r["ok"]]
    if failed:
        say(f"  not seen / failed: {failed[:3]}")
    return {"rows": rows, "pairs": pairs}


# ------------------------------------------------------------------ report
def report(throughput: ThroughputResult | None, meta: WorldMeta, started_at: datetime) -> None:
    say("\n## summary")
    say(
        f"commit {commit()}; {machine()}; ClickHouse {CH_VERSION}; run {started_at:%Y-%m-%d %H:%M} UTC; "
        f"world of {meta['now']} (seed {ARGS.seed}); load average now {load_avg()}"
    )
    if throughput is not None:
        runs = throughput["runs"]
        say(
            "| run | connections | round | req/s | P50 | P95 | P99 | max | errors | gunicorn CPU | wrk CPU "
            "| machine busy | other CPU | CPU index | connections per worker | load |"
        )
        say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for run in runs:
            errors = (
                run["status_errors"]
                + run["connect_errors"]
                + run["read_errors"]
                + run["write_errors"]
                + run["timeouts"]
            )
            say(
                f"| {run['name']} `{run['path']}` | {run['connections']} | {run['round']} | {run['rps']:,.0f} "
                f"| {run['p50_us'] / 1000:.1f} ms | {run['p95_us'] / 1000:.1f} ms | {run['p99_us'] / 1000:.1f} ms "
                f"| {run['max_us'] / 1000:.1f} ms | {errors} | {run['cpu']['gunicorn']:.2f} | {run['cpu']['wrk']:.2f} "
                f"| {run['cpu']['machine busy']:.2f} | {run['cpu']['other']:.2f} | {run['cpu_index']:.0f} "
                f"| {'/'.join(map(str, run['spread']))} | {run['load_before']} |"
            )
        for connections, round_ in itertools.product(ARGS.connections, range(1, ARGS.rounds + 1)):
            rps = {r["name"]: r["rps"] for r in runs if r["connections"] == connections and r["round"] == round_}
            if "feed" in rps and len(rps) > 1:
                say(
                    f"c={connections} round {round_} (adjacent runs): "
                    + ", ".join(
                        f"feed / {name} {rps['feed'] / value:.2f}" for name, value in rps.items() if name != "feed"
                    )
                )
    say(f"done in {(datetime.now(UTC) - started_at).total_seconds():.0f} s")


CH_VERSION = "?"


def cleanup(logdir: Path) -> None:
    deleted = clear_namespace()
    say(f"cleanup: {deleted:,} Redis keys of {PREFIX} deleted")
    connection.close()
    if not ARGS.keep:
        make_client(settings.CLICKHOUSE, database="default").execute(f"DROP DATABASE IF EXISTS `{ARGS.database}`")
        with postgres("postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{ARGS.database}" WITH (FORCE)')
        say(f"cleanup: Postgres and ClickHouse databases {ARGS.database} dropped (--keep keeps them)")
    shutil.rmtree(logdir, ignore_errors=True)


def main() -> None:
    global CH_VERSION
    if shutil.which("wrk") is None and "throughput" in ARGS.phases:
        raise SystemExit("wrk not found: apt-get install -y wrk (or leave out the throughput phase)")
    started_at = datetime.now(UTC)
    deadline = Deadline(ARGS.max_minutes)
    CH_VERSION = make_client(settings.CLICKHOUSE, database="default").execute("SELECT version()")[0][0]
    say(
        f"machine: {machine()}; ClickHouse {CH_VERSION}; commit {commit()}; {started_at:%Y-%m-%d %H:%M} UTC; "
        f"load average {load_avg()}; Redis prefix {PREFIX}; databases {ARGS.database}"
    )
    logdir = Path(tempfile.mkdtemp(prefix="feed_api_bench_"))
    throughput: ThroughputResult | None = None  # the summary's table; the other phases report as they go
    try:
        meta = prepare_world(deadline)
        probes = {int(k): v for k, v in meta["probes"].items()}
        counts = followee_counts(list(probes.values()))
        say(
            f"probe users (followees: user id, followees in Postgres): "
            f"{ {f: (u, counts.get(u)) for f, u in sorted(probes.items())} }"
        )
        phases = {"miss": phase_miss, "hitrate": phase_hitrate, "freshness": phase_freshness}
        for name in ARGS.phases:
            if deadline.passed():
                say(f"time limit: phase {name} not run")
                continue
            if name == "throughput":
                throughput = phase_throughput(meta, logdir, deadline)
            else:
                phases[name](meta, logdir, deadline)
        report(throughput, meta, started_at)
    finally:
        cleanup(logdir)


if __name__ == "__main__":
    main()
