"""Periodic ranking tasks (CELERY_BEAT_SCHEDULE in nova/settings.py; docs/architecture/tasks.md).

Each task is thin: take its Redis lock (a second run while one is going is
skipped), build its clients, call one domain function. The retry policy is in
the decorator: outages of Postgres, Redis or ClickHouse are retried with
exponential backoff; anything else fails the run, and the next interval tries again.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from nova import periodic
from nova.locks import exclusive
from nova.periodic import SKIPPED, lock_for
from ranking import suggestions, trending


@shared_task(
    name="ranking.tasks.refresh_trending",
    bind=True,
    acks_late=True,
    soft_time_limit=45,
    time_limit=60,
    autoretry_for=(*periodic.CLICKHOUSE_ERRORS, *periodic.REDIS_ERRORS),
    retry_backoff=True,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=5,
)
def refresh_trending(self: Task) -> dict[str, object]:
    store = periodic.task_redis()
    with exclusive(store, *lock_for(self)) as held:
        if not held:
            return SKIPPED
        clickhouse = periodic.clickhouse_client()
        try:
            post_ids = trending.refresh_trending(
                clickhouse,
                store,
                timezone.now(),
                window_hours=settings.TRENDING_WINDOW_HOURS,
                limit=settings.TRENDING_LIMIT,
                ttl_seconds=settings.TRENDING_TTL_SECONDS,
            )
        finally:
            clickhouse.disconnect()
        return {"posts": len(post_ids)}


@shared_task(
    name="ranking.tasks.refresh_suggested_users",
    bind=True,
    acks_late=True,
    soft_time_limit=240,
    time_limit=270,
    autoretry_for=(*periodic.POSTGRES_ERRORS, *periodic.REDIS_ERRORS),
    retry_backoff=True,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
)
def refresh_suggested_users(self: Task) -> dict[str, object]:
    store = periodic.task_redis()
    with exclusive(store, *lock_for(self)) as held:
        if not held:
            return SKIPPED
        users = suggestions.refresh_suggestions(
            store,
            timezone.now(),
            active_window_seconds=settings.SUGGESTIONS_ACTIVE_WINDOW_SECONDS,
            max_users=settings.SUGGESTIONS_REFRESH_MAX_USERS,
            size=settings.SUGGESTIONS_MAX_LIMIT,
            ttl_seconds=settings.SUGGESTIONS_TTL_SECONDS,
        )
        return {"users": users}
