"""infra/prometheus/ and infra/grafana/ checked with the real tools: Debian's
promtool and amtool (`make test` installs them: infra/local/services.sh test-tools).
A missing tool fails these tests; it never skips them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "infra/prometheus"
RUNBOOK = ROOT / "docs/operations/runbook.md"
DASHBOARDS = ROOT / "infra/grafana/dashboards"

ALERTS = [
    "FeedAPILatencyP95High",
    "FeedAPICacheHitRateLow",
    "CircuitBreakerOpen",
    "CircuitBreakerHalfOpen",
    "EventConsumerLagHigh",
    "CDCConsumerLagHigh",
    "ClickHouseQueryTimeout",
    "ClickHouseInsertErrors",
    "RedisCacheMemoryHigh",
    "RedisCacheEvictions",
    "DeduplicationFailureRate",
    "EventToVisibleLatencyHigh",
    "FeedSystemAvailabilityLow",
    "CDCReplicationSlotLagHigh",
]
SCRAPE_JOBS = {"web", "cdc_relay", "cdc_consumer", "events_consumer", "celery", "redis", "postgres", "clickhouse"}
PANELS = {"feed-system-overview.json": 8, "data-pipeline.json": 10, "ranking-quality.json": 10}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make test-tools` (infra/local/services.sh test-tools)")
    return path


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([tool(argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=60)


def rules() -> list[dict]:
    return [
        rule for group in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"] for rule in group["rules"]
    ]


def test_promtool_checks_the_config_and_its_rules() -> None:
    result = run("promtool", "check", "config", "infra/prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 27 rules found" in result.stdout


def test_promtool_checks_the_rules() -> None:
    result = run("promtool", "check", "rules", "infra/prometheus/rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    result = run("promtool", "test", "rules", "infra/prometheus/tests/rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_each_alert_has_a_unit_test_that_fires_and_one_that_stays_silent() -> None:
    tests = yaml.safe_load((PROMETHEUS / "tests/rules_test.yml").read_text())["tests"]
    fires: set[str] = set()
    silent: set[str] = set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (fires if case["exp_alerts"] else silent).add(case["alertname"])
            assert all(series["values"] for series in test["input_series"])
    assert fires == silent == set(ALERTS)


def test_rules_are_the_14_alerts_and_13_recording_rules() -> None:
    assert [rule["alert"] for rule in rules() if "alert" in rule] == ALERTS
    recorded = [rule["record"] for rule in rules() if "record" in rule]
    assert len(recorded) == len(set(recorded)) == 13


def test_each_alert_is_labelled_and_links_its_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in (rule for rule in rules() if "alert" in rule):
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["labels"]["team"] in {"feed", "infra"}, rule["alert"]
        assert rule["labels"]["component"], rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert rule["annotations"]["runbook_url"] == f"docs/operations/runbook.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"no section ## {rule['alert']} in the runbook"


def test_prometheus_scrapes_the_8_jobs() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert len(jobs) == 8 and set(jobs) == SCRAPE_JOBS
    assert config["rule_files"] == ["rules.yml"]


def test_amtool_checks_the_alertmanager_config() -> None:
    result = run("amtool", "check-config", "infra/prometheus/alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"severity": "critical", "team": "feed"}, "pagerduty,slack-feed-team"),
        ({"severity": "critical", "team": "infra"}, "pagerduty,slack-infra"),
        ({"severity": "warning", "team": "feed"}, "slack-warnings,slack-feed-team"),
        ({"severity": "warning", "team": "infra"}, "slack-warnings,slack-infra"),
    ],
)
def test_amtool_routes_each_severity_and_team(labels: dict[str, str], receivers: str) -> None:
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        "--config.file=infra/prometheus/alertmanager.yml",
        f"--verify.receivers={receivers}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_amtool_routes_test_fails_on_a_wrong_receiver() -> None:
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        "--config.file=infra/prometheus/alertmanager.yml",
        "--verify.receivers=slack-warnings",
        "severity=critical",
        "team=feed",
    )
    assert result.returncode != 0


def test_every_alert_routes_to_its_teams_channel() -> None:
    for rule in (rule for rule in rules() if "alert" in rule):
        result = run(
            "amtool",
            "config",
            "routes",
            "test",
            "--config.file=infra/prometheus/alertmanager.yml",
            *(f"{k}={v}" for k, v in {"alertname": rule["alert"], **rule["labels"]}.items()),
        )
        severity = "pagerduty" if rule["labels"]["severity"] == "critical" else "slack-warnings"
        assert result.stdout.strip() == f"{severity},slack-{rule['labels']['team']}" + (
            "-team" if rule["labels"]["team"] == "feed" else ""
        ), rule["alert"]


def test_warnings_are_inhibited_by_the_critical_alert_of_their_component_and_secrets_are_files() -> None:
    config = yaml.safe_load((PROMETHEUS / "alertmanager.yml").read_text())
    assert config["inhibit_rules"] == [
        {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": ["component"]}
    ]
    text = (PROMETHEUS / "alertmanager.yml").read_text()
    assert "routing_key_file:" in text and "slack_api_url_file:" in text
    assert not re.search(r"hooks\.slack\.com|routing_key:|api_url:", text)
    components: dict[str, set[str]] = {}
    for rule in (rule for rule in rules() if "alert" in rule):
        components.setdefault(rule["labels"]["component"], set()).add(rule["labels"]["severity"])
    # every component has a critical alert, which silences its warnings while it fires
    assert all("critical" in severities for severities in components.values())


def test_dashboards_have_the_panels_of_the_brief() -> None:
    assert {path.name for path in DASHBOARDS.glob("*.json")} == set(PANELS)
    for name, count in PANELS.items():
        dashboard = json.loads((DASHBOARDS / name).read_text())
        assert len(dashboard["panels"]) == count, name
        assert dashboard["refresh"] == "30s"
        assert len({panel["id"] for panel in dashboard["panels"]}) == count
        for panel in dashboard["panels"]:
            assert panel["targets"] and all(
                t["expr"] and t["datasource"]["uid"] == "prometheus" for t in panel["targets"]
            ), panel["title"]
    datasources = yaml.safe_load((ROOT / "infra/grafana/provisioning/datasources.yml").read_text())
    assert datasources["datasources"][0]["uid"] == "prometheus"
    providers = yaml.safe_load((ROOT / "infra/grafana/provisioning/dashboards.yml").read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.monitoring.yml").read_text())
    grafana_volumes = compose["services"]["grafana"]["volumes"]
    assert f"./infra/grafana/dashboards:{providers[0]['options']['path']}:ro" in grafana_volumes


def test_compose_runs_the_stack_with_30_day_retention() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.monitoring.yml").read_text())["services"]
    assert {"prometheus", "alertmanager", "grafana", "redis-exporter", "postgres-exporter"} <= set(services)
    assert "--storage.tsdb.retention.time=30d" in services["prometheus"]["command"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]] for job in config["scrape_configs"]
    }
    # each target is a compose service: of this file or of docker-compose.yml
    app = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for job, hosts in targets.items():
        for host in hosts:
            assert host.split(":")[0] in set(services) | set(app), (job, host)
