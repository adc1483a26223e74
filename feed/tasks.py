"""Periodic feed tasks (CELERY_BEAT_SCHEDULE in nova/settings.py; docs/architecture/tasks.md).

Thin, as in ranking/tasks.py: take the lock (two overlapping runs would rank the
same users twice), call feed/warming.py. ClickHouse failures are not retried
here: warming skips a user whose ranking fails, and stops while the breaker is
open; the next interval tries again.
"""

from __future__ import annotations

from dataclasses import asdict

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from feed import warming
from nova import periodic
from nova.locks import exclusive
from nova.periodic import SKIPPED, lock_for


@shared_task(
    name="feed.tasks.warm_feed_caches",
    bind=True,
    acks_late=True,
    soft_time_limit=50,
    time_limit=58,
    autoretry_for=(*periodic.POSTGRES_ERRORS, *periodic.REDIS_ERRORS),
    retry_backoff=True,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=3,
)
def warm_feed_caches(self: Task) -> dict[str, object]:
    with exclusive(periodic.task_redis(), *lock_for(self)) as held:
        if not held:
            return SKIPPED
        result = warming.warm_feed_caches(
            timezone.now(),
            active_window_s=settings.FEED_WARM_ACTIVE_WINDOW_SECONDS,
            forget_after_s=settings.FEED_WARM_FORGET_DAYS * 86400,
            refresh_below_s=settings.FEED_WARM_REFRESH_BELOW_SECONDS,
            batch_size=settings.FEED_WARM_BATCH_SIZE,
            max_users=settings.FEED_WARM_MAX_USERS,
            budget_s=40.0,  # under the 50 s soft limit
        )
        return asdict(result)
