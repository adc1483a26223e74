"""What every periodic task shares (ranking/tasks.py, pipeline/tasks.py;
docs/architecture/tasks.md): the errors it retries, its lock, its ClickHouse client."""

from __future__ import annotations

import math

import django.db
from celery import Task
from clickhouse_driver import Client
from clickhouse_driver import errors as clickhouse_errors
from confluent_kafka import KafkaException
from django.conf import settings

from nova import redis_client
from nova.clickhouse import make_client

# Infrastructure errors, retried with backoff (Celery autoretry_for): an outage of
# a service the task talks to. Anything else (a bug, bad SQL, a bad setting)
# fails the run at once instead of being retried.
REDIS_ERRORS = redis_client.REDIS_ERRORS
POSTGRES_ERRORS: tuple[type[Exception], ...] = (django.db.OperationalError, django.db.InterfaceError)
CLICKHOUSE_ERRORS: tuple[type[Exception], ...] = (clickhouse_errors.NetworkError, clickhouse_errors.SocketTimeoutError)
# librdkafka reports an unreachable broker or a request timeout as a KafkaException
KAFKA_ERRORS: tuple[type[Exception], ...] = (KafkaException,)

# what a run returns when another run holds the lock
SKIPPED = {"skipped": "another run holds the lock"}


def lock_for(task: Task) -> tuple[str, float]:
    """The task's lock key, and a TTL that outlives its hard time limit: a run
    killed at the limit (or with its worker) blocks the next one only briefly."""
    return redis_client.key("lock", task.name), float(task.time_limit) + 10.0


def clickhouse_client() -> Client:
    """A client for one run (disconnect it after): the request path's query limit
    (CLICKHOUSE_QUERY_TIMEOUT) is far too short for a task's queries."""
    return make_client(settings.CLICKHOUSE,
                       settings={"max_execution_time": math.ceil(settings.TASK_CLICKHOUSE_QUERY_TIMEOUT)})
