"""Process plumbing for the CDC relay: SIGTERM flag, Postgres connection."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import psycopg


class StopFlag:
    """Set by SIGTERM/SIGINT; long-running loops check it between steps."""

    def __init__(self) -> None:
        self.stopped = False

    def install(self) -> StopFlag:
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)
        return self

    def _set(self, signum: int, frame: object) -> None:
        self.stopped = True

    def __call__(self) -> bool:
        return self.stopped


def postgres_connector(db: dict[str, Any]) -> Callable[[], psycopg.Connection[Any]]:
    """A connect() for the Django database settings `db` (settings.DATABASES['default'])."""

    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            dbname=db["NAME"],
            user=db["USER"] or None,
            password=db["PASSWORD"] or None,
            connect_timeout=int(db["OPTIONS"].get("connect_timeout", 5)),
            application_name="nova-cdc-relay",
        )

    return connect
