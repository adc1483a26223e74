"""Issue 15's load and soak runs: a whole Nova in its own namespaces, driven by
bench/load.py through its public HTTP API, with every process's memory and the
pipelines' lag sampled, and the plots drawn.

    .venv/bin/python bench/load_stack.py -- --seconds 120 --warmup 30 --rate 200      # a load run
    .venv/bin/python bench/load_stack.py --sample-seconds 10 --plots docs/img/soak \\
        -- --seconds 900 --warmup 60 --rate 100                                        # a soak

1. The world: bench/worldgen.py (the ranking and feed benchmarks' generator,
   anchored at the current time: --users users, --posts posts over 7 days,
   follows, likes, comments, mutes, --events events), written by bench/worlddb.py
   into Postgres (database nova_bench_load, migrated, COPY, an API token per
   user) and ClickHouse (database of the same name, migrated). Redis and Kafka
   topic prefix novabenchload<run>; a replication slot and publication of that
   name. Everything is dropped at the end.
2. Every Procfile process as supervisord would start it (`bash -c 'exec <line>'`):
   web on a free port, events_consumer, cdc_relay, cdc_consumer, worker, beat,
   each with free metrics ports and the namespaces above.
3. bench/load.py with the arguments after `--` (users are the world's active
   users in id order, so the Zipf's most active users are the first ids).
   Every --sample-seconds: the resident memory (RSS) of each process group, and
   of the servers it shares (Postgres, Redis, ClickHouse, the broker); the
   events and CDC consumers' `consumer_lag` and the relay's `cdc_slot_lag_bytes`
   read from their /metrics.
4. The report (after load.py's): lag (max during the measured part, at the end),
   memory per process (first sample after the warm-up, last, max, change), the
   error lines of every process's log; the plots <--plots>-latency.png
   (P50/P95/P99 of feed reads and of event batches, and requests/s, per 5 s) and
   <--plots>-memory.png (RSS per process over time). matplotlib comes from
   requirements-bench.txt (`make bench-load` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchenv import ROOT, bench_env, commit, free_port, load_avg, machine, postgres, procfile_line, venv_path

sys.path.insert(0, str(ROOT))
from worldgen import build_world, world_arguments

RUN = uuid.uuid4().hex[:6]
DATABASE = "nova_bench_load"
PREFIX = f"novabenchload{RUN}"
PORTS = {
    name: free_port()
    for name in ("web", "events_consumer", "cdc_consumer", "cdc_relay", "worker", "beat")
}  # fmt: skip
ENV = bench_env(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:{os.environ.get('NOVA_PG_PORT', '55432')}/{DATABASE}",
    CLICKHOUSE_DATABASE=DATABASE,
    REDIS_KEY_PREFIX=PREFIX,
    KAFKA_TOPIC_PREFIX=PREFIX,
    EVENTS_CONSUMER_GROUP=f"{PREFIX}-events",
    CDC_CONSUMER_GROUP=f"{PREFIX}-cdc",
    CELERY_TASK_DEFAULT_QUEUE=PREFIX,
    DJANGO_DEBUG="false",
    CDC_SLOT_NAME=PREFIX,
    CDC_PUBLICATION_NAME=PREFIX,
    LOG_LEVEL="WARNING",
    WEB_BIND=f"127.0.0.1:{PORTS['web']}",
    EVENTS_CONSUMER_METRICS_PORT=str(PORTS["events_consumer"]),
    CDC_CONSUMER_METRICS_PORT=str(PORTS["cdc_consumer"]),
    CDC_RELAY_METRICS_PORT=str(PORTS["cdc_relay"]),
    CELERY_WORKER_METRICS_PORT=str(PORTS["worker"]),
    CELERY_BEAT_METRICS_PORT=str(PORTS["beat"]),
    PATH=venv_path(),
)
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from worlddb import CLICKHOUSE_SETTINGS, write_clickhouse, write_postgres  # noqa: E402

PROCESSES = ("web", "events_consumer", "cdc_relay", "cdc_consumer", "worker", "beat")
SHARED_SERVERS = {"postgres": "postgres", "redis": "redis-server", "clickhouse": "clickhouse-serv", "broker": "tansu"}
# (command names as /proc shows them, at most 15 characters: matched by prefix)
LAG = {  # what each /metrics says about the lag of its pipeline
    "events_consumer": "consumer_lag",
    "cdc_consumer": "consumer_lag",
    "cdc_relay": "cdc_slot_lag_bytes",
}


def build(args: argparse.Namespace, workdir: Path) -> tuple[Path, Path]:
    from django.core.management import call_command

    from nova.clickhouse import make_client
    from nova.kafka import admin_client
    from pipeline.clickhouse_migrations import MigrationRunner
    from pipeline.topics import all_topics, ensure_topics

    started = time.perf_counter()
    world, _, source = build_world(args, datetime.now(UTC).replace(microsecond=0))
    connection.close()
    with postgres("postgres") as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    call_command("migrate", verbosity=0, interactive=False)
    counts = write_postgres(world, args.seed + 1)
    admin = make_client(settings.CLICKHOUSE, database="default")
    admin.execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    MigrationRunner(make_client(settings.CLICKHOUSE), admin, DATABASE, settings.CLICKHOUSE_SQL_DIR).apply()
    client = make_client(settings.CLICKHOUSE, settings=CLICKHOUSE_SETTINGS)
    write_clickhouse(client, DATABASE, world, source, args.events)
    ensure_topics(admin_client(settings.KAFKA), all_topics(settings.KAFKA), partitions=6, replication_factor=1)
    tokens_file, posts_file = workdir / "tokens.txt", workdir / "posts.txt"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.user_id, t.key FROM authtoken_token t JOIN users u ON u.id = t.user_id"
            " WHERE u.is_active ORDER BY t.user_id"
        )
        tokens_file.write_text("".join(f"{user} {key}\n" for user, key in cursor.fetchall()))
        cursor.execute("SELECT id FROM posts WHERE deleted_at IS NULL ORDER BY id")
        posts_file.write_text("".join(f"{post}\n" for (post,) in cursor.fetchall()))
    print(
        f"{DATABASE}: " + ", ".join(f"{n:,} {table}" for table, n in counts.items())
        + f", {args.events:,} events in ClickHouse; built in {time.perf_counter() - started:.0f} s",
        flush=True,
    )  # fmt: skip
    return tokens_file, posts_file


def start(name: str, workdir: Path) -> subprocess.Popen[bytes]:
    line = procfile_line(name)
    extra = {}
    if name == "worker":
        line += f" --hostname load-{RUN}@%h"
        extra["CELERY_WORKER_PROMETHEUS_DIR"] = str(workdir / "prometheus-worker")
        (workdir / "prometheus-worker").mkdir()
    if name == "beat":
        extra["CELERY_BEAT_SCHEDULE_FILE"] = str(workdir / "beat-schedule")
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
    with postgres("postgres") as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", [PREFIX]
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    make_client(settings.CLICKHOUSE, database="default").execute(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    client = nova_redis.client()
    if client is not None:
        for key in client.scan_iter(f"{PREFIX}*", count=1000):
            client.delete(key)


# ------------------------------------------------------------------ sampling memory and lag
PAGE, TICKS = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")


def usage() -> tuple[dict[int, list[float]], dict[str, list[float]]]:
    """(bytes resident, CPU seconds used so far) per process group, and per command name (for the shared servers)."""
    groups: dict[int, list[float]] = defaultdict(lambda: [0, 0])
    names: dict[str, list[float]] = defaultdict(lambda: [0, 0])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        rss = int(fields[21]) * PAGE  # fields 24 (rss), 14 and 15 (utime, stime) of stat(5), counted after the name
        cpu = (int(fields[11]) + int(fields[12])) / TICKS
        for total in (groups[int(fields[2])], names[name]):
            total[0] += rss
            total[1] += cpu
    return groups, names


def scrape(port: int, metric: str) -> float | None:
    """The sum of `metric` over its labels on 127.0.0.1:port/metrics, None when it has none or no answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((metric + "{", metric + " "))
    ]  # fmt: skip
    return sum(values) if values else None


@dataclass
class Sample:
    at: float  # seconds since the sampler started
    rss: dict[str, float] = field(default_factory=dict)  # MiB per process group (or shared server)
    lag: dict[str, float | None] = field(default_factory=dict)  # per pipeline, None: no answer
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used so far, per process group


class Sampler(threading.Thread):
    def __init__(self, processes: dict[str, subprocess.Popen[bytes]], every: float) -> None:
        super().__init__(daemon=True)
        self.processes, self.every, self.stopping = processes, every, threading.Event()
        self.started = time.monotonic()
        self.samples: list[Sample] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            groups, names = usage()
            sample = Sample(time.monotonic() - self.started)
            for name, process in self.processes.items():
                rss, cpu = groups.get(process.pid, (0, 0))
                sample.rss[name], sample.cpu[name] = rss / 2**20, cpu
            for label, command in SHARED_SERVERS.items():
                own = [v for k, v in names.items() if k.startswith(command)]
                sample.rss[f"{label} (shared)"] = sum(v[0] for v in own) / 2**20
                sample.cpu[f"{label} (shared)"] = sum(v[1] for v in own)
            sample.cpu["every process on the machine"] = sum(v[1] for v in groups.values())
            for name, metric in LAG.items():
                sample.lag[name] = scrape(PORTS[name], metric)
            self.samples.append(sample)
            self.stopping.wait(self.every)


def lag_and_memory(samples: list[Sample], load_started: float, warmup: float) -> None:
    measured = [s for s in samples if s.at >= load_started + warmup]
    if not measured:
        print("no samples after the warm-up")
        return
    print("\n| pipeline lag (sampled) | max during the measured part | at the end |\n|---|---:|---:|")
    units = {"events_consumer": "messages", "cdc_consumer": "messages", "cdc_relay": "WAL bytes"}
    for name in LAG:
        values = [v for s in measured if (v := s.lag.get(name)) is not None]
        print(
            f"| {name} ({units[name]}) | {max(values):,.0f} | {values[-1]:,.0f} |" if values else f"| {name} | - | - |"
        )
    print(
        f"\n| process | RSS MiB after the warm-up | at the end | max | change | CPU cores (mean) |"
        f"\n|---|---:|---:|---:|---:|---:|"
        f"\n(first sample at {measured[0].at - load_started:.0f} s of the load, one every "
        f"{measured[1].at - measured[0].at if len(measured) > 1 else 0:.0f} s, {len(measured)} samples)"
    )
    span = measured[-1].at - measured[0].at
    for key in measured[0].cpu:
        values = [s.rss.get(key, 0) for s in measured]
        first, last = values[0], values[-1]
        cores = (measured[-1].cpu[key] - measured[0].cpu[key]) / span if span else float("nan")
        memory = (
            f"{first:,.1f} | {last:,.1f} | {max(values):,.1f} | {last - first:+,.1f}"
            if key in measured[0].rss
            else "| | |"
        )
        print(f"| {key} | {memory} | {cores:.2f} |")


# ------------------------------------------------------------------ plots
def plot(prefix: str, timeline_file: Path, samples: list[Sample], load_started: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from load import percentile

    timeline = json.loads(timeline_file.read_text())
    window = 5.0
    buckets: dict[tuple[str, int], list[float]] = defaultdict(list)
    counts: dict[int, int] = defaultdict(int)
    for at, kind, seconds, _status in timeline:
        bucket = int(at // window)
        counts[bucket] += 1
        group = "feed" if kind.startswith("feed") else "events" if kind == "events" else None
        if group:
            buckets[(group, bucket)].append(seconds * 1000)
    fig, (latency, rate) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=(3, 1))
    for group, style in (("feed", "-"), ("events", ":")):
        keys = sorted(b for g, b in buckets if g == group)
        xs = [(b + 0.5) * window for b in keys]
        for q, color in ((0.5, "tab:green"), (0.95, "tab:orange"), (0.99, "tab:red")):
            ys = [percentile(buckets[(group, b)], q) for b in keys]
            latency.plot(xs, ys, style, color=color, label=f"{group} P{round(q * 100)}")
    latency.axhline(100, color="grey", linewidth=0.8, linestyle="--", label="feed P95 target")
    latency.axhline(250, color="grey", linewidth=0.8, linestyle="-.", label="feed P99 target")
    latency.set_ylabel(f"latency, ms (per {window:g} s)")
    latency.set_yscale("log")
    latency.legend(loc="upper right", fontsize=8, ncol=2)
    latency.grid(True, which="both", alpha=0.3)
    keys = sorted(counts)
    rate.plot([(b + 0.5) * window for b in keys], [counts[b] / window for b in keys], color="tab:blue")
    rate.set_ylabel("answers/s")
    rate.set_xlabel("seconds since the load started")
    rate.grid(True, alpha=0.3)
    fig.suptitle(f"Nova under bench/load.py ({commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    fig.tight_layout()
    fig.savefig(f"{prefix}-latency.png", dpi=90)
    fig, ax = plt.subplots(figsize=(10, 5))
    for key in samples[0].rss:
        ax.plot([s.at - load_started for s in samples], [s.rss[key] for s in samples], label=key)
    ax.set_ylabel("RSS, MiB")
    ax.set_xlabel("seconds since the load started")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax.grid(True, alpha=0.3)
    fig.suptitle("Resident memory of every process group (and the shared servers)")
    fig.tight_layout()
    fig.savefig(f"{prefix}-memory.png", dpi=90)
    print(f"\nplots: {prefix}-latency.png, {prefix}-memory.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    world_arguments(parser)
    parser.add_argument("--sample-seconds", type=float, default=2.0, help="memory and lag, this often")
    parser.add_argument("--plots", default="", help="write <this>-latency.png and <this>-memory.png")
    parser.add_argument("--settle-seconds", type=float, default=10, help="after the processes start, before the load")
    parser.add_argument("load", nargs=argparse.REMAINDER, help="-- then bench/load.py's arguments")
    args = parser.parse_args()
    load = [a for a in args.load if a != "--"]
    warmup = float(load[load.index("--warmup") + 1]) if "--warmup" in load else 0.0
    print(f"machine: {machine()}; commit {commit()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; load {load_avg()}")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="nova-load-") as tmp:
        workdir = Path(tmp)
        sampler = None
        try:
            tokens, posts = build(args, workdir)
            for name in PROCESSES:
                processes[name] = start(name, workdir)
            sampler = Sampler(processes, args.sample_seconds)
            sampler.start()
            time.sleep(args.settle_seconds)
            load_started = time.monotonic() - sampler.started
            print(f"load average before the load: {load_avg()}", flush=True)
            timeline = workdir / "timeline.json"
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "bench" / "load.py"),
                    "--url",
                    f"http://127.0.0.1:{PORTS['web']}",
                    "--tokens-file",
                    str(tokens),
                    "--post-ids",
                    str(posts),
                    "--clickhouse-database",
                    DATABASE,
                    "--timeline",
                    str(timeline),
                    *load,
                ],
                cwd=ROOT,
                env=ENV,
                check=False,
            )
            print(f"load average after the load: {load_avg()}")
            sampler.stopping.set()
            sampler.join(10)
            lag_and_memory(sampler.samples, load_started, warmup)
            if args.plots and timeline.exists():
                plot(args.plots, timeline, sampler.samples, load_started)
        finally:
            if sampler is not None:
                sampler.stopping.set()
            for process in processes.values():
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
