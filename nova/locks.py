"""A Redis lock for work that must not run twice at once (periodic tasks).

`SET key token NX PX ttl` takes it; only the holder of the token may release it
(compare-and-delete in one Lua call), so a run that outlived its TTL cannot
release the lock of the run that took it over. The TTL bounds how long a
crashed holder (a killed worker) blocks the next run.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLock:
    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"lock TTL must be positive, got {ttl_seconds}")
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = secrets.token_hex(16)

    def acquire(self) -> bool:
        """True if this lock now holds the key; False if someone else does."""
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> bool:
        """Delete the key if this lock still holds it; False if it expired or was taken over."""
        return bool(self.client.eval(_RELEASE_LUA, 1, self.key, self.token))


@contextmanager
def exclusive(client: redis.Redis, key: str, ttl_seconds: float) -> Iterator[bool]:
    """`with exclusive(...) as held:` runs the block holding the lock (held=True)
    or, if another run holds it, with held=False; the lock is released on exit,
    also when the block raises (a Celery soft time limit included)."""
    lock = RedisLock(client, key, ttl_seconds)
    held = lock.acquire()
    try:
        yield held
    finally:
        if held:
            _release(lock)


def _release(lock: RedisLock) -> None:
    try:
        released = lock.release()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        # the run is over either way; the key expires by its TTL, and raising here
        # would hide whatever the run itself raised
        log.warning("could not release lock %s (%s); it expires in at most %d ms", lock.key, exc, lock.ttl_ms)
        return
    if not released:
        log.warning("lock %s expired before its run ended (TTL %d ms)", lock.key, lock.ttl_ms)
