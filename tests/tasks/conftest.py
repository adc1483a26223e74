"""A real Celery worker (`celery -A nova worker`) for the periodic-task tests.

One worker per test session, in the session's namespace: it consumes the
namespace's queue (CELERY_TASK_DEFAULT_QUEUE from tests/settings.py), reads the
test database (DATABASE_URL names it), the session's ClickHouse database and
Redis prefix. Tests send tasks with `.delay()` and wait, bounded, for the effect.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.pipeline.cdc.conftest import wait_until  # also imported from here by the task tests

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_SECONDS = 60.0


def lag_slot() -> str:
    """The replication slot the worker's report_pipeline_lag measures (the lag test creates it)."""
    return f"{settings.REDIS_KEY_PREFIX}_lag"


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.process.poll() is None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # warm shutdown: the worker finishes its task and stops its pool child
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        # the worker and its pool child are alone in the session we started them in
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, clickhouse_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    db: Mapping[str, Any] = settings.DATABASES["default"]  # the test database, once django_db_setup made it
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CDC_SLOT_NAME": lag_slot(),
        "PYTHONUNBUFFERED": "1",
        "CELERY_WORKER_METRICS_PORT": "0",  # beside `make run`'s worker and other sessions
    }
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "nova",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
                "--hostname",
                f"test-{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log_path)
    try:
        wait_until(
            lambda: not worker.alive() or " ready." in log_path.read_text(errors="replace"),
            READY_TIMEOUT_SECONDS,
            message="celery worker ready",
        )
        if not worker.alive():
            pytest.fail(f"the celery worker exited with {process.returncode}:\n{worker.log()}", pytrace=False)
        yield worker
    finally:
        _stop(process)
