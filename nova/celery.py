"""The Celery app: `celery -A nova worker` and `celery -A nova beat`.

Each serves its metrics on its own port (CELERY_WORKER_METRICS_PORT,
CELERY_BEAT_METRICS_PORT; 0 = off). The worker's tasks run in pool processes:
with PROMETHEUS_MULTIPROC_DIR set (the Procfile does) they write their metrics
there and the worker's endpoint adds them up (monitoring/exposition.py).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nova.settings")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # prometheus_client opens its files there as soon as a metric is declared
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

app = Celery("nova")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def _serve_worker_metrics(**kwargs: Any) -> None:
    from django.conf import settings

    from monitoring import exposition

    directory = exposition.multiprocess_dir()
    if directory:
        # before the pool forks: an earlier run's files would add to this run's counters
        exposition.reset_multiprocess_dir(directory, keep_pid=os.getpid())
    exposition.serve(settings.CELERY_WORKER_METRICS_PORT)


@signals.worker_process_shutdown.connect
def _forget_pool_process(pid: int | None = None, **kwargs: Any) -> None:
    from monitoring import exposition

    exposition.mark_process_dead(pid or os.getpid())


@signals.beat_init.connect
def _serve_beat_metrics(**kwargs: Any) -> None:
    from django.conf import settings

    from monitoring import exposition

    exposition.serve(settings.CELERY_BEAT_METRICS_PORT)
