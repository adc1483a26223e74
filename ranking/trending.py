"""Trending posts: the most engaged posts of the last day, computed in ClickHouse
by a periodic task and kept in Redis for the request path.

`refresh_trending` (the task's one call) runs infra/clickhouse/queries/trending_posts.sql
and stores the post ids as a JSON list with a TTL; `trending_post_ids()` reads
them for the feed's Postgres fallback (users who follow nobody). A reader never
fails: no list (expired, never computed, Redis down) is an empty list.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from nova import redis as nova_redis
from nova.periodic import loads_ids
from ranking.candidates import QueryRunner, load_query
from ranking.scoring import epoch_us

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrendingPost:
    post_id: int
    author_id: int
    weighted_actions: int


def trending_key() -> str:
    return nova_redis.key("ranking", "trending")


def trending_params(now: datetime, window_hours: int, limit: int) -> dict[str, Any]:
    """Every value trending_posts.sql binds (pure)."""
    now_s = epoch_us(now) // 1_000_000
    since_s = now_s - window_hours * 3600
    return {"now_s": now_s, "since_s": since_s, "since_hour_s": since_s - since_s % 3600, "limit": limit}


def fetch_trending(runner: QueryRunner, now: datetime, window_hours: int, limit: int) -> list[TrendingPost]:
    """The `limit` posts created in the `window_hours` before `now` with the most
    weighted actions, most first (ties: newest post id first)."""
    rows = runner.execute(load_query("trending_posts"), trending_params(now, window_hours, limit))
    return [TrendingPost(int(post_id), int(author_id), int(weighted)) for post_id, author_id, weighted in rows]


def store_trending(client: redis.Redis, post_ids: list[int], ttl_seconds: int) -> None:
    # an empty list is stored too: "nothing trends" is an answer, not a miss
    client.set(trending_key(), json.dumps(post_ids), ex=ttl_seconds)


def refresh_trending(
    runner: QueryRunner, client: redis.Redis, now: datetime, *, window_hours: int, limit: int, ttl_seconds: int
) -> list[int]:
    """Compute the trending posts and store their ids (idempotent: the list is replaced); returns them."""
    post_ids = [post.post_id for post in fetch_trending(runner, now, window_hours, limit)]
    store_trending(client, post_ids, ttl_seconds)
    return post_ids


def trending_post_ids() -> list[int]:
    """The last computed trending post ids, best first; [] if none or Redis is down."""
    client = nova_redis.client()
    if client is None:  # Redis failed a moment ago (nova/redis.py)
        return []
    try:
        raw = client.get(trending_key())
    except nova_redis.REDIS_ERRORS as exc:
        nova_redis.mark_down()
        log.warning("trending posts unavailable: %s", exc)
        return []
    return loads_ids(raw) or []
