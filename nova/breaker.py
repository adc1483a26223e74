"""A circuit breaker around ClickHouse for the request path.

closed ──N consecutive failures or timeouts──▶ open ──cool-down──▶ half-open
  ▲                                              ▲                   │ one probe query
  └──────────────── probe succeeds ──────────────┴── probe fails ────┘

While open, callers get `BreakerOpen` at once and serve their fallback instead
of waiting on a sick server. The state is shared by every web worker and Celery
process through one Redis hash per datasource, so one process's failures
protect the others; only one process at a time holds the half-open probe. When
Redis itself is down, each process keeps its own state (a breaker that stops
working with Redis would leave ClickHouse unguarded exactly when things break).

Metrics: circuit_breaker_state{datasource} (0 closed, 1 half-open, 2 open, as
this process last saw it) and circuit_breaker_state_changes_total{datasource,state}.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from monitoring import metrics
from nova import redis as nova_redis
from nova.clickhouse import make_client
from nova.config import BreakerSettings, ClickHouseConfig

CLOSED = "closed"
HALF_OPEN = "half_open"
OPEN = "open"
_GAUGE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


class BreakerOpen(Exception):
    """The datasource is considered down: do not call it, serve the fallback."""


class QueryTimeout(Exception):
    """A query ran past its deadline and was cancelled."""


@dataclass
class BreakerState:
    state: str = CLOSED
    failures: int = 0
    opened_at: float = 0.0


class StateStore(Protocol):
    def read(self) -> BreakerState: ...
    def add_failure(self) -> int: ...
    def reset_failures(self) -> None: ...
    def set_open(self, now: float) -> None: ...
    def set_closed(self) -> None: ...
    def try_probe(self, now: float, ttl: float) -> bool: ...


class LocalStore:
    """One process's state: used when Redis is unreachable, and in unit tests."""

    def __init__(self) -> None:
        self._state = BreakerState()
        self._probe_until = 0.0
        self._lock = threading.Lock()

    def read(self) -> BreakerState:
        with self._lock:
            return BreakerState(self._state.state, self._state.failures, self._state.opened_at)

    def add_failure(self) -> int:
        with self._lock:
            self._state.failures += 1
            return self._state.failures

    def reset_failures(self) -> None:
        with self._lock:
            self._state.failures = 0

    def set_open(self, now: float) -> None:
        with self._lock:
            self._state = BreakerState(OPEN, 0, now)
            self._probe_until = 0.0

    def set_closed(self) -> None:
        with self._lock:
            self._state = BreakerState()
            self._probe_until = 0.0

    def try_probe(self, now: float, ttl: float) -> bool:
        with self._lock:
            if now < self._probe_until:
                return False
            self._probe_until = now + ttl
            self._state.state = HALF_OPEN
            return True


class RedisStore:
    """The shared state: hash <prefix>:breaker:<datasource> {state, failures, opened_at}
    and a probe key taken with SET NX PX. Any Redis failure switches this call to
    the process-local store."""

    def __init__(self, datasource: str, local: LocalStore) -> None:
        self.hash_key = nova_redis.key("breaker", datasource)
        self.probe_key = nova_redis.key("breaker", datasource, "probe")
        self.local = local

    def _call(self, remote: Callable[[Any], Any], fallback: Callable[[], Any]) -> Any:
        client = nova_redis.client()
        if client is None:
            return fallback()
        try:
            return remote(client)
        except nova_redis.REDIS_ERRORS:
            nova_redis.mark_down()
            return fallback()

    def read(self) -> BreakerState:
        def remote(client: Any) -> BreakerState:
            raw = client.hgetall(self.hash_key)
            return BreakerState(
                state=raw.get(b"state", CLOSED.encode()).decode(),
                failures=int(raw.get(b"failures", 0)),
                opened_at=float(raw.get(b"opened_at", 0)),
            )

        return self._call(remote, self.local.read)

    def add_failure(self) -> int:
        return self._call(lambda c: int(c.hincrby(self.hash_key, "failures", 1)), self.local.add_failure)

    def reset_failures(self) -> None:
        self._call(lambda c: c.hset(self.hash_key, "failures", 0), self.local.reset_failures)

    def set_open(self, now: float) -> None:
        def remote(client: Any) -> None:
            pipe = client.pipeline()
            pipe.hset(self.hash_key, mapping={"state": OPEN, "failures": 0, "opened_at": repr(now)})
            pipe.delete(self.probe_key)
            pipe.execute()

        self._call(remote, lambda: self.local.set_open(now))

    def set_closed(self) -> None:
        def remote(client: Any) -> None:
            pipe = client.pipeline()
            pipe.hset(self.hash_key, mapping={"state": CLOSED, "failures": 0, "opened_at": 0})
            pipe.delete(self.probe_key)
            pipe.execute()

        self._call(remote, self.local.set_closed)

    def try_probe(self, now: float, ttl: float) -> bool:
        def remote(client: Any) -> bool:
            if not client.set(self.probe_key, repr(now), nx=True, px=max(1, int(ttl * 1000))):
                return False
            client.hset(self.hash_key, "state", HALF_OPEN)
            return True

        return bool(self._call(remote, lambda: self.local.try_probe(now, ttl)))


class CircuitBreaker:
    def __init__(
        self, datasource: str, config: BreakerSettings, store: StateStore, clock: Callable[[], float] = time.time
    ) -> None:
        self.datasource = datasource
        self.config = config
        self.store = store
        self.clock = clock

    def state(self) -> str:
        current = self.store.read()
        metrics.CIRCUIT_BREAKER_STATE.labels(datasource=self.datasource).set(_GAUGE.get(current.state, 2))
        return current.state

    def allow(self) -> bool:
        """May the caller query now? While open, yes only for the one half-open probe."""
        current = self.store.read()
        metrics.CIRCUIT_BREAKER_STATE.labels(datasource=self.datasource).set(_GAUGE.get(current.state, 2))
        if current.state == CLOSED:
            return True
        now = self.clock()
        if now - current.opened_at < self.config.cool_down_seconds:
            return False
        if self.store.try_probe(now, self.config.probe_timeout_seconds):
            self._changed(HALF_OPEN)
            return True
        return False

    def record_success(self) -> None:
        current = self.store.read()
        if current.state != CLOSED:
            self.store.set_closed()
            self._changed(CLOSED)
        elif current.failures:
            self.store.reset_failures()

    def record_failure(self) -> None:
        current = self.store.read()
        if current.state != CLOSED:
            # a failed probe (or a query that started before the breaker opened):
            # stay open for another cool-down
            self.store.set_open(self.clock())
            if current.state == HALF_OPEN:
                self._changed(OPEN)
            return
        if self.store.add_failure() >= self.config.failure_threshold:
            self.store.set_open(self.clock())
            self._changed(OPEN)

    def _changed(self, state: str) -> None:
        metrics.CIRCUIT_BREAKER_STATE.labels(datasource=self.datasource).set(_GAUGE[state])
        metrics.CIRCUIT_BREAKER_STATE_CHANGES.labels(datasource=self.datasource, state=state).inc()


# what a sick ClickHouse looks like to clickhouse-driver; a ServerException for
# a bad query counts too: from the caller's side the datasource failed
CLICKHOUSE_FAILURES: tuple[type[BaseException], ...] = (ch_errors.Error, OSError, EOFError, QueryTimeout)


class GuardedClickHouse:
    """A QueryRunner (ranking.candidates) for the request path: each query goes
    through the breaker and is cancelled at its deadline.

    ClickHouse 18.16's max_execution_time takes whole seconds (0.5 means no
    limit), and the socket timeout never fires on a slow query because the
    server keeps sending progress packets; so the deadline is checked on each
    progress packet (every ~100 ms, interactive_delay) and the query cancelled.
    The socket timeout covers a server that sends nothing at all (frozen)."""

    def __init__(self, breaker: CircuitBreaker, config: ClickHouseConfig) -> None:
        self.breaker = breaker
        self.config = config
        self._local = threading.local()

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = make_client(
                self.config,
                timeout=self.config.query_timeout,
                settings={"max_execution_time": max(1, math.ceil(self.config.query_timeout))},
            )
            self._local.client = client
        return client

    def execute(self, query: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        breaker_for(self.breaker.datasource)  # the current thresholds
        if not self.breaker.allow():
            raise BreakerOpen(self.breaker.datasource)
        try:
            rows = self._run(query, params)
        except CLICKHOUSE_FAILURES as exc:
            if isinstance(exc, (QueryTimeout, ch_errors.SocketTimeoutError, TimeoutError)):
                metrics.CLICKHOUSE_QUERY_TIMEOUTS.labels(datasource=self.breaker.datasource).inc()
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return rows

    def _run(self, query: str, params: dict[str, Any] | None) -> list[tuple[Any, ...]]:
        client = self._client()
        deadline = time.monotonic() + self.config.query_timeout
        try:
            progress = client.execute_with_progress(query, params)
            for _ in progress:
                if time.monotonic() > deadline:
                    client.cancel()
                    raise QueryTimeout(f"query cancelled after {self.config.query_timeout:.3f} s")
            return list(progress.get_result())
        except (ch_errors.Error, OSError, EOFError):
            # a broken connection stays broken for the next call otherwise
            client.disconnect()
            raise


_breakers: dict[str, CircuitBreaker] = {}
_guarded: dict[str, GuardedClickHouse] = {}
_registry_lock = threading.Lock()


def breaker_for(datasource: str) -> CircuitBreaker:
    from django.conf import settings

    with _registry_lock:
        if datasource not in _breakers:
            _breakers[datasource] = CircuitBreaker(
                datasource, settings.CIRCUIT_BREAKER, RedisStore(datasource, LocalStore())
            )
        breaker = _breakers[datasource]
        # thresholds are read on each use, so a changed setting (a test's override) applies
        breaker.config = settings.CIRCUIT_BREAKER
        return breaker


def guarded_clickhouse() -> GuardedClickHouse:
    """The request path's ClickHouse: settings.CLICKHOUSE behind the 'clickhouse' breaker."""
    from django.conf import settings

    config = settings.CLICKHOUSE
    with _registry_lock:
        runner = _guarded.get(config.database)
    if runner is None or runner.config != config:
        runner = GuardedClickHouse(breaker_for("clickhouse"), config)
        with _registry_lock:
            _guarded[config.database] = runner
    return runner
