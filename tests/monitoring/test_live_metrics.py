"""The whole system's metrics, live: every process of the Procfile started on free
ports in a private namespace (web with 2 gunicorn workers, CDC relay and consumer,
events consumer, Celery worker and beat), real traffic through the API, then

- each process's /metrics: every metric of the brief is exported, with non-zero
  samples where the traffic produces them;
- Debian's Prometheus on loopback (monitoring/prometheus_local.py, as `make
  prometheus` runs it) scrapes them all and answers recording-rule queries.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring import prometheus_local
from tests.monitoring.test_metric_names import BRIEF
from tests.pipeline.cdc.conftest import CdcNamespace, cdc_ns, wait_until  # noqa: F401 (the fixture)
from tests.support.private_services import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.requires_postgres,
    pytest.mark.requires_redis,
    pytest.mark.requires_clickhouse,
    pytest.mark.requires_kafka,
    pytest.mark.timeout(300),
]

# the process of each Procfile line and the env var of its /metrics port
PORT_SETTINGS = {
    "events_consumer": "EVENTS_CONSUMER_METRICS_PORT",
    "cdc_consumer": "CDC_CONSUMER_METRICS_PORT",
    "cdc_relay": "CDC_RELAY_METRICS_PORT",
    "worker": "CELERY_WORKER_METRICS_PORT",
    "beat": "CELERY_BEAT_METRICS_PORT",
}


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name.strip(): command.strip() for name, _, command in (line.partition(":") for line in lines if line)}


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def scrape(port: int) -> dict[str, list[Any]]:
    """Sample name -> samples, of one /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, [])
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict[str, list[Any]], name: str) -> float:
    return sum(sample.value for sample in samples.get(name, []))


@dataclass
class System:
    ns: CdcNamespace
    ports: dict[str, int]
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}"

    def start(self, name: str, command: str, env: dict[str, str]) -> None:
        log = open(self.log_dir / f"{name}.log", "wb")
        # bash expands the line's ${VAR:-default} as honcho does; own process group, stopped by its id
        self.processes[name] = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited {process.returncode}:\n{self.logs()}"

    def alive_and_answers(self, port: int) -> bool:
        self.check_alive()
        return _answers(port)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.log_dir.glob("*.log"))
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def system(cdc_ns: CdcNamespace, tmp_path: Path) -> Iterator[System]:  # noqa: F811 (the imported fixture)
    ports = {name: free_port() for name in ["web", *PORT_SETTINGS]}
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    env = {
        **cdc_ns.env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "WEB_BIND": f"127.0.0.1:{ports['web']}",
        "WEB_WORKERS": "2",
        "WEB_THREADS": "2",
        "CELERY_CONCURRENCY": "2",
        "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "celerybeat-schedule"),
        "CELERY_WORKER_PROMETHEUS_DIR": str(tmp_path / "prometheus-worker"),
        "EVENTS_CONSUMER_GROUP": f"{cdc_ns.name}-events",
        "PIPELINE_LAG_REPORT_SECONDS": "2",
        # the warming task ranks every active user again at each run (in the worker's pool processes)
        "FEED_WARM_INTERVAL_SECONDS": "5",
        "FEED_WARM_REFRESH_BELOW_SECONDS": "100000",
        **{setting: str(ports[name]) for name, setting in PORT_SETTINGS.items()},
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    running = System(cdc_ns, ports, log_dir)
    try:
        for name, command in procfile().items():
            running.start(name, command, env)
        for name, port in ports.items():
            wait_until(
                functools.partial(running.alive_and_answers, port), 90, 0.5, message=f"{name}'s /metrics on {port}"
            )
        yield running
    finally:
        running.stop()


def _answers(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False


def make_traffic(system: System) -> None:
    """Two users, posts, a follow and a like through the API, the ranked feed
    (a miss, then hits), and events (one of them sent twice: a client retry)."""
    web = f"{system.web}/api/v1"
    tokens, ids = [], []
    for name in ("author", "reader"):
        status, body = http(
            "POST",
            f"{web}/auth/register/",
            {"username": f"{name}{uuid.uuid4().hex[:6]}", "password": "a-long-password-1"},
        )
        assert status == 201, body
        tokens.append(body["token"])
        ids.append(body["user"]["id"])
    author, reader = tokens
    posts = []
    for n in range(12):
        status, body = http("POST", f"{web}/posts/", {"body": f"post {n}"}, author)
        assert status == 201, body
        posts.append(body["id"])
    assert http("POST", f"{web}/users/{ids[0]}/follow/", None, reader)[0] == 201
    assert http("POST", f"{web}/posts/{posts[0]}/like/", None, reader)[0] == 201
    # the posts and the follow reach ClickHouse through the CDC relay and consumer
    wait_until(
        lambda: system.ns.ch.execute("SELECT count() FROM posts")[0][0] >= len(posts),
        90,
        message="posts replicated to ClickHouse",
    )
    for _ in range(4):
        status, body = http("GET", f"{web}/feed/", None, reader)
        assert status == 200 and body["items"], body
    now = datetime.now(UTC).isoformat()
    events = [{"event_id": str(uuid.uuid4()), "post_id": post, "event_type": "impression", "ts": now} for post in posts]
    assert http("POST", f"{web}/events/", {"events": events}, reader)[0] == 202
    assert http("POST", f"{web}/events/", {"events": events[:1]}, reader)[0] == 202  # a client's retry


# metric of the brief -> process whose endpoint must show it with a non-zero value after the traffic
NON_ZERO = {
    "feed_api_requests_total": "web",
    "feed_api_duration_seconds_count": "web",
    "feed_cache_hits_total": "web",
    "feed_cache_misses_total": "web",
    "feed_cache_memory_bytes": "web",
    "events_received_total": "web",
    "ranking_posts_fetched_total": "web",
    "ranking_freshness_score_count": "web",
    "ranking_engagement_score_count": "web",
    "ranking_affinity_score_count": "web",
    "ranking_final_score_count": "web",
    "events_processing_duration_seconds_count": "events_consumer",
    "dedup_detected_duplicates_total": "events_consumer",
    "cdc_messages_processed_total": "cdc_consumer",
    "cdc_processing_duration_seconds_count": "cdc_consumer",
}
# not of the brief: what the Celery worker's pool processes count, added up by the worker's endpoint
WORKER_NON_ZERO = {"feed_rankings_total", "ranking_duration_seconds_count"}
# exported, with samples whose value may be 0 (the breaker is closed; no duplicate or over-cap candidate)
PRESENT = {
    "circuit_breaker_state": "web",
    "ranking_posts_deduplicated_total": "web",
    "ranking_posts_saturation_removed_total": "web",
}
# labelled by what failed: no sample (and, under the multiprocess mode, no family) until the
# first 5xx or breaker transition, which healthy traffic does not make
UNTIL_A_FAILURE = {"feed_api_errors_total", "circuit_breaker_state_changes_total"}


def test_every_process_exports_the_brief_metrics_and_prometheus_scrapes_them(system: System, tmp_path: Path) -> None:
    assert BRIEF == {metric.removesuffix("_count") for metric in NON_ZERO} | set(PRESENT) | UNTIL_A_FAILURE
    make_traffic(system)

    def non_zero() -> dict[str, float]:
        system.check_alive()
        scraped = {name: scrape(port) for name, port in system.ports.items()}
        return {
            **{metric: total(scraped[process], metric) for metric, process in NON_ZERO.items()},
            **{f"worker {metric}": total(scraped["worker"], metric) for metric in WORKER_NON_ZERO},
        }

    values = wait_until(
        lambda: (v := non_zero()) and all(v.values()) and v,
        90,
        1.0,
        message=f"non-zero samples of {sorted(NON_ZERO)} and the worker's {sorted(WORKER_NON_ZERO)}",
    )
    assert values["feed_api_requests_total"] >= 4 + 12 + 2 + 2 + 2  # whichever gunicorn worker answered
    assert values["dedup_detected_duplicates_total"] == 1
    web = scrape(system.ports["web"])
    for metric in PRESENT:
        assert web.get(metric), metric
    assert {s.labels["datasource"]: s.value for s in web["circuit_breaker_state"]} == {"clickhouse": 0}
    # the lag the worker's report_pipeline_lag task measured, on the web's /metrics
    wait_until(
        lambda: (
            "consumer_group_lag" in scrape(system.ports["web"]) and scrape(system.ports["web"])["consumer_group_lag"]
        ),
        60,
        1.0,
        message="consumer_group_lag",
    )

    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is not installed: run `make test-tools` (infra/local/services.sh test-tools)")
    ports = {
        **prometheus_local.process_ports(f"127.0.0.1:{system.ports['web']}"),
        "cdc_relay": [system.ports["cdc_relay"]],
        "cdc_consumer": [system.ports["cdc_consumer"]],
        "events_consumer": [system.ports["events_consumer"]],
        "celery": [system.ports["worker"], system.ports["beat"]],
    }
    config = prometheus_local.write_local_config(tmp_path / "prometheus", ports, interval="1s")
    listen = f"127.0.0.1:{free_port()}"
    with open(tmp_path / "prometheus.log", "wb") as log:
        server = subprocess.Popen(
            prometheus_local.command(config, tmp_path / "prometheus" / "data", listen),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def query(expr: str) -> list[dict[str, Any]]:
            assert server.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
            url = f"http://{listen}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.loads(response.read())["data"]["result"]
            except OSError:
                return []

        # Nova's six processes up (the exporters' jobs are down here: none runs)
        up = wait_until(
            lambda: len(r := query('up{job!~"redis|postgres|clickhouse"} == 1')) == 6 and r,
            60,
            message="the six Nova targets up",
        )
        assert {(s["metric"]["job"], s["metric"].get("process")) for s in up} == {
            ("web", None),
            ("cdc_relay", None),
            ("cdc_consumer", None),
            ("events_consumer", None),
            ("celery", "worker"),
            ("celery", "beat"),
        }
        # recording rules over real scrapes (rates need two scrapes of a counter that moved in between)
        make_traffic_light(system)
        assert (
            wait_until(
                lambda: query("nova:feed_api_availability:ratio_rate5m"),
                60,
                message="nova:feed_api_availability:ratio_rate5m",
            )[0]["value"][1]
            == "1"
        )
        assert wait_until(lambda: query("nova:consumer_group_lag:sum"), 60, message="nova:consumer_group_lag:sum")
        with urllib.request.urlopen(f"http://{listen}/api/v1/rules", timeout=5) as response:
            groups = json.loads(response.read())["data"]["groups"]
        assert sum(len(group["rules"]) for group in groups) == 27
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


def make_traffic_light(system: System) -> None:
    """A few requests a second for a few seconds: counters that move between scrapes."""
    for _ in range(10):
        http("GET", f"{system.web}/api/v1/no-such-route/")
        time.sleep(0.3)


def test_procfile_gives_every_worker_process_its_metrics_port() -> None:
    lines = procfile()
    for name, setting in PORT_SETTINGS.items():
        assert f"{setting}=${{{setting}:-" in lines[name], name
    defaults = [
        shlex.split(lines[name].split(f"{setting}=${{{setting}:-")[1])[0].rstrip("}")
        for name, setting in PORT_SETTINGS.items()
    ]
    assert len(set(defaults)) == len(defaults) and "8000" not in defaults
