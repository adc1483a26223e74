"""nova/breaker.py: the state machine on a process-local store with a fake
clock, then the shared Redis state (real Redis) as two processes see it."""

from __future__ import annotations

import pytest

from monitoring import metrics
from nova import redis as nova_redis
from nova.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, LocalStore, RedisStore
from nova.config import BreakerSettings

SETTINGS = BreakerSettings(failure_threshold=3, cool_down_seconds=10.0, probe_timeout_seconds=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(store=None, clock=None) -> CircuitBreaker:
    return CircuitBreaker("test", SETTINGS, store or LocalStore(), clock or Clock())


def _changes(state: str) -> float:
    return metrics.CIRCUIT_BREAKER_STATE_CHANGES.labels(datasource="test", state=state)._value.get()


def test_opens_after_n_consecutive_failures():
    breaker = _breaker()
    opened = _changes(OPEN)
    for _ in range(SETTINGS.failure_threshold - 1):
        breaker.record_failure()
        assert breaker.allow() and breaker.state() == CLOSED
    breaker.record_failure()
    assert breaker.state() == OPEN
    assert not breaker.allow()
    assert _changes(OPEN) == opened + 1
    assert metrics.CIRCUIT_BREAKER_STATE.labels(datasource="test")._value.get() == 2


def test_a_success_resets_the_count_failures_must_be_consecutive():
    breaker = _breaker()
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state() == CLOSED


@pytest.mark.parametrize("wait, allowed", [(0, False), (9.9, False), (10.0, True), (60, True)])
def test_cool_down_then_one_probe(wait, allowed):
    clock = Clock()
    breaker = _breaker(clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += wait
    assert breaker.allow() is allowed
    if allowed:
        assert breaker.state() == HALF_OPEN
        assert not breaker.allow(), "a second probe while the first is out"


def test_probe_success_closes_probe_failure_reopens_for_another_cool_down():
    clock = Clock()
    breaker = _breaker(clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state() == OPEN
    clock.now += 5
    assert not breaker.allow(), "the cool-down restarts at the failed probe"
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state() == CLOSED
    assert breaker.allow() and breaker.allow()


def test_a_lost_probe_frees_its_slot_after_the_probe_timeout():
    clock = Clock()
    breaker = _breaker(clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.now += 10
    assert breaker.allow()  # this probe never reports back (its process died)
    clock.now += SETTINGS.probe_timeout_seconds - 0.1
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()


@pytest.mark.requires_redis
def test_state_is_shared_through_redis(unique_name):
    """Two breakers on one Redis hash are two web workers: one's failures open
    the other's breaker, and only one of them gets the half-open probe."""
    datasource = f"test-{unique_name}"
    clock = Clock()
    worker_a = CircuitBreaker(datasource, SETTINGS, RedisStore(datasource, LocalStore()), clock)
    worker_b = CircuitBreaker(datasource, SETTINGS, RedisStore(datasource, LocalStore()), clock)
    try:
        worker_a.record_failure()
        worker_b.record_failure()
        worker_a.record_failure()
        assert worker_b.state() == OPEN
        assert not worker_b.allow()
        clock.now += 10
        probes = [worker_a.allow(), worker_b.allow()]
        assert sorted(probes) == [False, True]
        worker_a.record_success()
        assert worker_b.state() == CLOSED and worker_b.allow()
    finally:
        client = nova_redis.client()
        assert client is not None
        client.delete(nova_redis.key("breaker", datasource), nova_redis.key("breaker", datasource, "probe"))
