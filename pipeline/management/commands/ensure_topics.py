from __future__ import annotations

from confluent_kafka import KafkaException
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from nova.kafka import admin_client
from pipeline.topics import all_topics, ensure_topics


class Command(BaseCommand):
    help = "Create the Kafka topics (docs/architecture/) that do not exist yet (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--partitions", type=int, default=settings.KAFKA.partitions)
        parser.add_argument("--replication-factor", type=int, default=settings.KAFKA.replication_factor)

    def handle(self, *args, **options):
        kafka = settings.KAFKA
        try:
            created, existing = ensure_topics(
                admin_client(kafka),
                all_topics(kafka),
                partitions=options["partitions"],
                replication_factor=options["replication_factor"],
            )
        except KafkaException as exc:
            raise CommandError(f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}") from exc
        for name in created:
            self.stdout.write(f"created {name} ({options['partitions']} partitions)")
        for name, count in sorted(existing.items()):
            if name not in created:
                note = "" if count == options["partitions"] else f" (wanted {options['partitions']}: not changed)"
                self.stdout.write(f"exists  {name} ({count} partitions){note}")
