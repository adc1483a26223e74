"""Ranking quality benchmark (issue 10): the offline evaluation of
ranking/evaluation on the default simulation, on the local ClickHouse (make services).

    .venv/bin/python bench/ranking_quality.py [--seed 42] [--sample 300] [--database nova_bench_quality]

Target (issue 10): ranked NDCG@20 ≥ 1.2 × chronological on the default
simulation, with at most 2 posts of one author in any top 10.

Own namespace, never dev data: the ClickHouse database --database, dropped,
recreated and migrated at the start and dropped at the end.

1. simulate the default world with --seed (ranking/evaluation/simulation.py);
2. write it and rank --sample users with the default profiles, engagement-only
   and chronological feeds (ranking/evaluation/runner.py, as
   `manage.py evaluate_ranking` does);
3. print every parameter, the machine, and one table per label set. The figures
   go to docs/benchmarks.md by hand; this script appends nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime

from benchenv import ROOT, bench_env  # bench/ is the script's own folder

sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--sample", type=int, default=300, help="users to rank")
    parser.add_argument("--database", default="nova_bench_quality")
    args = parser.parse_args()
    if not args.database.startswith("nova_bench"):
        parser.error("--database must start with nova_bench (never dev or test data)")
    if not 1 <= args.sample <= 5_000:
        parser.error("--sample must be in [1, 5,000]")
    return args


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"load average {load}"
    )


def progress(done: int, total: int) -> None:
    if done % 50 == 0 or done == total:
        print(f"ranked {done}/{total} users", flush=True)


def main() -> None:
    args = parse_args()
    os.environ.update(bench_env(LOG_LEVEL="WARNING"))
    import django

    django.setup()
    from django.conf import settings

    from ranking.evaluation import runner
    from ranking.evaluation.simulation import SimulationParams, simulate

    clock = time.monotonic()
    started = datetime.now(UTC)
    print(f"{started:%Y-%m-%d %H:%M} UTC; machine: {machine()}", flush=True)
    simulation = simulate(SimulationParams(seed=args.seed))
    client = runner.prepare_database(settings.CLICKHOUSE, args.database, settings.CLICKHOUSE_SQL_DIR)
    try:
        report = runner.run_evaluation(client, simulation, sample_size=args.sample, progress=progress)
    finally:
        client.disconnect()
        runner.drop_database(settings.CLICKHOUSE, args.database)
    print()
    for line in runner.format_parameters(report):
        print(f"- {line}")
    print(
        f"- wall time: {time.monotonic() - clock:.0f} s in all; "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.seconds.items())
    )
    print(f"- load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for result in report.results:
        print(f"\n### labels '{result.labels}': {runner.LABEL_SETS[result.labels]}")
        print(runner.format_table(result))


if __name__ == "__main__":
    main()
