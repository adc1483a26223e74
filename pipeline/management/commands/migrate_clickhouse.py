from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from nova.clickhouse import make_client
from pipeline.clickhouse_migrations import MigrationError, MigrationRunner, Topology


class Command(BaseCommand):
    help = "Apply the versioned ClickHouse migrations of infra/clickhouse/ (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--plan", action="store_true", help="show what would be applied, change nothing")
        parser.add_argument("--database", help="target database (default: CLICKHOUSE_DATABASE)")

    def handle(self, *args, **options):
        config = settings.CLICKHOUSE
        database = options["database"] or config.database
        runner = MigrationRunner(
            client=make_client(config, database=database),
            admin=make_client(config, database="default"),
            database=database,
            sql_dir=settings.CLICKHOUSE_SQL_DIR,
            topology=Topology.of(config),
        )
        try:
            if options["plan"]:
                entries = runner.plan()
                self.stdout.write(f"{database}: {runner.topology.name}")
                if not entries:
                    self.stdout.write(f"{database}: nothing to apply")
                for entry in entries:
                    self.stdout.write(
                        f"{database}: {entry.action:<6} {entry.migration.version:04d} {entry.migration.name}"
                    )
                return
            applied = runner.apply()
        except MigrationError as exc:
            raise CommandError(str(exc)) from exc
        for migration in applied:
            self.stdout.write(f"{database}: applied {migration.version:04d} {migration.name}")
        if not applied:
            self.stdout.write(f"{database}: up to date")
