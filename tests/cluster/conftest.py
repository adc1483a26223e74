"""A private local ClickHouse cluster (infra/local/cluster.sh, the script behind
`make cluster-up`) for the tests marked requires_cluster: ZooKeeper and two
ClickHouse servers on free loopback ports under the session's temporary
directory, so a test may kill or freeze a server without touching anyone's
`make cluster-up` cluster or the shared services."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client
from django.conf import settings

from nova.clickhouse import make_client
from nova.config import ClickHouseConfig
from pipeline.clickhouse_migrations import MigrationRunner, Topology
from tests.support.private_services import free_port

CLUSTER_SH = Path(__file__).resolve().parents[2] / "infra" / "local" / "cluster.sh"
SERVERS = ("ch1", "ch2")
# one {shard} macro per server is nova_sharded's; the one shard of nova_replicated has a path without it
REPLICATED = Topology("nova_replicated", "/clickhouse/tables/replicated/{database}/{table}")
SHARDED = Topology("nova_sharded")


class LocalCluster:
    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.ports = {server: free_port() for server in SERVERS}
        self.env = {**os.environ, "NOVA_CLUSTER_DIR": str(var_dir), "NOVA_ZK_PORT": str(free_port())}
        for server in SERVERS:
            prefix = f"NOVA_{server.upper()}"
            self.env.update(
                {
                    f"{prefix}_TCP_PORT": str(self.ports[server]),
                    f"{prefix}_HTTP_PORT": str(free_port()),
                    f"{prefix}_INTERSERVER_PORT": str(free_port()),
                }
            )

    def run(self, verb: str, *servers: str) -> None:
        result = subprocess.run(
            ["bash", str(CLUSTER_SH), verb, *servers], env=self.env, timeout=120, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr

    def signal(self, server: str, sig: signal.Signals) -> None:
        os.kill(int((self.var_dir / server / "clickhouse.pid").read_text()), sig)

    def kill(self, server: str) -> None:
        self.signal(server, signal.SIGKILL)
        pid_file = self.var_dir / server / "clickhouse.pid"
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid_file.read_text().strip()}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def config(self, server: str, topology: Topology, database: str) -> ClickHouseConfig:
        return dataclasses.replace(
            settings.CLICKHOUSE,
            port=self.ports[server],
            database=database,
            cluster=topology.cluster,
            replica_path=topology.replica_path,
        )

    def client(self, server: str, topology: Topology, database: str, **kwargs) -> Client:
        return make_client(self.config(server, topology, database), **kwargs)

    def runner(self, server: str, topology: Topology, database: str) -> MigrationRunner:
        return MigrationRunner(
            self.client(server, topology, database),
            self.client(server, topology, "default"),
            database,
            settings.CLICKHOUSE_SQL_DIR,
            topology,
        )


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.run("up")
        yield cluster
    finally:
        cluster.run("down")


@pytest.fixture
def cluster_db(local_cluster: LocalCluster) -> Iterator[Callable[[Topology], str]]:
    """migrate(topology) -> a fresh database migrated on the cluster; dropped on every server afterwards."""
    created: list[tuple[Topology, str]] = []

    def migrate(topology: Topology) -> str:
        database = f"nova_cl_{uuid.uuid4().hex[:8]}"
        created.append((topology, database))
        local_cluster.runner("ch1", topology, database).apply()
        return database

    yield migrate
    for topology, database in created:
        local_cluster.run("up")  # a test may have left a server down
        local_cluster.client("ch1", topology, "default").execute(
            f"DROP DATABASE IF EXISTS `{database}` ON CLUSTER `{topology.cluster}`",
            settings={"distributed_ddl_task_timeout": 30},
        )
