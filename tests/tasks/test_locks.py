"""nova.locks on the real Redis: one holder at a time, released only by its owner."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from nova import redis as nova_redis
from nova.locks import RedisLock, exclusive
from nova.periodic import task_redis

pytestmark = [pytest.mark.requires_redis]


@pytest.fixture
def key() -> Iterator[str]:
    name = nova_redis.key("test-lock", uuid.uuid4().hex)
    yield name
    task_redis().delete(name)


def test_one_holder_at_a_time(key) -> None:
    first, second = RedisLock(task_redis(), key, 30), RedisLock(task_redis(), key, 30)
    assert first.acquire()
    assert not second.acquire()
    assert first.release()
    assert second.acquire()


def test_only_the_owner_releases(key) -> None:
    store = task_redis()
    owner, other = RedisLock(store, key, 30), RedisLock(store, key, 30)
    assert owner.acquire()
    assert not other.release()
    assert store.get(key) == owner.token.encode()
    assert 0 < store.pttl(key) <= 30_000


def test_a_crashed_holder_blocks_only_until_the_ttl(key) -> None:
    crashed = RedisLock(task_redis(), key, 0.2)
    assert crashed.acquire()  # and never releases
    successor = RedisLock(task_redis(), key, 30)
    assert not successor.acquire()
    time.sleep(0.3)
    assert successor.acquire()
    assert not crashed.release(), "the expired holder cannot release its successor's lock"
    assert task_redis().get(key) == successor.token.encode()


def test_exclusive_runs_once_and_releases_on_error(key) -> None:
    store = task_redis()
    with exclusive(store, key, 30) as held:
        assert held
        with exclusive(store, key, 30) as concurrent:
            assert not concurrent
        assert store.exists(key), "the skipped run did not release the holder's lock"
    assert not store.exists(key)
    with pytest.raises(RuntimeError), exclusive(store, key, 30) as held:
        assert held
        raise RuntimeError("the run failed")
    assert not store.exists(key)


def test_ttl_must_be_positive(key) -> None:
    with pytest.raises(ValueError):
        RedisLock(task_redis(), key, 0)
