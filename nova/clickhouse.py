"""The ClickHouse client factory shared by web, consumers and commands.

clickhouse-driver's Client connects lazily on the first query and reconnects
after a broken connection, so a Client is cheap to build and safe to keep.
A Client is not thread-safe: build one per thread (web) or per consumer.
"""

from __future__ import annotations

from clickhouse_driver import Client, errors
from clickhouse_driver.errors import ErrorCodes

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


# What a column can hold on every server Nova supports (18.16 and newer):
# DateTime is seconds since 1970 in a UInt32, and 18.16's date tables end in 2105.
DATETIME_MIN_SECONDS = 0
DATETIME_MAX_SECONDS = 4_291_747_199  # 2105-12-31T23:59:59Z
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Server errors about the rows themselves: sending the same rows again fails the
# same way. Everything else (network, timeouts, TOO_MANY_PARTS, memory, a server
# going down) is an outage and is retried.
_DATA_ERROR_CODES = frozenset(
    {
        ErrorCodes.CANNOT_PARSE_TEXT,
        ErrorCodes.CANNOT_PARSE_QUOTED_STRING,
        ErrorCodes.CANNOT_PARSE_DATE,
        ErrorCodes.CANNOT_PARSE_DATETIME,
        ErrorCodes.CANNOT_PARSE_NUMBER,
        ErrorCodes.CANNOT_PARSE_UUID,
        ErrorCodes.TYPE_MISMATCH,
        ErrorCodes.CANNOT_CONVERT_TYPE,
        ErrorCodes.ARGUMENT_OUT_OF_BOUND,
        ErrorCodes.VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
        ErrorCodes.CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN,
        ErrorCodes.INCORRECT_DATA,
        ErrorCodes.TOO_LARGE_STRING_SIZE,
        ErrorCodes.CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING,
    }
)


def is_data_error(exc: BaseException) -> bool:
    """Did ClickHouse (or the driver, while encoding the block) refuse these rows for what they hold?

    The driver raises TypeMismatchError and friends before anything is sent
    (e.g. a DateTime past 2106 does not fit its UInt32); the server answers
    with a ServerException whose code names a parse or type error.
    """
    if isinstance(
        exc,
        (
            errors.TypeMismatchError,
            errors.CannotParseUuidError,
            errors.CannotParseDomainError,
            errors.TooLargeStringSize,
        ),
    ):
        return True
    return isinstance(exc, errors.ServerException) and exc.code in _DATA_ERROR_CODES
