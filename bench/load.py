"""Mixed load against a running Nova (issue 15, item 2; first part): a seeded
workload of 80 % feed reads (first pages, some next pages via next_cursor, users
drawn from a Zipf), 15 % event batches (POST /api/v1/events/, every accepted
event_id recorded) and 5 % writes (posts, follows, likes), driven open-loop
through the public HTTP API at --rate with at most --inflight requests under way.

    .venv/bin/python bench/load.py --url http://127.0.0.1:8000 --tokens-file tokens.txt \\
        --post-ids posts.txt --seconds 60 --rate 20 [--clickhouse-database nova]

--tokens-file: one `user_id token` per line (users created in bulk in the
database, as bench/feed_api.py does, so login throttles play no part).
--post-ids: post ids the events and likes refer to, one per line.
A progress line every second (requests/s, errors, P95 so far); at the end a
table: throughput, P50/P95/P99 per endpoint, cache hit rate (share of feed
answers with source=cache), errors by status and, with --clickhouse-database,
event-to-visible P95 (sampled event ids polled in ClickHouse's events table) and
the check that every accepted event_id is there exactly once.

bench/load_stack.py starts every Procfile process in its own namespaces and runs
this against it, samples consumer lag and every process's memory, and draws the
plots (latency over time, memory over time).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import queue
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

EVENT_TYPES = ("impression", "view", "click", "like", "comment", "share", "dwell")
MIX = (("feed", 0.80), ("events", 0.15), ("write", 0.05))
WRITES = ("post", "follow", "like")


# ------------------------------------------------------------------ the workload (pure, seeded)
class Zipf:
    """Index i in [0, n) with weight 1 / (i + 1) ** s, drawn from a seeded generator."""

    def __init__(self, n: int, s: float) -> None:
        total, self.cumulative = 0.0, []
        for i in range(n):
            total += 1 / (i + 1) ** s
            self.cumulative.append(total)

    def draw(self, rng: random.Random) -> int:
        import bisect

        return min(bisect.bisect_left(self.cumulative, rng.random() * self.cumulative[-1]), len(self.cumulative) - 1)


@dataclass
class Request:
    kind: str  # feed, feed_next, events, post, follow, like
    user: int  # index into the users list
    method: str
    path: str
    body: dict | None = None
    event_ids: list[str] = field(default_factory=list)
    target: int | None = None  # follow: index of the followed user, put in the path when sent


class Workload:
    """The same --seed gives the same sequence of requests (event ids included)."""

    def __init__(
        self,
        users: int,
        post_ids: list[int],
        seed: int,
        zipf: float = 1.1,
        next_share: float = 0.25,
        batch: tuple[int, int] = (1, 20),
    ) -> None:
        self.rng = random.Random(seed)
        self.users, self.post_ids, self.next_share, self.batch = users, post_ids, next_share, batch
        self.zipf = Zipf(users, zipf)
        self.cursors: dict[int, str] = {}  # user -> next_cursor of the last page they read
        self.lock = threading.Lock()

    def remember_cursor(self, user: int, cursor: str | None) -> None:
        with self.lock:
            if cursor:
                self.cursors[user] = cursor
            else:
                self.cursors.pop(user, None)

    def next(self) -> Request:
        rng = self.rng
        roll, kind = rng.random(), MIX[-1][0]
        for name, share in MIX:
            if roll < share:
                kind = name
                break
            roll -= share
        user = self.zipf.draw(rng)
        if kind == "feed":
            with self.lock:
                cursor = self.cursors.get(user)
            if cursor and rng.random() < self.next_share:
                return Request("feed_next", user, "GET", f"/api/v1/feed/?limit=20&cursor={cursor}")
            return Request("feed", user, "GET", "/api/v1/feed/?limit=20")
        if kind == "events":
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            events, ids = [], []
            for _ in range(rng.randint(*self.batch)):
                ids.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
                event: dict[str, object] = {
                    "event_id": ids[-1],
                    "post_id": rng.choice(self.post_ids),
                    "event_type": rng.choice(EVENT_TYPES),
                    "ts": now,
                }
                if event["event_type"] == "dwell":
                    event["dwell_ms"] = rng.randint(200, 30_000)
                events.append(event)
            return Request("events", user, "POST", "/api/v1/events/", {"events": events}, ids)
        write = rng.choice(WRITES)
        if write == "post":
            return Request("post", user, "POST", "/api/v1/posts/", {"body": f"load test post {rng.getrandbits(32)}"})
        if write == "like":
            return Request("like", user, "POST", f"/api/v1/posts/{rng.choice(self.post_ids)}/like/", {})
        return Request("follow", user, "POST", "/api/v1/users/{}/follow/", {}, target=rng.randrange(self.users))


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else float("nan")


# ------------------------------------------------------------------ the driver
class Results:
    """Every answer in the timeline; latencies only after the warm-up (answers
    that came back in its first `warmup` seconds are not measured); statuses and
    feed sources of every answer, warm-up included."""

    def __init__(self, warmup: float = 0) -> None:
        self.warmup = warmup
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.timeline: list[tuple[float, str, float, int]] = []  # (seconds since the start, kind, latency, status)
        self.status: Counter[tuple[str, int]] = Counter()
        self.sources: Counter[str] = Counter()
        self.accepted: dict[str, float] = {}  # event_id -> when its 202 came back (monotonic, from the start)
        self.dropped = 0  # open loop: a request due while --inflight were under way

    def record(self, at: float, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            if at >= self.warmup:
                self.latency[kind].append(seconds)
            self.timeline.append((at, kind, seconds, status))
            self.status[(kind, status)] += 1

    def measured(self) -> int:
        return sum(len(values) for values in self.latency.values())


class Client:
    """One worker thread's HTTP client: a new connection per request, or with
    --keepalive one kept open (and opened again after an error)."""

    def __init__(self, base: str, timeout: float, keepalive: bool) -> None:
        split = urlsplit(base)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self.timeout, self.keepalive = timeout, keepalive
        self.conn: http.client.HTTPConnection | None = None

    def send(self, token: str, request: Request, user_ids: list[int]) -> tuple[int, bytes]:
        path = request.path if request.target is None else request.path.format(user_ids[request.target])
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        body = json.dumps(request.body) if request.body is not None else None
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            self.conn.request(request.method, path, body, headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        finally:
            if not self.keepalive and self.conn is not None:
                self.conn.close()
                self.conn = None


def run(
    args: argparse.Namespace, users: list[tuple[int, str]], post_ids: list[int], probe: VisibilityProbe | None
) -> Results:
    workload = Workload(len(users), post_ids, args.seed, args.zipf)
    results = Results(args.warmup)
    due: queue.Queue[Request | None] = queue.Queue(maxsize=args.inflight)
    user_ids = [u for u, _ in users]
    started = time.monotonic()

    def worker() -> None:
        client = Client(args.url, args.timeout, args.keepalive)
        while (request := due.get()) is not None:
            t0 = time.monotonic()
            try:
                status, body = client.send(users[request.user][1], request, user_ids)
            except (OSError, http.client.HTTPException):
                status, body = 599, b""
            t1 = time.monotonic()
            results.record(t1 - started, request.kind, t1 - t0, status)
            if request.kind.startswith("feed") and status == 200:
                page = json.loads(body)
                workload.remember_cursor(request.user, page.get("next_cursor"))
                with results.lock:
                    results.sources[page.get("source", "?")] += 1
            elif request.kind == "events" and status == 202:
                accepted = json.loads(body).get("accepted", 0)
                if accepted == len(request.event_ids):
                    with results.lock:
                        results.accepted.update((e, t1) for e in request.event_ids)
                    if probe is not None and t1 - started >= args.warmup:
                        probe.watch(request.event_ids[0], time.time())

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.inflight)]
    for thread in threads:
        thread.start()
    sent, next_tick = 0, 1.0
    while (now := time.monotonic() - started) < args.seconds and sent < args.max_requests:
        if now >= sent / args.rate:
            try:
                due.put_nowait(workload.next())
            except queue.Full:
                results.dropped += 1
            sent += 1
            continue
        if now >= next_tick:
            progress(results, now)
            next_tick += 1
        time.sleep(min(1 / args.rate, 0.01))
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join(args.timeout + 1)
    return results


def progress(results: Results, now: float) -> None:
    with results.lock:
        recent = [s for at, _, s, _ in results.timeline if at > now - 1]
        errors = sum(n for (_, status), n in results.status.items() if status >= 400)
        p95 = percentile([s for at, _, s, _ in results.timeline if at > now - 10], 0.95)
        done = len(results.timeline)
    print(
        f"\r{now:5.0f} s  {len(recent):5d} req/s  {done:7d} done  {errors:5d} errors  P95 (10 s) {p95 * 1000:7.1f} ms",
        end="",
        flush=True,
    )


class VisibilityProbe(threading.Thread):
    """While the load runs: the first event of every accepted batch (at most
    --probe-pending waiting at a time) is polled in ClickHouse every 0.1 s; its
    event-to-visible time is from its 202 to the first poll that finds it."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(daemon=True)
        from clickhouse_driver import Client

        self.client = Client(host=args.clickhouse_host, port=args.clickhouse_port, database=args.clickhouse_database)
        self.limit, self.lock, self.stopping = args.probe_pending, threading.Lock(), threading.Event()
        self.pending: dict[str, float] = {}
        self.delays: list[float] = []

    def watch(self, event_id: str, accepted_at: float) -> None:
        with self.lock:
            if len(self.pending) < self.limit:
                self.pending[event_id] = accepted_at

    def run(self) -> None:
        while not self.stopping.is_set() or self.pending:
            with self.lock:
                waiting = dict(self.pending)
            if waiting:
                rows = self.client.execute(
                    "SELECT toString(event_id) FROM events WHERE toString(event_id) IN %(ids)s", {"ids": tuple(waiting)}
                )
                now = time.time()
                with self.lock:
                    for (event_id,) in rows:
                        if self.pending.pop(event_id, None) is not None:
                            self.delays.append(now - waiting[event_id])
            time.sleep(0.1)

    def finish(self, drain_seconds: float) -> int:
        """Stop watching new events; wait for the pending ones; how many never showed."""
        self.stopping.set()
        self.join(drain_seconds)
        with self.lock:
            unseen, self.pending = len(self.pending), {}
        return unseen


def event_check(args: argparse.Namespace, results: Results, probe: VisibilityProbe) -> list[str]:
    """After the consumer drained (the probe's pending events seen): every accepted event_id exactly once."""
    unseen = probe.finish(args.drain_seconds)
    counts: Counter[str] = Counter()
    ids = sorted(results.accepted)
    for i in range(0, len(ids), 5_000):
        counts.update(
            dict(
                probe.client.execute(
                    "SELECT toString(event_id), count() FROM events WHERE toString(event_id) IN %(ids)s"
                    " GROUP BY event_id",
                    {"ids": tuple(ids[i : i + 5_000])},
                )
            )
        )
    lost = len(ids) - len(counts)
    duplicated = sum(1 for n in counts.values() if n > 1)
    delays = probe.delays
    return [
        f"| event-to-visible P50 / P95 ({len(delays)} probed events, polled every 0.1 s; {unseen} never seen) "
        f"| {percentile(delays, 0.5) * 1000:,.0f} / {percentile(delays, 0.95) * 1000:,.0f} ms |",
        f"| accepted events: lost / duplicated in ClickHouse | {lost:,} / {duplicated:,} of {len(ids):,} |",
    ]


def report(args: argparse.Namespace, results: Results, extra: list[str]) -> None:
    done, measured_seconds = results.measured(), args.seconds - args.warmup
    if args.warmup:
        print(f"\n\nLatencies and throughput of the {measured_seconds:g} s after a {args.warmup:g} s warm-up:", end="")
    print("\n\n| endpoint | requests | P50 ms | P95 ms | P99 ms |\n|---|---:|---:|---:|---:|")
    for kind, values in sorted(results.latency.items()):
        print(
            f"| {kind} | {len(values):,} | {percentile(values, 0.5) * 1000:,.1f} "
            f"| {percentile(values, 0.95) * 1000:,.1f} | {percentile(values, 0.99) * 1000:,.1f} |"
        )
    feed_answers = sum(results.sources.values())
    errors: Counter[str] = Counter()
    for (kind, status), n in results.status.items():
        if status >= 400:
            errors[f"{kind} {status}"] += n
    server_errors = sum(n for (_, status), n in results.status.items() if 500 <= status < 599)
    print("\n| figure | value |\n|---|---|")
    print(
        f"| throughput | {done / measured_seconds:,.1f} req/s ({done:,} in {measured_seconds:g} s, "
        f"target rate {args.rate:g}) |"
    )
    print(f"| not sent (all {args.inflight} in flight) | {results.dropped:,} |")
    print(
        f"| cache hit rate (feed answers with source=cache) | "
        f"{results.sources['cache'] / feed_answers if feed_answers else float('nan'):.1%} of {feed_answers:,} |"
    )
    print(f"| feed sources | {dict(results.sources)} |")
    print(f"| errors by endpoint and status, warm-up included (599: no answer) | {dict(errors) or 'none'} |")
    print(f"| 5xx answers, warm-up included | {server_errors:,} |")
    for line in extra:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--tokens-file", required=True)
    parser.add_argument("--post-ids", required=True)
    parser.add_argument("--seconds", type=float, default=60, help="the whole run, warm-up included")
    parser.add_argument("--warmup", type=float, default=0, help="the first seconds are driven but not measured")
    parser.add_argument("--keepalive", action="store_true", help="each client keeps its connection open")
    parser.add_argument("--timeline", help="write every answer as JSON [[seconds, kind, latency, status], ...] here")
    parser.add_argument("--rate", type=float, default=20, help="requests per second, open loop")
    parser.add_argument("--inflight", type=int, default=32, help="at most this many requests under way")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--clickhouse-database", help="check events in this ClickHouse database at the end")
    parser.add_argument("--clickhouse-host", default="127.0.0.1")
    parser.add_argument("--clickhouse-port", type=int, default=59000)
    parser.add_argument("--drain-seconds", type=float, default=60)
    parser.add_argument("--probe-pending", type=int, default=50, help="event ids polled for visibility at a time")
    args = parser.parse_args()
    if not 0 < args.seconds <= 3_600 or not 0 < args.rate <= 5_000 or not 1 <= args.inflight <= 512:
        parser.error("--seconds in (0, 3600], --rate in (0, 5000], --inflight in [1, 512]")
    if not 0 <= args.warmup < args.seconds:
        parser.error("--warmup in [0, --seconds)")
    with open(args.tokens_file) as lines:
        users = [(int(u), t) for u, t in (line.split() for line in lines if line.strip())]
    with open(args.post_ids) as lines:
        post_ids = [int(line) for line in lines if line.strip()]
    probe = VisibilityProbe(args) if args.clickhouse_database else None
    if probe is not None:
        probe.start()
    results = run(args, users, post_ids, probe)
    if args.timeline:
        with open(args.timeline, "w") as out:
            json.dump([[round(at, 4), kind, round(s, 5), status] for at, kind, s, status in results.timeline], out)
    report(args, results, event_check(args, results, probe) if probe is not None else [])


if __name__ == "__main__":
    main()
