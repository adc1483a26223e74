"""Events API benchmark: POST /api/v1/events/ through gunicorn, batches of 100,
on the local services (make services). Bounded in requests and seconds;
loopback only.

    .venv/bin/python bench/events_api.py [--workers 2] [--threads 4] [--clients 8]
                                         [--batch 100] [--requests 1500] [--seconds 60]

Own namespace, never dev data: Postgres database nova_bench (created and
migrated), topic prefix novabench<run>, Redis key prefix novabench<run>.

1. set up --clients users with API tokens and a few posts by other users;
2. start `gunicorn nova.wsgi` on 127.0.0.1 (a free port) with --workers and
   --threads, and wait for /healthz;
3. --clients threads, each with one keep-alive connection and its own user,
   POST pre-built batches of --batch events (fresh event_ids each) until
   --requests are done or --seconds have passed; every answer must be 202 with
   the whole batch accepted (each one waited for the broker's acks);
4. report accepted events/s over the wall time of step 3 and the p50/p95/p99
   request latency seen by the clients.
The clients run on the same 2 cores as the server; their cost is part of the figure.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from benchenv import postgres  # bench/ is the script's own folder

ROOT = Path(__file__).resolve().parents[1]
RUN = uuid.uuid4().hex[:6]
BENCH_DB = "nova_bench"


def bench_environment() -> dict[str, str]:
    port = os.environ.get("NOVA_PG_PORT", "55432")
    return {
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:{port}/{BENCH_DB}"),
        "KAFKA_TOPIC_PREFIX": f"novabench{RUN}",
        "REDIS_KEY_PREFIX": f"novabench{RUN}",
        "DJANGO_SETTINGS_MODULE": "nova.settings",
        "DJANGO_DEBUG": "false",
        # a local run: the API's throttle is not what is measured
        "API_THROTTLE_USER": "1000000/min",
        "API_THROTTLE_EVENTS": "100000000/min",  # events have their own quota (docs/api/conventions.md)
    }


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    if not (os.environ.get("DJANGO_SECRET_KEY") or os.environ.get("DJANGO_SECRET_KEY_FILE")):
        os.environ["DJANGO_SECRET_KEY"] = f"bench-only-{uuid.uuid4().hex}"  # this run's server only
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def ensure_database() -> None:
    from django.conf import settings

    name = settings.DATABASES["default"]["NAME"]
    with postgres("postgres") as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_fixtures(clients: int) -> tuple[list[str], list[int]]:
    from django.conf import settings
    from rest_framework.authtoken.models import Token

    from feed.models import Post, User
    from nova.kafka import admin_client
    from pipeline.topics import all_topics, ensure_topics

    ensure_topics(
        admin_client(settings.KAFKA),
        all_topics(settings.KAFKA),
        partitions=settings.KAFKA.partitions,
        replication_factor=settings.KAFKA.replication_factor,
    )
    author, _ = User.objects.get_or_create(username="bench-author")
    posts = [p.id for p in Post.objects.filter(author=author)[:20]]
    if len(posts) < 20:
        posts += [Post.objects.create(author=author, body=f"bench {i}").id for i in range(20 - len(posts))]
    tokens = []
    for i in range(clients):
        user, _ = User.objects.get_or_create(username=f"bench-client-{i}")
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    return tokens, posts


def drop_topics() -> None:
    """The local broker keeps every topic in memory: give this run's back."""
    from django.conf import settings

    from nova.kafka import admin_client
    from pipeline.topics import all_topics

    for future in admin_client(settings.KAFKA).delete_topics(all_topics(settings.KAFKA)).values():
        try:
            future.result(timeout=15)
        except Exception as exc:  # best effort: report, the figures still stand
            print(f"could not delete a bench topic: {exc}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, workers: int, threads: int, env: dict[str, str]) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "nova.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not come up")


def batch_body(posts: list[int], size: int, n: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    kinds = ("impression", "impression", "impression", "view", "click", "like")
    return orjson.dumps(
        {
            "events": [
                {
                    "event_id": str(uuid.uuid4()),
                    "post_id": posts[(n + i) % len(posts)],
                    "event_type": kinds[i % len(kinds)],
                    "ts": now,
                    "position": i,
                    "surface": "home",
                }
                for i in range(size)
            ]
        }
    )


class Client(threading.Thread):
    def __init__(self, port: int, token: str, bodies: list[bytes], stop_at: float) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.bodies, self.stop_at = port, token, bodies, stop_at
        self.latencies: list[float] = []
        self.accepted = 0
        self.failures: dict[str, int] = {}

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        for body in self.bodies:
            if time.monotonic() > self.stop_at:
                break
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/events/", body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except OSError as exc:
                self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            self.latencies.append(time.perf_counter() - started)
            if response.status == 202:
                self.accepted += orjson.loads(payload)["accepted"]
            else:
                key = f"{response.status} {payload[:80]!r}"
                self.failures[key] = self.failures.get(key, 0) + 1


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1500, help="total, over all clients")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop sending after this long")
    args = parser.parse_args()

    env = bench_environment()
    setup_django(env)
    ensure_database()
    tokens, posts = make_fixtures(args.clients)
    per_client = args.requests // args.clients
    bodies = [
        [batch_body(posts, args.batch, c * per_client + n) for n in range(per_client)] for c in range(args.clients)
    ]
    port = free_port()
    server = start_gunicorn(port, args.workers, args.threads, env)
    try:
        # warm-up: each worker opens its producer and DB connection
        warm = [
            Client(
                port,
                tokens[0],
                [batch_body(posts, args.batch, n) for n in range(2 * args.workers)],
                time.monotonic() + 30,
            )
        ]
        warm[0].run()
        started = time.monotonic()
        clients = [
            Client(port, token, chunk, started + args.seconds) for token, chunk in zip(tokens, bodies, strict=True)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        drop_topics()

    latencies = sorted(lat for client in clients for lat in client.latencies)
    accepted = sum(client.accepted for client in clients)
    failures: dict[str, int] = {}
    for client in clients:
        for key, count in client.failures.items():
            failures[key] = failures.get(key, 0) + count
    print(
        f"gunicorn --workers {args.workers} --threads {args.threads}; {args.clients} client threads; "
        f"batches of {args.batch}; topic prefix {env['KAFKA_TOPIC_PREFIX']}"
    )
    print(f"requests: {len(latencies)} in {elapsed:.1f}s; accepted events: {accepted}; failures: {failures or 'none'}")
    print(f"API ingest: {accepted / elapsed:,.0f} events/s ({len(latencies) / elapsed:,.1f} requests/s)")
    if latencies:
        print(
            f"latency: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p95 {percentile(latencies, 0.95) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
