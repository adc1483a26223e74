"""`redis_down`: the request path's Redis client (nova/redis.py) pointed at a port
nothing listens on, so every call is refused as with Redis stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nova import redis as nova_redis


@pytest.fixture
def redis_down(settings) -> Iterator[None]:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    nova_redis.reset()
    yield
    nova_redis.reset()  # the next client is built from the restored settings
