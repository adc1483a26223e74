"""The request path's Redis client: one per process, connected lazily, and
skipped for a moment after a failure.

The feed cache and the circuit breaker's shared state live in Redis, but the
feed must still answer when Redis is down (uncached). A refused connection
fails fast; a frozen or unreachable Redis would cost every call its socket
timeout, so after a failure the process stops asking for `retry_after`
seconds and callers take their no-Redis path at once.
"""

from __future__ import annotations

import threading
import time

import redis
from django.conf import settings

# what "Redis is unavailable" looks like to redis-py (OSError: a socket torn down
# mid-reply); anything else is a bug and propagates
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)

_lock = threading.Lock()
_client: redis.Redis | None = None
_down_until = 0.0


def client() -> redis.Redis | None:
    """The shared client (thread-safe: redis-py pools connections), or None while
    Redis is considered down."""
    global _client
    if time.monotonic() < _down_until:
        return None
    if _client is None:
        with _lock:
            if _client is None:
                timeout = settings.REDIS_SOCKET_TIMEOUT
                _client = redis.Redis.from_url(
                    settings.REDIS_URL,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    health_check_interval=30,
                )
    return _client


def mark_down() -> None:
    """Call after a REDIS_ERRORS failure: callers skip Redis for a moment."""
    global _down_until
    _down_until = time.monotonic() + settings.REDIS_RETRY_AFTER_SECONDS


def key(*parts: object) -> str:
    """A key in Nova's namespace: '<REDIS_KEY_PREFIX>:part:part'."""
    return ":".join((settings.REDIS_KEY_PREFIX, *map(str, parts)))


def reset() -> None:
    """Forget the client and any "down" mark (tests that point REDIS_URL elsewhere)."""
    global _client, _down_until
    with _lock:
        if _client is not None:
            _client.close()
        _client, _down_until = None, 0.0
