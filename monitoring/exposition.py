"""Serving the metrics of monitoring/metrics.py: worker processes' own HTTP
endpoints, and the registry a scrape reads.

Multiprocess mode (prometheus_client): when PROMETHEUS_MULTIPROC_DIR is set
before prometheus_client is imported, every process writes its values to files
in that directory and a scrape adds them up, so a counter says N after N
requests whichever of gunicorn's workers served them. gunicorn.conf.py sets it
for the web; the Procfile sets it for the Celery worker (nova/celery.py).
Each such directory belongs to one server: two servers sharing it would add
up each other's counters.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def reset_multiprocess_dir(path: str, keep_pid: int | None = None) -> None:
    """Create `path`, or empty it of an earlier run's files (which would be added
    to this run's counters). Call it before the processes that write there start;
    `keep_pid`'s own files (the caller's, already open) stay."""
    Path(path).mkdir(parents=True, exist_ok=True)
    for file in Path(path).glob("*.db"):
        if keep_pid is None or not file.stem.endswith(f"_{keep_pid}"):
            file.unlink(missing_ok=True)


def mark_process_dead(pid: int) -> None:
    """A worker process ended: drop its live gauges (its counters still count)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


def scrape_registry(*scrape_time: Collector) -> CollectorRegistry:
    """What a scrape of this process reads: the default registry, or under the
    multiprocess mode every process's files plus the `scrape_time` collectors
    (computed by the answering process; they keep no value in a file)."""
    if not multiprocess_dir():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in scrape_time:
        registry.register(collector)
    return registry


def serve(port: int, addr: str | None = None, registry: CollectorRegistry | None = None) -> None:
    """Expose this process's metrics at http://addr:port/metrics (port 0 = off)."""
    if not port:
        return
    from django.conf import settings

    addr = addr or settings.METRICS_BIND_ADDRESS
    start_http_server(port, addr=addr, registry=registry or scrape_registry())
    log.info("metrics at http://%s:%d/metrics", addr, port)
