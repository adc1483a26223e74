"""The ClickHouse client factory shared by web, consumers and commands.

clickhouse-driver's Client connects lazily on the first query and reconnects
after a broken connection, so a Client is cheap to build and safe to keep.
A Client is not thread-safe: build one per thread (web) or per consumer.
"""

from __future__ import annotations

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
        settings={**cluster_settings(config), **(settings or {})},
    )


def cluster_settings(config: ClickHouseConfig) -> dict[str, object]:
    """On a cluster, an insert into a Distributed table returns once every shard has
    its rows (not once they are queued on this server's disk): a writer that saw it
    succeed may move on, and one that saw it fail retries the identical block, which
    the Replicated tables deduplicate (docs/operations/scaling.md)."""
    return {"insert_distributed_sync": 1} if config.cluster else {}


def parse_version(text: str) -> tuple[int, ...]:
    """'18.16.1' -> (18, 16, 1); '24.8.4.13' -> (24, 8, 4, 13)."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def server_version(client: Client) -> tuple[int, ...]:
    return parse_version(client.execute("SELECT version()")[0][0])
