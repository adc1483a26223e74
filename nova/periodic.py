"""What every periodic task shares (ranking/tasks.py, pipeline/tasks.py;
docs/architecture/tasks.md): the errors it retries, its Redis and ClickHouse
clients, its lock, and the shape of the id lists it stores for the request path."""

from __future__ import annotations

import json
import math
from functools import cache

import django.db
import redis
from celery import Task
from clickhouse_driver import Client
from clickhouse_driver import errors as clickhouse_errors
from confluent_kafka import KafkaException
from django.conf import settings

from nova import redis as nova_redis
from nova.clickhouse import make_client

# Infrastructure errors, retried with backoff (Celery autoretry_for): an outage of
# a service the task talks to. Anything else (a bug, bad SQL, a bad setting)
# fails the run at once instead of being retried.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
POSTGRES_ERRORS: tuple[type[Exception], ...] = (django.db.OperationalError, django.db.InterfaceError)
CLICKHOUSE_ERRORS: tuple[type[Exception], ...] = (clickhouse_errors.NetworkError, clickhouse_errors.SocketTimeoutError)
# librdkafka reports an unreachable broker or a request timeout as a KafkaException
KAFKA_ERRORS: tuple[type[Exception], ...] = (KafkaException,)

# what a run returns when another run holds the lock
SKIPPED: dict[str, object] = {"skipped": "another run holds the lock"}


def lock_for(task: Task) -> tuple[str, float]:
    """The task's lock key, and a TTL that outlives its hard time limit: a run
    killed at the limit (or with its worker) blocks the next one only briefly."""
    return nova_redis.key("lock", task.name), float(task.time_limit) + 10.0


@cache
def _redis(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


def task_redis() -> redis.Redis:
    """The worker's Redis client. Unlike the request path's (nova/redis.py), which
    skips Redis for a moment after a failure, it raises: the task is retried."""
    return _redis(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


def clickhouse_client() -> Client:
    """A client for one run (disconnect it after): the request path's query limit
    (CLICKHOUSE_QUERY_TIMEOUT) is far too short for a task's queries."""
    return make_client(
        settings.CLICKHOUSE, settings={"max_execution_time": math.ceil(settings.TASK_CLICKHOUSE_QUERY_TIMEOUT)}
    )


def loads_ids(raw: bytes | str | None) -> list[int] | None:
    """A stored JSON list of ids, or None for anything else (absent, corrupt, wrong
    shape): a reader treats a value it cannot trust as a miss."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(type(item) is int for item in value):
        return None
    return value
