"""Migrations ON CLUSTER on both local clusters, and the ledger's topology guard."""

from __future__ import annotations

import pytest
from django.conf import settings

from pipeline.clickhouse_migrations import LEDGER_TABLE, MigrationError, Topology, discover
from tests.cluster.conftest import REPLICATED, SERVERS, SHARDED

pytestmark = pytest.mark.requires_cluster


@pytest.mark.parametrize("topology", [REPLICATED, SHARDED], ids=lambda t: t.cluster)
def test_migrations_on_a_cluster_from_empty_then_again(local_cluster, cluster_db, topology: Topology) -> None:
    database = cluster_db(topology)
    tables = {
        name
        for m in discover(settings.CLICKHOUSE_SQL_DIR)
        for s in m.statements()
        if s.startswith("CREATE TABLE")
        for name in [s.split()[5]]
    }
    for server in SERVERS:
        client = local_cluster.client(server, topology, database)
        shown = {name for (name,) in client.execute("SHOW TABLES")}
        assert shown >= tables | {f"{t}_local" for t in tables} | {LEDGER_TABLE}
        engines = dict(client.execute("SELECT name, engine FROM system.tables WHERE database = currentDatabase()"))
        assert {engines[t] for t in tables} == {"Distributed"}
        assert all(engines[f"{t}_local"].startswith("Replicated") for t in tables)
        # the ledger is replicated to every server of the cluster
        assert local_cluster.runner(server, topology, database).recorded_topology() == topology.name
    assert local_cluster.runner("ch2", topology, database).apply() == []
    assert local_cluster.runner("ch1", topology, database).apply() == []


def test_ledger_refuses_to_mix_topologies(local_cluster, cluster_db) -> None:
    database = cluster_db(SHARDED)
    for other in (Topology(), REPLICATED):
        refused = f"migrated for cluster nova_sharded, the settings ask for {other.name}"
        with pytest.raises(MigrationError, match=refused):
            local_cluster.runner("ch1", other, database).apply()

    single = f"{database}_single"
    local_cluster.runner("ch1", Topology(), single).apply()
    try:
        with pytest.raises(MigrationError, match="migrated for single-node, the settings ask for cluster nova_sharded"):
            local_cluster.runner("ch1", SHARDED, single).apply()
    finally:
        admin = local_cluster.client("ch1", SHARDED, "default")
        admin.execute(f"DROP DATABASE IF EXISTS `{single}` ON CLUSTER {SHARDED.cluster}")
