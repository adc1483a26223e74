"""A QueryRunner over chDB (PyPI `chdb`: ClickHouse in-process, a current release),
so tests can run the project's SQL on a current ClickHouse beside the local 18.16.

Queries are rendered exactly as production renders them: clickhouse-driver's
client-side parameter substitution (`Client.substitute_params`, the driver's
own escaping), and for `execute("INSERT INTO t (...) VALUES", rows)` each row
through the driver's `escape_param` as a VALUES literal (datetimes as
'YYYY-MM-DD hh:mm:ss', None as NULL, UUIDs as strings). Results come back as
lists of tuples with the Python types clickhouse-driver returns (int, float,
str, naive datetime, date, UUID, list for arrays, tuple for tuples).
"""

from __future__ import annotations

import ipaddress
import json
import re
import tempfile
import types
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from clickhouse_driver import Client
from clickhouse_driver.connection import ServerInfo
from clickhouse_driver.util.escape import escape_param

if TYPE_CHECKING:
    from chdb.session import Session

CHDB_MISSING = (
    "chdb is not installed: the ClickHouse portability test needs it "
    "(pip install -r requirements-test.txt, which pins chdb)"
)

_INSERT_VALUES = re.compile(r"^\s*INSERT\s+INTO\s.+\bVALUES\s*$", re.IGNORECASE | re.DOTALL)


class ChdbRunner:
    """`execute(query, params)` like clickhouse_driver.Client.execute, on a chdb session.

    The session lives in a temporary directory (removed by close()) and works in
    `database`, created at start.
    """

    def __init__(self, database: str = "nova_port", *, timezone: str = "UTC") -> None:
        try:
            from chdb.session import Session
        except ImportError as exc:  # CI installs chdb: a missing one is a failure, not a skip
            raise ImportError(CHDB_MISSING) from exc
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
            raise ValueError(f"bad database name {database!r}")
        self.database = database
        self._dir = tempfile.TemporaryDirectory(prefix="nova-chdb-")
        self._session: Session | None = Session(self._dir.name)
        self._session.query(f"SET session_timezone = '{timezone}'")
        # NaN and infinities as "nan"/"inf" rather than null; 64-bit integers as numbers
        self._session.query("SET output_format_json_quote_denormals = 1")
        self._session.query("SET output_format_json_quote_64bit_integers = 0")
        self._session.query(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        self._session.query(f"USE `{database}`")
        version, server_tz = self._query_raw("SELECT version(), timezone()")[0]
        self.version = tuple(int(part) for part in version.split(".") if part.isdigit())
        # the driver's escaping needs a context with the server's time zone (for
        # aware datetimes); this client never connects
        self._client = Client("localhost")
        self._context = self._client.connection.context
        self._context.server_info = ServerInfo(
            name="chDB",
            version_major=self.version[0],
            version_minor=self.version[1],
            version_patch=self.version[2] if len(self.version) > 2 else 0,
            revision=54468,
            timezone=server_tz,
            display_name="chdb",
            used_revision=54468,
        )

    # clickhouse_driver.Client.execute's surface, as far as the project uses it
    def execute(self, query: str, params: Any = None) -> Any:
        if isinstance(params, (list, tuple, types.GeneratorType)):
            return self._insert(query, params)
        if params is not None:
            query = self.render(query, params)
        return self._query_raw(query)

    def render(self, query: str, params: dict[str, Any]) -> str:
        """The query as clickhouse-driver would send it (client-side substitution)."""
        return self._client.substitute_params(query, params, self._context)

    def render_values(self, rows: Iterable[Sequence[Any]]) -> str:
        """Rows as a VALUES list, each row escaped by the driver as a tuple literal."""
        rendered = []
        for row in rows:
            if isinstance(row, dict):
                raise TypeError("ChdbRunner inserts rows given as sequences, not dicts")
            rendered.append(str(escape_param(tuple(row), self._context)))
        return ", ".join(rendered)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._dir.cleanup()

    def __enter__(self) -> ChdbRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _insert(self, query: str, rows: Iterable[Sequence[Any]]) -> int:
        if not _INSERT_VALUES.match(query):
            raise ValueError(f"rows are only accepted for 'INSERT INTO t (...) VALUES', got: {query[:80]!r}")
        rows = list(rows)
        if not rows:
            return 0
        self._live_session().query(f"{query.rstrip()} {self.render_values(rows)}")
        return len(rows)

    def _live_session(self) -> Session:
        if self._session is None:
            raise RuntimeError("ChdbRunner is closed")
        return self._session

    def _query_raw(self, query: str) -> list[tuple[Any, ...]]:
        result = self._live_session().query(query, "JSONCompact")
        text = result.bytes()
        if not text.strip():  # DDL, INSERT, SET: no result set
            return []
        payload = json.loads(text)
        converters = [converter(column["type"]) for column in payload["meta"]]
        return [
            tuple(convert(value) for convert, value in zip(converters, row, strict=True)) for row in payload["data"]
        ]


def _split_args(text: str) -> list[str]:
    """'UInt8, Array(Tuple(a String, b Int8))' -> ['UInt8', 'Array(Tuple(a String, b Int8))']."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, char in enumerate(text):
        if char == "'" and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [part for part in parts if part]


def _tuple_element_type(arg: str) -> str:
    # a named tuple element is "name Type"; a type never starts with a lower-case word then a space
    match = re.match(r"^[a-z_][A-Za-z0-9_]*\s+(.+)$", arg, re.DOTALL)
    return match.group(1) if match else arg


def _float(value: Any) -> float:
    return float(value)  # also "nan", "inf", "-inf"


def _datetime(value: str) -> datetime:
    # clickhouse-driver returns naive datetimes, wall time in the column's time zone
    return datetime.fromisoformat(value)


def _identity(value: Any) -> Any:
    return value


def converter(ch_type: str) -> Callable[[Any], Any]:
    """A function from a JSONCompact cell of `ch_type` to clickhouse-driver's Python value."""
    ch_type = ch_type.strip()
    name, _, rest = ch_type.partition("(")
    args = rest[:-1] if rest.endswith(")") else ""
    if name == "Nullable":
        inner = converter(args)
        return lambda value: None if value is None else inner(value)
    if name in ("LowCardinality", "SimpleAggregateFunction"):
        return converter(_split_args(args)[-1])
    if name == "Array":
        inner = converter(args)
        return lambda value: [inner(item) for item in value]
    if name == "Tuple":
        inners = [converter(_tuple_element_type(arg)) for arg in _split_args(args)]
        return lambda value: tuple(
            convert(item)
            for convert, item in zip(inners, value.values() if isinstance(value, dict) else value, strict=True)
        )
    if name == "Map":
        key, val = (converter(arg) for arg in _split_args(args))
        return lambda value: {key(k): val(v) for k, v in value.items()}
    if re.fullmatch(r"U?Int\d+", name):
        return int
    if re.fullmatch(r"(BFloat|Float)\d+", name):
        return _float
    if name.startswith("Decimal"):
        return lambda value: Decimal(str(value))
    if name == "Bool":
        return bool
    if name in ("String", "FixedString") or name.startswith("Enum"):
        return str
    if name == "UUID":
        return uuid.UUID
    if name in ("Date", "Date32"):
        return date.fromisoformat
    if name in ("DateTime", "DateTime64"):
        return _datetime
    if name == "IPv4":
        return ipaddress.IPv4Address
    if name == "IPv6":
        return ipaddress.IPv6Address
    if name == "Nothing":
        return lambda value: None
    return _identity
