"""A Prometheus for the processes of `make run`, on loopback (`manage.py
run_prometheus`, `make prometheus`): infra/prometheus/prometheus.yml and its
rules, with each job's targets moved to 127.0.0.1 at the ports the settings
give the processes. The exporters' jobs keep their usual ports (nothing
listens there unless you run the exporters); no Alertmanager: the alerts'
state is on Prometheus's own /alerts page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

CONFIG_DIR = Path(settings.BASE_DIR) / "infra" / "prometheus"
# the exporters' usual ports: redis_exporter, postgres_exporter, ClickHouse's endpoint
EXPORTER_PORTS = {"redis": 9121, "postgres": 9187, "clickhouse": 9363}


def process_ports(web_bind: str | None = None) -> dict[str, list[int]]:
    """Each scrape job's loopback ports, as the settings (and the Procfile) give them."""
    web = web_bind or os.environ.get("WEB_BIND", "127.0.0.1:8000")
    return {
        "web": [int(web.rsplit(":", 1)[1])],
        "cdc_relay": [settings.CDC.relay_metrics_port],
        "cdc_consumer": [settings.CONSUMER_METRICS_PORTS["cdc"]],
        "events_consumer": [settings.CONSUMER_METRICS_PORTS["events"]],
        "celery": [settings.CELERY_WORKER_METRICS_PORT, settings.CELERY_BEAT_METRICS_PORT],
        **{job: [port] for job, port in EXPORTER_PORTS.items()},
    }


def local_config(ports: dict[str, list[int]], interval: str | None = None) -> dict[str, Any]:
    """prometheus.yml with the targets on 127.0.0.1:<port> (the n-th target of a
    job keeps its labels and takes the n-th port; a port of 0, an endpoint turned
    off, drops its target)."""
    config = yaml.safe_load((CONFIG_DIR / "prometheus.yml").read_text())
    config.pop("alerting", None)
    if interval:
        config["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
    for job in config["scrape_configs"]:
        static = [target for target in job["static_configs"] for _ in target["targets"]]
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{port}"], **({"labels": target["labels"]} if "labels" in target else {})}
            for target, port in zip(static, ports[job["job_name"]], strict=True)
            if port
        ]
    return config


def write_local_config(directory: Path, ports: dict[str, list[int]], interval: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CONFIG_DIR / "rules.yml", directory / "rules.yml")
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(local_config(ports, interval), sort_keys=False))
    return path


def command(config: Path, data_dir: Path, listen: str) -> list[str]:
    return [
        shutil.which("prometheus") or "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=30d",
        f"--web.listen-address={listen}",
    ]
