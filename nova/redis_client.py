"""The Redis client of periodic tasks and the readers of what they store.

One client per process (redis-py pools connections and is thread-safe), built
lazily so importing a module never connects. Keys are namespaced by
REDIS_KEY_PREFIX, so test sessions and deployments sharing a server stay apart.
"""

from __future__ import annotations

import json
from functools import cache

import redis
from django.conf import settings

# what "Redis is unavailable" looks like to redis-py: a task retries on these,
# a reader falls back to its no-Redis answer; any other error is a bug
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


@cache
def _client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def client() -> redis.Redis:
    return _client(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


def key(*parts: object) -> str:
    """A key in Nova's namespace: '<REDIS_KEY_PREFIX>:part:part'."""
    return ":".join((settings.REDIS_KEY_PREFIX, *map(str, parts)))


def loads_ids(raw: bytes | str | None) -> list[int] | None:
    """A stored JSON list of ids, or None for anything else (absent, corrupt, wrong shape):
    a reader treats a value it cannot trust as a miss."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(type(item) is int for item in value):
        return None
    return value
