"""Relay Postgres changes (pgoutput slot) to Kafka as Debezium envelopes. See pipeline/cdc/relay.py."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from monitoring import exposition
from pipeline.cdc import relay
from pipeline.cdc.process import StopFlag, postgres_connector


class Command(BaseCommand):
    help = "Stream Postgres changes to the nova.public.<table> topics (Debezium envelopes)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--snapshot", action="store_true", help="emit every existing row (op r) before streaming")

    def handle(self, *args: Any, snapshot: bool = False, **options: Any) -> None:
        logging.getLogger("pipeline").setLevel(logging.INFO)
        stop = StopFlag().install()
        exposition.serve(settings.CDC.relay_metrics_port)
        db = settings.DATABASES["default"]
        instance = relay.Relay(
            settings.CDC,
            settings.KAFKA,
            connect=postgres_connector(db),
            producer_factory=lambda: relay.make_producer(settings.KAFKA),
            db_name=str(db["NAME"]),
        )
        relay.run(instance, stop, force_snapshot=snapshot)
        self.stdout.write("cdc relay stopped")
