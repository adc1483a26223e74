"""Cache warming: rank, ahead of time, the feeds of users who were active in
the last hour, so their next first page is a cache hit.

Run by the `warm_feed_caches` Celery task (feed/tasks.py). Users are taken from
the activity set that first pages write (feed/cache.py `feed:active`); a user
inactive for FEED_WARM_FORGET_DAYS (7) drops out of it and is never warmed.
A user is warmed when their snapshot is missing or expires within
FEED_WARM_REFRESH_BELOW_SECONDS; nothing is done while the ClickHouse breaker
is open (warming would only add load to a sick server).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from feed import cache
from feed.read import build_snapshot
from nova.breaker import CLICKHOUSE_FAILURES, OPEN, BreakerOpen, breaker_for


@dataclass
class WarmResult:
    active: int = 0
    warmed: int = 0
    still_fresh: int = 0
    failed: int = 0
    breaker_open: bool = False
    out_of_time: bool = False


def warm_feed_caches(
    now: datetime,
    *,
    active_window_s: int,
    forget_after_s: int,
    refresh_below_s: int,
    batch_size: int,
    max_users: int,
    budget_s: float | None = None,
) -> WarmResult:
    """`budget_s`: stop starting rankings after this long (the task's soft time limit
    would otherwise cut a run mid-ranking; the most recently active users come first)."""
    now_s = now.timestamp()
    deadline = time.monotonic() + budget_s if budget_s is not None else None
    users = cache.active_users(now_s - active_window_s, now_s - forget_after_s)[:max_users]
    result = WarmResult(active=len(users))
    if breaker_for("clickhouse").state() == OPEN:
        result.breaker_open = True
        return result
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        ttls = cache.snapshot_ttls(batch)
        for user_id in batch:
            if deadline is not None and time.monotonic() > deadline:
                result.out_of_time = True
                return result
            if ttls.get(user_id, -2) > refresh_below_s:
                result.still_fresh += 1
                continue
            try:
                cache.store_snapshot(build_snapshot(user_id, now))
            except BreakerOpen:
                result.breaker_open = True
                return result
            except CLICKHOUSE_FAILURES:
                result.failed += 1
                continue
            result.warmed += 1
    return result
