"""Dependency checks for /readyz: each opens its own short-lived connection
with a short timeout, and all run in parallel so /readyz answers within about
one timeout even when several dependencies hang."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import psycopg
import redis
from django.conf import settings

from nova.clickhouse import make_client
from nova.kafka import admin_client


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str


def check_postgres(timeout: float) -> str:
    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or None, dbname=db["NAME"], user=db["USER"],
        password=db["PASSWORD"] or None, connect_timeout=max(1, int(timeout)),
        options=f"-c statement_timeout={int(timeout * 1000)}",
    ) as conn:
        conn.execute("SELECT 1")
        return f"PostgreSQL {conn.info.server_version}"


def check_redis(timeout: float) -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
        return f"Redis {client.info('server')['redis_version']}"
    finally:
        client.close()


def check_clickhouse(timeout: float) -> str:
    client = make_client(settings.CLICKHOUSE, database="default", timeout=timeout)
    try:
        return f"ClickHouse {client.execute('SELECT version()')[0][0]}"
    finally:
        client.disconnect()


def check_kafka(timeout: float) -> str:
    metadata = admin_client(settings.KAFKA, **{"socket.timeout.ms": int(timeout * 1000)}).list_topics(timeout=timeout)
    return f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)"


CHECKS: dict[str, Callable[[float], str]] = {
    "postgres": check_postgres,
    "redis": check_redis,
    "clickhouse": check_clickhouse,
    "kafka": check_kafka,
}


def run_checks(timeout: float) -> dict[str, CheckResult]:
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    futures = {name: pool.submit(check, timeout) for name, check in CHECKS.items()}
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
