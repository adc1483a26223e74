"""A small Nova for bench/load.py's smoke runs, in its own namespaces: Postgres and
ClickHouse database nova_bench_load (created, migrated, dropped at the end), Redis
prefix and Kafka topic prefix novabenchload<run>; the Procfile's web and
events_consumer lines started with those overrides; --users users with API tokens
(created in bulk in the database), each following --follows others, and --posts
posts; then bench/load.py with the rest of the arguments; everything stopped and
dropped at the end.

    .venv/bin/python bench/load_stack.py --users 500 --posts 5000 -- --seconds 30 --rate 10

Every Procfile process runs: web, events_consumer, cdc_relay and cdc_consumer (on
a replication slot and publication named after the run, the slot dropped at the
end), worker (with its own --hostname) and beat (its schedule file in the run's
temporary directory). Not yet: a bench/worldgen.py world.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchenv import ROOT, bench_env

sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:6]
DATABASE = "nova_bench_load"
PREFIX = f"novabenchload{RUN}"
ENV = bench_env(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:{os.environ.get('NOVA_PG_PORT', '55432')}/{DATABASE}",
    CLICKHOUSE_DATABASE=DATABASE,
    REDIS_KEY_PREFIX=PREFIX,
    KAFKA_TOPIC_PREFIX=PREFIX,
    EVENTS_CONSUMER_GROUP=f"{PREFIX}-events",
    CELERY_TASK_DEFAULT_QUEUE=PREFIX,
    DJANGO_DEBUG="false",
    CDC_SLOT_NAME=PREFIX,
    CDC_PUBLICATION_NAME=PREFIX,
    LOG_LEVEL="WARNING",
    PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
)
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402


def procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.partition(":")[2].strip()
    raise SystemExit(f"no {name} line in the Procfile")


def pg_admin():
    import psycopg

    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db.get("PASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    )


def build(users: int, posts: int, follows: int, seed: int, workdir: Path) -> tuple[Path, Path]:
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    from feed.models import Follow, Post, User
    from nova.clickhouse import make_client
    from nova.kafka import admin_client
    from pipeline.clickhouse_migrations import MigrationRunner
    from pipeline.topics import all_topics, ensure_topics

    connection.close()
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    call_command("migrate", verbosity=0, interactive=False)
    admin = make_client(settings.CLICKHOUSE, database="default")
    admin.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    MigrationRunner(make_client(settings.CLICKHOUSE), admin, DATABASE, settings.CLICKHOUSE_SQL_DIR).apply()
    ensure_topics(admin_client(settings.KAFKA), all_topics(settings.KAFKA), partitions=2, replication_factor=1)
    rng = random.Random(seed)
    unusable = make_password(None)
    made = User.objects.bulk_create(
        User(username=f"load{i}", password=unusable, display_name=f"Load {i}") for i in range(users)
    )
    tokens = Token.objects.bulk_create(Token(key=uuid.uuid4().hex + uuid.uuid4().hex[:8], user=u) for u in made)
    Follow.objects.bulk_create(
        (Follow(follower=u, followee=v) for u in made for v in rng.sample(made, min(follows, users)) if v.pk != u.pk),
        ignore_conflicts=True,
    )
    post_rows = Post.objects.bulk_create(Post(author=rng.choice(made), body=f"seed post {i}") for i in range(posts))
    tokens_file, posts_file = workdir / "tokens.txt", workdir / "posts.txt"
    tokens_file.write_text("".join(f"{t.user_id} {t.key}\n" for t in tokens))
    posts_file.write_text("".join(f"{p.pk}\n" for p in post_rows))
    print(f"{DATABASE}: {users} users with tokens, {posts} posts, about {follows} follows each", flush=True)
    return tokens_file, posts_file


def start(name: str, workdir: Path, extra: dict[str, str], suffix: str = "") -> subprocess.Popen[bytes]:
    line = procfile_line(name) + suffix
    with open(workdir / f"{name}.log", "wb") as log:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {line}"],
            cwd=ROOT,
            env={**ENV, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    print(f"{name} (pid {process.pid}): {line}", flush=True)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    import signal

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def drop() -> None:
    from nova import redis as nova_redis
    from nova.clickhouse import make_client

    connection.close()
    with pg_admin() as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", [PREFIX]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    make_client(settings.CLICKHOUSE, database="default").execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    client = nova_redis.client()
    if client is not None:
        for key in client.scan_iter(f"{PREFIX}*", count=1000):
            client.delete(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--posts", type=int, default=5_000)
    parser.add_argument("--follows", type=int, default=20)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("load", nargs=argparse.REMAINDER, help="-- then bench/load.py's arguments")
    args = parser.parse_args()
    port = 18000 + random.randrange(1000)
    processes = []
    with tempfile.TemporaryDirectory(prefix="nova-load-") as tmp:
        workdir = Path(tmp)
        try:
            tokens, posts = build(args.users, args.posts, args.follows, args.seed, workdir)
            processes.append(start("web", workdir, {"WEB_BIND": f"127.0.0.1:{port}"}))
            processes.append(start("events_consumer", workdir, {}))
            processes.append(start("cdc_relay", workdir, {}))
            processes.append(start("cdc_consumer", workdir, {}))
            processes.append(start("worker", workdir, {}, f" --hostname load-{RUN}@%h"))
            processes.append(start("beat", workdir, {"CELERY_BEAT_SCHEDULE_FILE": str(workdir / "beat-schedule")}))
            time.sleep(5)
            load = [a for a in args.load if a != "--"]
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "load.py"),
                    "--url",
                    f"http://127.0.0.1:{port}",
                    "--tokens-file",
                    str(tokens),
                    "--post-ids",
                    str(posts),
                    "--clickhouse-database",
                    DATABASE,
                    *load,
                ],
                cwd=ROOT,
                env=ENV,
                check=False,
            )
        finally:
            for process in processes:
                stop(process)
            for log in sorted(workdir.glob("*.log")):
                errors = [
                    line
                    for line in log.read_text(errors="replace").splitlines()
                    if "Error" in line or "Traceback" in line
                ]
                print(f"{log.name}: {len(errors)} error lines" + (f", last: {errors[-1][:200]}" if errors else ""))
            drop()


if __name__ == "__main__":
    main()
