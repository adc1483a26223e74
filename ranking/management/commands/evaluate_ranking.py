"""Offline quality evaluation: does the ranked feed beat a chronological one?

1. simulate a world with hidden tastes (ranking/evaluation/simulation.py);
2. drop and recreate --database (default nova_eval, never the service's) with
   every ClickHouse migration;
3. write the world's history, rank a sample of users with each profile, and
   score every feed against the users' future engagement (runner.py);
4. print every parameter and the seed, then the results as a markdown table.

The database is left in place for inspection (the next run drops it);
--drop-after removes it.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ranking.evaluation import runner
from ranking.evaluation.simulation import Simulation, SimulationParams, simulate
from ranking.params import RankingParams


def parse_assignment(text: str, defaults: SimulationParams) -> tuple[str, Any]:
    """'name=value' for a SimulationParams field, converted to the field's type."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    known = defaults.as_dict()
    if not sep or name not in known:
        raise CommandError(f"--set {text!r}: expected NAME=VALUE with NAME one of {', '.join(known)}")
    current = known[name]
    try:
        if isinstance(current, datetime):
            return name, datetime.fromisoformat(raw)
        return name, type(current)(raw)
    except ValueError as exc:
        raise CommandError(f"--set {text!r}: {exc}") from exc


def parse_profile(text: str) -> RankingParams:
    """'name=freshness,engagement,affinity' weights over the product defaults."""
    name, sep, weights = text.partition("=")
    parts = weights.split(",")
    if not sep or not name or len(parts) != 3:
        raise CommandError(f"--profile {text!r}: expected NAME=W_FRESHNESS,W_ENGAGEMENT,W_AFFINITY")
    try:
        freshness, engagement, affinity = (float(p) for p in parts)
        return RankingParams(
            name=name, weight_freshness=freshness, weight_engagement=engagement, weight_affinity=affinity
        )
    except ValueError as exc:
        raise CommandError(f"--profile {text!r}: {exc}") from exc


class Command(BaseCommand):
    help = "Offline ranking quality on a simulated world: ranked vs chronological vs engagement-only feeds."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = SimulationParams()
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--users", type=int, default=defaults.users)
        parser.add_argument("--topics", type=int, default=defaults.topics)
        parser.add_argument("--history-days", type=float, default=defaults.history_days)
        parser.add_argument("--future-hours", type=float, default=defaults.future_hours)
        parser.add_argument("--sample", type=int, default=runner.DEFAULT_SAMPLE, help="users to rank")
        parser.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="any other simulation parameter (repeatable), e.g. --set click_bond=1.5",
        )
        parser.add_argument(
            "--profile",
            action="append",
            default=[],
            metavar="NAME=WF,WE,WA",
            help="ranking profiles besides the default, by weights (repeatable; replaces "
            "engagement_heavy and affinity_heavy)",
        )
        parser.add_argument(
            "--resamples",
            type=int,
            default=runner.BOOTSTRAP_RESAMPLES,
            help="bootstrap resamples for the ratio's interval",
        )
        parser.add_argument(
            "--database",
            default="nova_eval",
            help="ClickHouse database to drop, recreate and fill (never the service's)",
        )
        parser.add_argument("--drop-after", action="store_true", help="drop --database when done")

    def handle(self, *args: Any, **options: Any) -> None:
        params = self.simulation_params(options)
        profiles = self.profiles(options)
        simulation = self.simulate(params)
        client = self.prepare(options["database"])
        try:
            report = runner.run_evaluation(
                client,
                simulation,
                profiles=profiles,
                sample_size=options["sample"],
                resamples=options["resamples"],
                progress=self.progress,
            )
        finally:
            client.disconnect()
        self.print_report(report, options["database"])
        if options["drop_after"]:
            runner.drop_database(settings.CLICKHOUSE, options["database"])

    def simulation_params(self, options: dict[str, Any]) -> SimulationParams:
        defaults = SimulationParams()
        values = dict(parse_assignment(text, defaults) for text in options["set"])
        values.update(
            seed=options["seed"],
            users=options["users"],
            topics=options["topics"],
            history_days=options["history_days"],
            future_hours=options["future_hours"],
        )
        try:
            return dataclasses.replace(defaults, **values)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def profiles(self, options: dict[str, Any]) -> tuple[RankingParams, ...]:
        if not options["profile"]:
            return runner.DEFAULT_PROFILES
        return (RankingParams(), *(parse_profile(text) for text in options["profile"]))

    def simulate(self, params: SimulationParams) -> Simulation:
        started = time.perf_counter()
        simulation = simulate(params)
        self.stdout.write(f"simulated in {time.perf_counter() - started:.1f} s")
        return simulation

    def prepare(self, database: str) -> Any:
        try:
            return runner.prepare_database(settings.CLICKHOUSE, database, settings.CLICKHOUSE_SQL_DIR)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

    def progress(self, done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            self.stdout.write(f"ranked {done}/{total} users")

    def print_report(self, report: runner.EvaluationReport, database: str) -> None:
        self.stdout.write("")
        self.stdout.write("## Parameters")
        for line in runner.format_parameters(report):
            self.stdout.write(f"- {line}")
        self.stdout.write(f"- ClickHouse database: {database}")
        timing = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.seconds.items())
        self.stdout.write(f"- wall time: {timing}")
        self.stdout.write("")
        for result in report.results:
            self.stdout.write(f"## Results: labels '{result.labels}' ({runner.LABEL_SETS[result.labels]})")
            self.stdout.write(runner.format_table(result))
            self.stdout.write("")
