"""Periodic pipeline tasks (CELERY_BEAT_SCHEDULE in nova/settings.py; docs/architecture/tasks.md).

Thin, like ranking/tasks.py: the Redis lock, the clients, one domain call;
outages of the services each task talks to are retried with exponential backoff.
"""

from __future__ import annotations

import time

from celery import Task, shared_task
from django.conf import settings
from django.db import connection
from django.utils import timezone

from nova import periodic
from nova.locks import exclusive
from nova.periodic import SKIPPED, lock_for
from pipeline import lag, retention
from pipeline.consumers import CONSUMERS

# one broker request (metadata, committed offsets, watermarks) may take this long
KAFKA_REQUEST_TIMEOUT_SECONDS = 5.0


@shared_task(
    name="pipeline.tasks.report_pipeline_lag",
    bind=True,
    acks_late=True,
    soft_time_limit=20,
    time_limit=30,
    autoretry_for=(*periodic.KAFKA_ERRORS, *periodic.POSTGRES_ERRORS, *periodic.REDIS_ERRORS),
    retry_backoff=True,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=3,
)
def report_pipeline_lag(self: Task) -> dict[str, object]:
    store = periodic.task_redis()
    with exclusive(store, *lock_for(self)) as held:
        if not held:
            return SKIPPED
        with connection.cursor() as cursor:
            report = lag.report_pipeline_lag(
                store,
                settings.KAFKA,
                lag.consumer_groups(CONSUMERS.values(), settings.KAFKA),
                cursor,
                settings.CDC.slot_name,
                time.time(),
                KAFKA_REQUEST_TIMEOUT_SECONDS,
            )
        return {"partitions": len(report.consumer_lag), "slots": len(report.slot_lag_bytes)}


@shared_task(
    name="pipeline.tasks.enforce_events_retention",
    bind=True,
    acks_late=True,
    soft_time_limit=120,
    time_limit=150,
    autoretry_for=(*periodic.CLICKHOUSE_ERRORS, *periodic.REDIS_ERRORS),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def enforce_events_retention(self: Task) -> dict[str, object]:
    store = periodic.task_redis()
    with exclusive(store, *lock_for(self)) as held:
        if not held:
            return SKIPPED
        clickhouse = periodic.clickhouse_client()
        try:
            dropped = retention.enforce_events_retention(
                clickhouse,
                timezone.now(),
                settings.EVENTS_RETENTION_DAYS,
                settings.CLICKHOUSE.cluster,
                settings.CLICKHOUSE.database,
            )
        finally:
            clickhouse.disconnect()
        return {"dropped": dropped}
