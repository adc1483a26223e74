"""Versioned ClickHouse schema migrations from infra/clickhouse/{tables,views}/.

A migration is a file `NNNN_name.sql`; versions are unique across both folders
and applied in ascending order. Applied files are recorded (with a checksum) in
the ledger table `nova_schema_migrations` and are never edited afterwards: a
change is a new file. A file may start with `-- requires-clickhouse: 20.3` to be
applied only on servers at least that new; on older servers it stays pending
and `--plan` says why. Statements are separated by a `;` at the end of a line
and should use IF [NOT] EXISTS so a half-applied file can be re-run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from clickhouse_driver import Client

from nova.clickhouse import parse_version, server_version

MIGRATION_FOLDERS = ("tables", "views")
LEDGER_TABLE = "nova_schema_migrations"
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REQUIRES = re.compile(r"^--\s*requires-clickhouse:\s*([\d.]+)\s*$", re.MULTILINE)


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    requires: tuple[int, ...] | None

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def split_statements(sql: str) -> list[str]:
    """Split on `;` at line ends; drop comment-only chunks."""
    statements = []
    for chunk in re.split(r";[ \t]*(?:\n|$)", sql):
        body = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--"))
        if body.strip():
            statements.append(body.strip())
    return statements


def discover(sql_dir: Path) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for folder in MIGRATION_FOLDERS:
        for path in sorted((sql_dir / folder).glob("*.sql")):
            match = _FILENAME.match(path.name)
            if not match:
                raise MigrationError(f"{path}: migration files are named NNNN_lower_snake.sql")
            version = int(match.group(1))
            if version in migrations:
                raise MigrationError(
                    f"{path}: version {version:04d} is also used by {migrations[version].name}"
                )
            sql = path.read_text()
            requires = _REQUIRES.search(sql)
            migrations[version] = Migration(
                version=version,
                name=f"{folder}/{path.stem}",
                sql=sql,
                requires=parse_version(requires.group(1)) if requires else None,
            )
    return [migrations[v] for v in sorted(migrations)]


@dataclass(frozen=True)
class PlanEntry:
    migration: Migration
    action: str  # "apply" or "skip: <reason>"


class MigrationRunner:
    """Applies pending migrations to one database; `admin` may talk to any database."""

    def __init__(self, client: Client, admin: Client, database: str, sql_dir: Path) -> None:
        self.client = client
        self.admin = admin
        self.database = database
        self.sql_dir = sql_dir

    def ensure_ledger(self) -> None:
        self.admin.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        self.client.execute(
            f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ("
            " version UInt32, name String, checksum String, applied_at DateTime('UTC')"
            ") ENGINE = ReplacingMergeTree ORDER BY version"
        )

    def applied(self) -> dict[int, tuple[str, str]]:
        rows = self.client.execute(f"SELECT version, name, checksum FROM {LEDGER_TABLE} FINAL")
        return {version: (name, checksum) for version, name, checksum in rows}

    def plan(self) -> list[PlanEntry]:
        self.ensure_ledger()
        applied = self.applied()
        version = server_version(self.client)
        entries = []
        for migration in discover(self.sql_dir):
            if migration.version in applied:
                name, checksum = applied[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"{migration.name} was edited after it was applied (as {name}); "
                        "applied migrations are never edited: add a new file instead"
                    )
                continue
            if migration.requires and version < migration.requires:
                needed = ".".join(map(str, migration.requires))
                have = ".".join(map(str, version))
                entries.append(PlanEntry(migration, f"skip: needs ClickHouse >= {needed}, server is {have}"))
            else:
                entries.append(PlanEntry(migration, "apply"))
        return entries

    def apply(self) -> list[Migration]:
        done = []
        for entry in self.plan():
            if entry.action != "apply":
                continue
            for statement in entry.migration.statements():
                self.client.execute(statement)
            self.client.execute(
                f"INSERT INTO {LEDGER_TABLE} (version, name, checksum, applied_at) VALUES",
                [(entry.migration.version, entry.migration.name, entry.migration.checksum, datetime.now(timezone.utc).replace(microsecond=0))],
            )
            done.append(entry.migration)
        return done

