"""The one management command shape every consumer uses.

`run_consumer NAME` and the named shortcuts (`run_events_consumer`, ...) are
thin: they build the runner from the registry and settings, then run it.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from monitoring import exposition
from pipeline.consumers import CONSUMERS
from pipeline.consumers.faults import Faults
from pipeline.consumers.framework import ConsumerRunner, DeadLetterFlood, RunnerOptions, tune_gc_for_batches

logger = logging.getLogger(__name__)


class ConsumerCommand(BaseCommand):
    consumer_name: str | None = None  # set by the named shortcuts
    help = "Run a Kafka consumer from the registry in pipeline/consumers/."

    def add_arguments(self, parser):
        if self.consumer_name is None:
            parser.add_argument("name", choices=sorted(CONSUMERS))
        parser.add_argument("--max-batch-size", type=int)
        parser.add_argument("--max-batch-time-ms", type=int)
        parser.add_argument("--metrics-port", type=int, default=None, help="0 = no metrics endpoint")
        parser.add_argument("--max-seconds", type=float, help="stop after this long (benchmarks, tests)")
        # negative control for fault-injection tests only: loses data on a crash
        parser.add_argument("--test-commit-before-write", action="store_true", help="TESTS ONLY: unsafe")

    def build_runner(self, options) -> ConsumerRunner:
        name = self.consumer_name or options["name"]
        spec = CONSUMERS[name]
        runner_options = RunnerOptions(
            max_batch_size=options["max_batch_size"] or spec.max_batch_size,
            max_batch_time_ms=options["max_batch_time_ms"] or spec.max_batch_time_ms,
            faults=self.build_faults(options),
        )
        return ConsumerRunner(spec, settings.KAFKA, self.build_handler(spec, runner_options.faults), runner_options)

    def build_faults(self, options) -> Faults:
        """TEST-ONLY switches from the `--test-*` flags; a named shortcut may add its own."""
        return Faults(commit_before_write=options["test_commit_before_write"])

    def build_handler(self, spec, faults: Faults):
        """The registry's handler; a named shortcut may pass it the faults."""
        return spec.handler_factory()

    def handle(self, *args, **options):
        runner = self.build_runner(options)
        port = options["metrics_port"]
        exposition.serve(settings.CONSUMER_METRICS_PORTS.get(runner.spec.name, 0) if port is None else port)
        runner.install_signal_handlers()
        tune_gc_for_batches()
        logger.info(
            "%s: consuming %s as group %s", runner.spec.name, runner.spec.topics(settings.KAFKA), runner.spec.group_id
        )
        try:
            runner.run(max_seconds=options["max_seconds"])
        except DeadLetterFlood as exc:
            raise CommandError(str(exc)) from exc
        logger.info("%s: stopped", runner.spec.name)
