"""Dependency checks for /readyz.

Each dependency's client is built once and reused (a readiness probe every few
seconds must not open four connections each time); a failed check drops its client
so the next one reconnects. The checks run in parallel so /readyz answers within
about one timeout even when several dependencies hang; a check still hanging from
an earlier run is reported as such instead of piling up threads. `cached_checks`
answers from the last run for READINESS_CACHE_SECONDS, so a burst of probes runs
the checks once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from django.conf import settings

from nova.clickhouse import make_client
from nova.kafka import admin_client

_clients: dict[str, tuple[object, Any]] = {}
_clients_lock = threading.Lock()
_running: dict[str, threading.Lock] = {}


def _client(name: str, config: object, make: Callable[[], Any]) -> Any:
    """The reused client of a dependency, rebuilt when its settings changed."""
    with _clients_lock:
        cached = _clients.get(name)
        if cached is None or cached[0] != config:
            cached = _clients[name] = (config, make())
        return cached[1]


def _drop(name: str, close: Callable[[Any], None]) -> None:
    with _clients_lock:
        cached = _clients.pop(name, None)
    if cached is not None:
        try:
            close(cached[1])
        except Exception:  # a broken client may fail to close; it is dropped either way
            pass


def close_clients() -> None:
    """Close every reused client (tests: a kept connection would block dropping their database)."""
    for name, close in (
        ("postgres", lambda c: c.close()),
        ("redis", lambda c: c.close()),
        ("clickhouse", lambda c: c.disconnect()),
        ("kafka", lambda c: None),
    ):
        _drop(name, close)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


def check_postgres(timeout: float) -> str:
    db = settings.DATABASES["default"]

    def connect() -> psycopg.Connection:
        return psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or None,
            dbname=db["NAME"],
            user=db["USER"],
            password=db["PASSWORD"] or None,
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
            options=f"-c statement_timeout={int(timeout * 1000)}",
        )

    conn = _client("postgres", (db["HOST"], db["PORT"], db["NAME"], db["USER"], timeout), connect)
    try:
        conn.execute("SELECT 1")
    except Exception:
        _drop("postgres", lambda c: c.close())
        raise
    return f"PostgreSQL {conn.info.server_version}"


def check_redis(timeout: float) -> str:
    # redis-py's pool reconnects by itself
    client = _client(
        "redis",
        (settings.REDIS_URL, timeout),
        lambda: redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout),
    )
    return f"Redis {client.info('server')['redis_version']}"


def check_clickhouse(timeout: float) -> str:
    client = _client(
        "clickhouse",
        (settings.CLICKHOUSE, timeout),
        lambda: make_client(settings.CLICKHOUSE, database="default", timeout=timeout),
    )
    try:
        return f"ClickHouse {client.execute('SELECT version()')[0][0]}"
    except Exception:
        _drop("clickhouse", lambda c: c.disconnect())
        raise


def check_kafka(timeout: float) -> str:
    admin = _client(
        "kafka",
        (settings.KAFKA, timeout),
        lambda: admin_client(settings.KAFKA, **{"socket.timeout.ms": int(timeout * 1000)}),
    )
    metadata = admin.list_topics(timeout=timeout)
    return f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)"


CHECKS: dict[str, Callable[[float], str]] = {
    "postgres": check_postgres,
    "redis": check_redis,
    "clickhouse": check_clickhouse,
    "kafka": check_kafka,
}


def _run_one(name: str, timeout: float) -> str:
    lock = _running.setdefault(name, threading.Lock())
    if not lock.acquire(blocking=False):
        raise TimeoutError("the previous check has not answered yet")
    try:
        return CHECKS[name](timeout)
    finally:
        lock.release()


def run_checks(timeout: float) -> dict[str, CheckResult]:
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    futures = {name: pool.submit(_run_one, name, timeout) for name in CHECKS}
    wait(futures.values(), timeout=timeout + 1.0)
    # don't wait for a hung check: it times out on its own
    pool.shutdown(wait=False)
    results = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = CheckResult(False, f"no answer within {timeout}s")
        elif future.exception() is not None:
            exc = future.exception()
            results[name] = CheckResult(False, f"{type(exc).__name__}: {exc}".strip()[:300])
        else:
            results[name] = CheckResult(True, future.result())
    return results


_last: tuple[float, dict[str, CheckResult]] | None = None
_last_lock = threading.Lock()


def cached_checks(timeout: float, max_age: float) -> dict[str, CheckResult]:
    """The last run's results if younger than max_age, else a new run (one at a time)."""
    global _last
    with _last_lock:
        if _last is None or time.monotonic() - _last[0] >= max_age:
            _last = (time.monotonic(), run_checks(timeout))
        return _last[1]
