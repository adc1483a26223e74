"""CDC benchmark: Postgres change -> visible in ClickHouse, through the real relay
and consumer processes on the local services (make services).

    .venv/bin/python bench/cdc_pipeline.py [--rate 1000] [--seconds 20] [--backlog 100000]

It uses its own namespace so it never touches dev data: Postgres database
nova_bench (created and migrated), ClickHouse database nova_bench, topic prefix
novabench, slot/publication bench_cdc. Two phases:

1. latency: insert posts at a steady --rate per second for --seconds, one change
   per transaction; a poller reads new ids from ClickHouse every 20 ms and records
   commit -> visible latency (resolution: the poll interval);
2. throughput: with the relay stopped, write --backlog changes (inserts, then an
   update of each row), start relay + consumer and time until ClickHouse holds
   the final state: sustained changes/s of relay + consumer together.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchenv import ROOT, bench_env, postgres, scalar  # bench/ is the script's own folder

sys.path.insert(0, str(ROOT))

# the bench's replication slot, if a run left one (active or not)
DROP_SLOT = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'bench_cdc'"


def load_env() -> dict[str, str]:
    pg_port = bench_env().get("NOVA_PG_PORT", "55432")
    return bench_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{pg_port}/nova_bench",
        CLICKHOUSE_DATABASE="nova_bench",
        KAFKA_TOPIC_PREFIX="novabench",
        CDC_SLOT_NAME="bench_cdc",
        CDC_PUBLICATION_NAME="bench_cdc",
    )


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def start(env: dict[str, str], command: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", command], cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="changes per second in the latency phase")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=100_000, help="rows in the throughput phase (x2 changes)")
    args = parser.parse_args()

    env = load_env()
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    from nova.clickhouse import make_client

    admin_pg = postgres("postgres")
    admin_pg.execute(DROP_SLOT)
    admin_pg.execute("DROP DATABASE IF EXISTS nova_bench WITH (FORCE)")
    admin_pg.execute("CREATE DATABASE nova_bench")
    make_client(settings.CLICKHOUSE, database="default").execute("DROP DATABASE IF EXISTS nova_bench")
    manage(env, "migrate", "--noinput")
    manage(env, "migrate_clickhouse")
    manage(env, "ensure_topics")
    pg = postgres("nova_bench")
    ch = make_client(settings.CLICKHOUSE)
    pg.execute(
        "INSERT INTO users (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,"
        " date_joined, display_name, bio) VALUES ('!', false, 'bench', '', '', '', false, true, now(), '', '')"
    )
    author = scalar(pg, "SELECT id FROM users")
    logs = ROOT / "var" / "bench"
    logs.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- latency
    relay = start(env, "run_cdc_relay", logs / "relay.log")
    consumer = start(env, "run_cdc_consumer", logs / "consumer.log")
    deadline = time.monotonic() + 60
    while not ch.execute("SELECT count() FROM users")[0][0]:  # the snapshot arrived: both are up
        if time.monotonic() > deadline:
            sys.exit("relay/consumer did not start; see var/bench/*.log")
        time.sleep(0.2)
    committed: dict[int, float] = {}
    order: list[int] = []
    visible: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        # ids become visible out of order (six partitions, one batch each), so
        # read from the lowest id not yet seen
        poller = make_client(settings.CLICKHOUSE)
        next_index = 0  # committed ids before it are all visible
        while not done.is_set() or len(visible) < len(committed):
            while next_index < len(order) and order[next_index] in visible:
                next_index += 1
            low = order[next_index] if next_index < len(order) else 0
            rows = poller.execute("SELECT id FROM posts WHERE id >= %(low)s", {"low": low})
            now = time.time()
            for (post_id,) in rows:
                visible.setdefault(post_id, now)
            if done.is_set() and time.time() - done_at[0] > 30:
                break
            time.sleep(0.02)

    done_at = [0.0]
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    total = int(args.rate * args.seconds)
    started = time.monotonic()
    for i in range(total):
        target = started + i / args.rate
        pause = target - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        post_id = scalar(
            pg,
            "INSERT INTO posts (author_id, body, media_url, created_at, updated_at)"
            " VALUES (%s, 'latency', '', now(), now()) RETURNING id",
            (author,),
        )
        committed[post_id] = time.time()
        order.append(post_id)
    achieved = total / (time.monotonic() - started)
    decode_backlog = scalar(
        pg,
        "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, restart_lsn)::bigint"
        " FROM pg_replication_slots WHERE slot_name = 'bench_cdc'",
    )
    done_at[0] = time.time()
    done.set()
    poller.join(40)
    latencies = sorted(visible[i] - committed[i] for i in committed if i in visible)
    missing = len(committed) - len(latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    print(
        f"latency phase: {total} inserts at {achieved:.0f}/s; visible {len(latencies)}, missing {missing};"
        f" WAL re-decoded per peek at the end (confirmed - restart lsn): {decode_backlog / 1e6:.1f} MB"
    )
    print(
        f"  commit -> visible in ClickHouse: p50 {pct(0.5):.0f} ms, p95 {pct(0.95):.0f} ms,"
        f" p99 {pct(0.99):.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )

    # ---------------------------------------------------------------- throughput
    stop(relay)
    before = ch.execute("SELECT count() FROM posts")[0][0]
    chunk = 5_000
    for offset in range(0, args.backlog, chunk):
        n = min(chunk, args.backlog - offset)
        with pg.transaction():
            pg.execute(
                "INSERT INTO posts (author_id, body, media_url, created_at, updated_at)"
                " SELECT %s, 'backlog ' || g, '', now(), now() FROM generate_series(1, %s) g",
                (author, n),
            )
    with pg.transaction():
        pg.execute("UPDATE posts SET body = 'updated', updated_at = now() WHERE body LIKE 'backlog %%'")
    changes = 2 * args.backlog
    started = time.monotonic()
    relay = start(env, "run_cdc_relay", logs / "relay2.log")
    final = "SELECT count() FROM posts FINAL WHERE body = 'updated'"
    while ch.execute(final)[0][0] < args.backlog:
        if time.monotonic() - started > 600:
            sys.exit("throughput phase did not finish within 10 minutes")
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    print(
        f"throughput phase: {changes} changes ({args.backlog} inserts + {args.backlog} updates) backlog;"
        f" relay+consumer drained it in {elapsed:.1f} s = {changes / elapsed:.0f} changes/s"
        f" (rows in ClickHouse before: {before})"
    )
    stop(relay)
    stop(consumer)
    pg.close()
    admin_pg.execute(DROP_SLOT)


if __name__ == "__main__":
    main()
