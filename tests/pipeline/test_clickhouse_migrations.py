from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from nova.clickhouse import make_client
from pipeline.clickhouse_migrations import (
    SHARDING_KEYS,
    MigrationError,
    MigrationRunner,
    Topology,
    discover,
    split_statements,
)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("", []),
        ("-- only a comment\n", []),
        ("SELECT 1;", ["SELECT 1"]),
        ("SELECT 1;\nSELECT 2;\n", ["SELECT 1", "SELECT 2"]),
        (
            "-- header\nCREATE TABLE t (\n  x String DEFAULT 'a;b'\n) ENGINE = Log;\n",
            ["CREATE TABLE t (\n  x String DEFAULT 'a;b'\n) ENGINE = Log"],
        ),
        ("SELECT 1", ["SELECT 1"]),
    ],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


CLUSTER = Topology("nova_sharded")


def test_single_node_statements_run_as_written() -> None:
    statement = "CREATE TABLE IF NOT EXISTS t (id UInt64) ENGINE = MergeTree ORDER BY id"
    assert Topology().render(statement, "db") == [statement]


def test_cluster_table_is_a_replicated_local_table_behind_a_distributed_one() -> None:
    local, distributed = CLUSTER.render(
        "CREATE TABLE IF NOT EXISTS users (\n    id Int64\n) ENGINE = ReplacingMergeTree(_version)\nORDER BY id", "db"
    )
    assert local == (
        "CREATE TABLE IF NOT EXISTS `db`.`users_local` ON CLUSTER `nova_sharded` (\n    id Int64\n)\n"
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/users', '{replica}', _version)\n"
        "ORDER BY id"
    )
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS `db`.`users` ON CLUSTER `nova_sharded` AS `db`.`users_local`\n"
        "ENGINE = Distributed(`nova_sharded`, `db`, `users_local`, id)"
    )


def test_cluster_engine_without_parameters() -> None:
    local, _ = CLUSTER.render("CREATE TABLE IF NOT EXISTS t (id UInt64) ENGINE = MergeTree ORDER BY id", "db")
    assert local.endswith("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}') ORDER BY id")


def test_cluster_view_reads_and_writes_the_local_tables_of_its_server() -> None:
    [view] = CLUSTER.render(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS v TO totals AS\nSELECT x, count() AS n FROM events GROUP BY x", "db"
    )
    assert view == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS `db`.`v` ON CLUSTER `nova_sharded` TO `db`.`totals_local` AS "
        "SELECT x, count() AS n FROM `db`.`events_local` GROUP BY x"
    )


def test_cluster_refuses_a_statement_it_has_no_form_for() -> None:
    with pytest.raises(MigrationError, match="no cluster form"):
        CLUSTER.render("ALTER TABLE events ADD COLUMN x UInt8", "db")


def test_every_migration_has_a_cluster_form_and_written_tables_a_sharding_key() -> None:
    distributed = []
    for migration in discover(settings.CLICKHOUSE_SQL_DIR):
        for statement in migration.statements():
            distributed += [s for s in CLUSTER.render(statement, "db") if "ENGINE = Distributed" in s]
    keyed = {s.split("`db`.`")[1].split("`")[0] for s in distributed if not s.endswith("_local`)")}
    # the tables the consumers insert into; the rest are filled by materialized views on each shard
    assert keyed == set(SHARDING_KEYS) == {"users", "posts", "follows", "likes", "comments", "mutes", "events"}


def test_every_query_subquery_of_a_sharded_table_is_global() -> None:
    """On more than one shard, `x IN (SELECT ... FROM t)` inside a query of a
    Distributed table would run on each shard against that shard's part of t;
    GLOBAL runs it once and sends the result (and costs nothing on one server)."""
    for path in (settings.CLICKHOUSE_SQL_DIR / "queries").glob("*.sql"):
        sql = " ".join(path.read_text().split())
        assert not re.search(r"(?<!GLOBAL )(?<!GLOBAL NOT )\bIN \( ?SELECT", sql), path.name


def _write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(sql)


def test_discover_orders_across_folders_and_rejects_duplicate_versions(tmp_path: Path) -> None:
    _write(tmp_path / "views", "0002_b.sql", "SELECT 2;")
    _write(tmp_path / "tables", "0001_a.sql", "SELECT 1;")
    assert [m.name for m in discover(tmp_path)] == ["tables/0001_a", "views/0002_b"]
    _write(tmp_path / "views", "0001_c.sql", "SELECT 3;")
    with pytest.raises(MigrationError, match="version 0001 is also used by tables/0001_a"):
        discover(tmp_path)


def test_discover_rejects_badly_named_files(tmp_path: Path) -> None:
    _write(tmp_path / "tables", "create_things.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        discover(tmp_path)


@pytest.fixture
def scratch_db(unique_name: str):
    admin = make_client(settings.CLICKHOUSE, database="default")
    yield unique_name
    admin.execute(f"DROP DATABASE IF EXISTS `{unique_name}`")


def _runner(database: str, sql_dir: Path) -> MigrationRunner:
    config = settings.CLICKHOUSE
    return MigrationRunner(
        make_client(config, database=database), make_client(config, database="default"), database, sql_dir
    )


@pytest.mark.requires_clickhouse
def test_fresh_database_then_again_then_edited_file(tmp_path: Path, scratch_db: str) -> None:
    _write(
        tmp_path / "tables",
        "0001_things.sql",
        "CREATE TABLE IF NOT EXISTS things (id UInt64) ENGINE = MergeTree ORDER BY id;\n",
    )
    _write(
        tmp_path / "views",
        "0002_thing_count.sql",
        "CREATE TABLE IF NOT EXISTS thing_count (n UInt64) ENGINE = SummingMergeTree ORDER BY tuple();\n"
        "CREATE MATERIALIZED VIEW IF NOT EXISTS thing_count_mv TO thing_count AS SELECT count() AS n FROM things;\n",
    )
    _write(
        tmp_path / "tables",
        "0003_future.sql",
        "-- requires-clickhouse: 999.1\nCREATE TABLE IF NOT EXISTS future (id UInt64) ENGINE = Log;\n",
    )

    runner = _runner(scratch_db, tmp_path)
    plan = runner.plan()  # creates the database and the ledger, nothing else
    assert [(e.migration.version, e.action.split(":")[0]) for e in plan] == [(1, "apply"), (2, "apply"), (3, "skip")]
    assert "needs ClickHouse >= 999.1" in plan[2].action

    assert [m.version for m in runner.apply()] == [1, 2]
    client = make_client(settings.CLICKHOUSE, database=scratch_db)
    client.execute("INSERT INTO things VALUES", [(1,), (2,)])
    assert client.execute("SELECT sum(n) FROM thing_count") == [(2,)]
    assert {name for (name,) in client.execute("SHOW TABLES")} >= {
        "things",
        "thing_count",
        "thing_count_mv",
        "nova_schema_migrations",
    }
    assert "future" not in {name for (name,) in client.execute("SHOW TABLES")}

    # again: nothing applied, the data untouched
    assert runner.apply() == []
    assert [e.migration.version for e in runner.plan()] == [3]
    assert client.execute("SELECT count() FROM things") == [(2,)]

    # an applied file edited afterwards is refused, not silently re-applied
    _write(tmp_path / "tables", "0001_things.sql", "CREATE TABLE IF NOT EXISTS things (id UInt32) ENGINE = Log;\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        runner.apply()


@pytest.mark.requires_clickhouse
def test_command_plan_apply_idempotent(scratch_db: str, capsys) -> None:
    call_command("migrate_clickhouse", "--plan", "--database", scratch_db)
    planned = capsys.readouterr().out
    expected = [m.name for m in discover(settings.CLICKHOUSE_SQL_DIR)]
    for name in expected:
        assert name in planned
    client = make_client(settings.CLICKHOUSE, database=scratch_db)
    assert client.execute("SELECT count() FROM nova_schema_migrations") == [(0,)]

    call_command("migrate_clickhouse", "--database", scratch_db)
    applied = client.execute("SELECT name FROM nova_schema_migrations FINAL ORDER BY version")
    # version 0 records the topology the database was migrated for
    assert [name for (name,) in applied] == ["single-node", *expected]
    capsys.readouterr()
    call_command("migrate_clickhouse", "--database", scratch_db)
    assert "up to date" in capsys.readouterr().out
    call_command("migrate_clickhouse", "--plan", "--database", scratch_db)
    assert "nothing to apply" in capsys.readouterr().out


@pytest.mark.requires_clickhouse
def test_command_reports_migration_errors(tmp_path: Path, scratch_db: str, settings) -> None:
    _write(tmp_path / "tables", "bad.sql", "SELECT 1;")
    settings.CLICKHOUSE_SQL_DIR = tmp_path
    with pytest.raises(CommandError, match="NNNN_lower_snake"):
        call_command("migrate_clickhouse", "--database", scratch_db)
