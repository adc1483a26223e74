"""Versioned ClickHouse schema migrations from infra/clickhouse/{tables,views}/.

A migration is a file `NNNN_name.sql`; versions are unique across both folders
and applied in ascending order. Applied files are recorded (with a checksum) in
the ledger table `nova_schema_migrations` and are never edited afterwards: a
change is a new file. A file may start with `-- requires-clickhouse: 20.3` to be
applied only on servers at least that new; on older servers it stays pending
and `--plan` says why. Statements are separated by a `;` at the end of a line
and should use IF [NOT] EXISTS so a half-applied file can be re-run.

Topology (docs/operations/scaling.md): the files describe one server. On a
cluster (CLICKHOUSE_CLUSTER), Topology.render() turns each statement into its
cluster form, here and nowhere else: `CREATE TABLE t ... ENGINE = XMergeTree(a)`
becomes `t_local ON CLUSTER` with `ReplicatedXMergeTree(<replica path>,
'{replica}', a)` plus a `Distributed` table `t` over it (so the application
reads and writes the same names on both topologies), and a materialized view
reads and writes the `_local` tables of its server. The ledger records the
topology a database was migrated for and refuses to apply the other one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_driver import Client

from nova.clickhouse import parse_version, server_version
from nova.config import ClickHouseConfig

MIGRATION_FOLDERS = ("tables", "views")
LEDGER_TABLE = "nova_schema_migrations"
# the ledger row that says which topology the database was migrated for (no migration is 0000)
TOPOLOGY_VERSION = 0
SINGLE_NODE = "single-node"
_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REQUIRES = re.compile(r"^--\s*requires-clickhouse:\s*([\d.]+)\s*$", re.MULTILINE)

# On a cluster, the Replicated table of `t` is `t_local`; `t` is the Distributed table over it.
LOCAL_SUFFIX = "_local"
# How a Distributed table spreads inserted rows over the shards (docs/operations/scaling.md):
# every version of a CDC row has the same id, so one shard holds all of them and
# ReplacingMergeTree (and FINAL, which runs per shard) sees them together; a user's
# events stay on one shard, and so do an event's duplicates (same user_id) and the
# rows the affinity view writes from them. The tables filled by materialized views
# (aggregates, sink offsets) have no key: each shard's view writes its own local
# table and nothing inserts through their Distributed tables, which only read.
SHARDING_KEYS = {
    "users": "id",
    "posts": "id",
    "follows": "id",
    "likes": "id",
    "comments": "id",
    "mutes": "id",
    "events": "user_id",
}
_CREATE_TABLE = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (\w+)\s*(\(.*\))\s*ENGINE = (\w*MergeTree)(?:\(([^)]*)\))?(.*)$", re.DOTALL
)
_CREATE_VIEW = re.compile(r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS\s+(SELECT\b.*)$", re.DOTALL)
_FROM_TABLE = re.compile(r"\bFROM (\w+)\b")


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Topology:
    """One server (cluster "") or a cluster of the servers' <remote_servers>."""

    cluster: str = ""
    # {shard}/{replica} are the servers' macros; {database}/{table} are filled in here
    replica_path: str = ClickHouseConfig.replica_path

    @classmethod
    def of(cls, config: ClickHouseConfig) -> Topology:
        return cls(config.cluster, config.replica_path)

    @property
    def name(self) -> str:
        return f"cluster {self.cluster}" if self.cluster else SINGLE_NODE

    def on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def replicated_engine(self, engine: str, args: str, database: str, table: str, shard: str = "{shard}") -> str:
        path = self.replica_path.replace("{shard}", shard).replace("{database}", database).replace("{table}", table)
        params = ", ".join(part for part in (f"'{path}'", "'{replica}'", args.strip()) if part)
        return f"Replicated{engine}({params})"

    def render(self, statement: str, database: str) -> list[str]:
        """The statements that apply one migration statement on this topology."""
        if not self.cluster:
            return [statement]
        if match := _CREATE_TABLE.match(statement):
            table, columns, engine, args, rest = match.groups()
            local = f"`{database}`.`{table}{LOCAL_SUFFIX}`"
            key = f", {SHARDING_KEYS[table]}" if table in SHARDING_KEYS else ""
            return [
                f"CREATE TABLE IF NOT EXISTS {local}{self.on_cluster()} {columns}\n"
                f"ENGINE = {self.replicated_engine(engine, args or '', database, table)}{rest}",
                f"CREATE TABLE IF NOT EXISTS `{database}`.`{table}`{self.on_cluster()} AS {local}\n"
                f"ENGINE = Distributed(`{self.cluster}`, `{database}`, `{table}{LOCAL_SUFFIX}`{key})",
            ]
        if match := _CREATE_VIEW.match(statement):
            view, target, select = match.groups()
            select = _FROM_TABLE.sub(lambda m: f"FROM `{database}`.`{m.group(1)}{LOCAL_SUFFIX}`", select)
            return [
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS `{database}`.`{view}`{self.on_cluster()} "
                f"TO `{database}`.`{target}{LOCAL_SUFFIX}` AS {select}"
            ]
        raise MigrationError(
            f"no cluster form for this statement (Topology.render knows CREATE TABLE ... MergeTree and "
            f"CREATE MATERIALIZED VIEW ... TO): {statement[:80]}"
        )

    def ledger_ddl(self, database: str) -> str:
        columns = "(version UInt32, name String, checksum String, applied_at DateTime('UTC'))"
        if not self.cluster:
            return f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} {columns} ENGINE = ReplacingMergeTree ORDER BY version"
        # one ledger on every server of the cluster: a replica path without a shard
        engine = self.replicated_engine("ReplacingMergeTree", "", database, LEDGER_TABLE, shard="all")
        return (
            f"CREATE TABLE IF NOT EXISTS `{database}`.`{LEDGER_TABLE}`{self.on_cluster()} {columns} "
            f"ENGINE = {engine} ORDER BY version"
        )


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
                raise MigrationError(f"{path}: version {version:04d} is also used by {migrations[version].name}")
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

    def __init__(
        self, client: Client, admin: Client, database: str, sql_dir: Path, topology: Topology = Topology()
    ) -> None:
        self.client = client
        self.admin = admin
        self.database = database
        self.sql_dir = sql_dir
        self.topology = topology

    def ensure_ledger(self) -> None:
        self.admin.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`{self.topology.on_cluster()}")
        self.client.execute(self.topology.ledger_ddl(self.database))

    def ledger(self) -> dict[int, tuple[str, str]]:
        rows = self.client.execute(f"SELECT version, name, checksum FROM {LEDGER_TABLE} FINAL")
        return {version: (name, checksum) for version, name, checksum in rows}

    def applied(self) -> dict[int, tuple[str, str]]:
        return {version: row for version, row in self.ledger().items() if version != TOPOLOGY_VERSION}

    def recorded_topology(self) -> str | None:
        """The topology the database was migrated for; None before its first migration.
        A database migrated before topologies were recorded is single-node."""
        ledger = self.ledger()
        if TOPOLOGY_VERSION in ledger:
            return ledger[TOPOLOGY_VERSION][0]
        return SINGLE_NODE if ledger else None

    def check_topology(self) -> None:
        recorded = self.recorded_topology()
        if recorded is not None and recorded != self.topology.name:
            raise MigrationError(
                f"database {self.database} was migrated for {recorded}, the settings ask for {self.topology.name}: "
                "topologies are never mixed in one database (docs/operations/scaling.md says how to move one)"
            )

    def plan(self) -> list[PlanEntry]:
        self.ensure_ledger()
        self.check_topology()
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

    def record(self, version: int, name: str, checksum: str) -> None:
        self.client.execute(
            f"INSERT INTO {LEDGER_TABLE} (version, name, checksum, applied_at) VALUES",
            [(version, name, checksum, datetime.now(UTC).replace(microsecond=0))],
        )

    def apply(self) -> list[Migration]:
        done = []
        entries = self.plan()
        if TOPOLOGY_VERSION not in self.ledger():
            self.record(TOPOLOGY_VERSION, self.topology.name, "")
        for entry in entries:
            if entry.action != "apply":
                continue
            for statement in entry.migration.statements():
                for rendered in self.topology.render(statement, self.database):
                    self.client.execute(rendered)
            self.record(entry.migration.version, entry.migration.name, entry.migration.checksum)
            done.append(entry.migration)
        return done
