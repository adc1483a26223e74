"""One list of metric names: the code (monitoring/metrics.py), the docs
(docs/operations/metrics.md), the product brief's names, and every PromQL
expression of the alert rules and dashboards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from monitoring import metrics
from tests.monitoring.promql import metric_names

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/operations/metrics.md"
RULES = ROOT / "infra/prometheus/rules.yml"
DASHBOARDS = sorted((ROOT / "infra/grafana/dashboards").glob("*.json"))

# the metrics the product brief names (its section "Metrics Exported by Feed Service")
BRIEF = {
    "feed_api_requests_total",
    "feed_api_duration_seconds",
    "feed_api_errors_total",
    "feed_cache_hits_total",
    "feed_cache_misses_total",
    "feed_cache_memory_bytes",
    "circuit_breaker_state",
    "circuit_breaker_state_changes_total",
    "events_received_total",
    "events_processing_duration_seconds",
    "dedup_detected_duplicates_total",
    "cdc_messages_processed_total",
    "cdc_processing_duration_seconds",
    "ranking_posts_fetched_total",
    "ranking_posts_deduplicated_total",
    "ranking_posts_saturation_removed_total",
    "ranking_freshness_score",
    "ranking_engagement_score",
    "ranking_affinity_score",
    "ranking_final_score",
}
# read by the rules and dashboards, exported by the exporters or Prometheus (listed in the doc too)
EXPORTERS = {"redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total", "up"}


def declared() -> dict[str, str]:
    """Exported name -> type, of every metric monitoring/metrics.py declares."""
    found: dict[str, str] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found[name] = str(value._type)
        elif isinstance(value, metrics.ScrapeTimeGauge):
            found[value.name] = "gauge"
    for name in (metrics.CONSUMER_GROUP_LAG, metrics.CDC_REPLICATION_SLOT_LAG_BYTES, metrics.PIPELINE_LAG_REPORT_AGE):
        found[name] = "gauge"
    return found


def sample_names() -> set[str]:
    """The sample names a scrape can show for the declared metrics."""
    names = set()
    for name, kind in declared().items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def documented() -> tuple[set[str], set[str]]:
    """(Nova's metrics, the exporters' metrics) of the doc's two tables."""
    text = DOC.read_text()
    ours, _, theirs = text.partition("## Exporters' metrics")
    pattern = re.compile(r"^\| `([a-z_:]+)` \|", re.M)
    return set(pattern.findall(ours)), set(pattern.findall(theirs))


def recording_rules() -> set[str]:
    rules = yaml.safe_load(RULES.read_text())
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


def expressions() -> list[tuple[str, str]]:
    found = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            found.append((rule.get("record") or rule["alert"], rule["expr"]))
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


def test_the_doc_lists_exactly_the_declared_metrics() -> None:
    ours, theirs = documented()
    assert ours == set(declared())
    assert theirs == EXPORTERS


def test_every_metric_of_the_brief_is_declared_under_its_name() -> None:
    assert BRIEF <= set(declared())


def test_rules_and_dashboards_read_only_known_metrics() -> None:
    known = sample_names() | recording_rules() | EXPORTERS
    exprs = expressions()
    assert len(exprs) > 27 + 28  # every rule, and at least one query per dashboard panel
    unknown = {(where, name) for where, expr in exprs for name in metric_names(expr) - known}
    assert not unknown
