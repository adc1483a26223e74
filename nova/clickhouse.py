"""The ClickHouse client factory shared by web, consumers and commands.

clickhouse-driver's Client connects lazily on the first query and reconnects
after a broken connection, so a Client is cheap to build and safe to keep.
A Client is not thread-safe: build one per thread (web) or per consumer.
"""

from __future__ import annotations

import math
import threading

from clickhouse_driver import Client

from nova.config import ClickHouseConfig


def make_client(
    config: ClickHouseConfig,
    *,
    database: str | None = None,
    timeout: float | None = None,
    settings: dict[str, object] | None = None,
) -> Client:
    """A client bound to config.database (or `database`, e.g. "default" to create it)."""
    return Client(
        host=config.host,
        port=config.port,
        database=database or config.database,
        user=config.user,
        password=config.password,
        connect_timeout=timeout or config.connect_timeout,
        send_receive_timeout=timeout or config.send_receive_timeout,
        sync_request_timeout=timeout or config.connect_timeout,
        settings=settings or {},
    )


def parse_version(text: str) -> tuple[int, ...]:
    """'18.16.1' -> (18, 16, 1); '24.8.4.13' -> (24, 8, 4, 13)."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def server_version(client: Client) -> tuple[int, ...]:
    return parse_version(client.execute("SELECT version()")[0][0])


_local = threading.local()


def thread_client(config: ClickHouseConfig) -> Client:
    """This thread's client for request-time queries (web workers, Celery tasks):
    clickhouse-driver's Client is not thread-safe, and building one per request
    would pay a TCP handshake each time. The server stops a query at
    config.query_timeout (max_execution_time), so a slow ranking fails fast."""
    client = getattr(_local, "client", None)
    if client is None or getattr(_local, "config", None) != config:
        client = make_client(config, settings={"max_execution_time": max(1, math.ceil(config.query_timeout))})
        _local.client, _local.config = client, config
    return client
