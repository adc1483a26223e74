"""A pure parser for PostgreSQL's `pgoutput` logical replication messages (protocol 1).

The relay reads them through SQL (`pg_logical_slot_peek_binary_changes`), so each
row's `data` is one message. Layout (PostgreSQL docs, "Logical Replication Message
Formats"): big-endian integers, NUL-terminated strings, and TupleData where each
column is 'n' (NULL), 'u' (unchanged TOASTed value, not sent) or 't' (text form).

Values stay in their text form here; `decode_value` turns them into JSON the way
Debezium's PostgreSQL connector does, by type OID. The text form of timestamptz,
date and float depends on the decoding session's TimeZone/DateStyle/
extra_float_digits: the relay pins them (UTC, ISO, 3) on its connection.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

# PostgreSQL epoch (2000-01-01) in microseconds after the Unix epoch.
PG_EPOCH_MICROS = 946_684_800_000_000


class ProtocolError(ValueError):
    """The bytes are not a pgoutput message we understand."""


class Unchanged:
    """An unchanged TOASTed column: Postgres did not send its value."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST = Unchanged()
TupleValue = str | None | Unchanged


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_ts_micros: int  # Unix epoch microseconds
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts_micros: int


@dataclass(frozen=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.is_key)


@dataclass(frozen=True)
class TypeMessage:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: tuple[TupleValue, ...]


@dataclass(frozen=True)
class Update:
    relation_oid: int
    new: tuple[TupleValue, ...]
    # the old row: with REPLICA IDENTITY FULL ('O') the whole row, with a key-only
    # identity ('K') only the key columns, None when the key did not change
    old: tuple[TupleValue, ...] | None = None
    old_kind: str | None = None


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: tuple[TupleValue, ...]
    old_kind: str


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes = field(repr=False)


Message = Begin | Commit | Origin | Relation | TypeMessage | Insert | Update | Delete | Truncate | LogicalMessage


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError(
                f"message truncated: wanted {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> str:
        return chr(self._take(1)[0])

    def int8(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def uint32(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def uint64(self) -> int:
        return struct.unpack(">Q", self._take(8))[0]

    def string(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError(f"unterminated string at offset {self.pos}")
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def tuple_data(self) -> tuple[TupleValue, ...]:
        count = self.int16()
        values: list[TupleValue] = []
        for _ in range(count):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED_TOAST)
            elif kind == "t":
                values.append(self._take(self.int32()).decode("utf-8"))
            elif kind == "b":
                # only sent with the `binary` option, which the relay never asks for
                raise ProtocolError("binary tuple values are not supported (do not pass binary 'true')")
            else:
                raise ProtocolError(f"unknown tuple value kind {kind!r}")
        return tuple(values)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{len(self.data) - self.pos} trailing bytes")


def pg_timestamp_to_unix_micros(pg_micros: int) -> int:
    return pg_micros + PG_EPOCH_MICROS


def parse_message(data: bytes) -> Message:
    """One pgoutput message (protocol version 1, no streaming) -> a dataclass."""
    if not data:
        raise ProtocolError("empty message")
    r = _Reader(bytes(data))
    tag = r.byte()
    message: Message
    if tag == "B":
        message = Begin(final_lsn=r.uint64(), commit_ts_micros=pg_timestamp_to_unix_micros(r.int64()), xid=r.uint32())
    elif tag == "C":
        message = Commit(
            flags=r.int8(),
            commit_lsn=r.uint64(),
            end_lsn=r.uint64(),
            commit_ts_micros=pg_timestamp_to_unix_micros(r.int64()),
        )
    elif tag == "O":
        message = Origin(commit_lsn=r.uint64(), name=r.string())
    elif tag == "R":
        oid, namespace, name, identity = r.uint32(), r.string(), r.string(), r.byte()
        columns = []
        for _ in range(r.int16()):
            flags = r.int8()
            columns.append(
                Column(name=r.string(), type_oid=r.uint32(), type_modifier=r.int32(), is_key=bool(flags & 1))
            )
        message = Relation(oid=oid, namespace=namespace, name=name, replica_identity=identity, columns=tuple(columns))
    elif tag == "Y":
        message = TypeMessage(oid=r.uint32(), namespace=r.string(), name=r.string())
    elif tag == "I":
        oid = r.uint32()
        if (kind := r.byte()) != "N":
            raise ProtocolError(f"insert: expected 'N', got {kind!r}")
        message = Insert(relation_oid=oid, new=r.tuple_data())
    elif tag == "U":
        oid = r.uint32()
        kind = r.byte()
        old = old_kind = None
        if kind in ("K", "O"):
            old, old_kind = r.tuple_data(), kind
            kind = r.byte()
        if kind != "N":
            raise ProtocolError(f"update: expected 'N', got {kind!r}")
        message = Update(relation_oid=oid, new=r.tuple_data(), old=old, old_kind=old_kind)
    elif tag == "D":
        oid = r.uint32()
        kind = r.byte()
        if kind not in ("K", "O"):
            raise ProtocolError(f"delete: expected 'K' or 'O', got {kind!r}")
        message = Delete(relation_oid=oid, old=r.tuple_data(), old_kind=kind)
    elif tag == "T":
        count = r.int32()
        options = r.int8()
        message = Truncate(
            relation_oids=tuple(r.uint32() for _ in range(count)),
            cascade=bool(options & 1),
            restart_identity=bool(options & 2),
        )
    elif tag == "M":
        flags = r.int8()
        lsn = r.uint64()
        prefix = r.string()
        message = LogicalMessage(transactional=bool(flags & 1), lsn=lsn, prefix=prefix, content=r._take(r.int32()))
    else:
        raise ProtocolError(f"unknown pgoutput message tag {tag!r}")
    r.done()
    return message


# ---------------------------------------------------------------- values -> JSON
# Type OIDs from pg_type.dat; they are fixed for built-in types.
BOOL, BYTEA, CHAR, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 18, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIME = 700, 701, 1042, 1043, 1082, 1083
TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID, JSONB = 1114, 1184, 1700, 2950, 3802
_INTEGERS = {INT2, INT4, INT8, OID}
_EPOCH_DATE = date(1970, 1, 1)


def _iso_utc(text: str) -> str:
    """'2024-05-01 10:00:00.5+00' (ISO DateStyle, TimeZone UTC) -> '2024-05-01T10:00:00.500000Z'.

    Debezium's io.debezium.time.ZonedTimestamp is an ISO-8601 string; we always
    print six fractional digits so the string sorts and compares exactly.
    """
    if text in ("infinity", "-infinity"):
        return text
    if text.endswith(" BC"):
        raise ProtocolError(f"BC timestamps are not supported: {text!r}")
    # Postgres prints offsets as "+00" or "+05:30"; Python 3.11 parses both
    parsed = datetime.fromisoformat(text)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _timestamp_micros(text: str) -> int:
    """timestamp without time zone -> Debezium io.debezium.time.MicroTimestamp (epoch micros)."""
    parsed = datetime.fromisoformat(text).replace(tzinfo=UTC)
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time_micros(text: str) -> int:
    hours, minutes, seconds = text.split(":")
    whole, _, frac = seconds.partition(".")
    return ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1_000_000 + int((frac + "000000")[:6])


def _float(text: str) -> float | str:
    # JSON has no NaN/Infinity; Debezium's JSON converter prints them as strings too
    value = float(text)
    return text if value != value or value in (float("inf"), float("-inf")) else value


def decode_value(type_oid: int, text: str | None) -> object:
    """A column's text form -> its JSON value, following Debezium's default mappings:

    integers -> number; bool -> true/false; float -> number; numeric -> string
    (decimal.handling.mode=string: exact, no float rounding); timestamptz -> ISO-8601
    UTC string (ZonedTimestamp); timestamp -> epoch micros (MicroTimestamp);
    date -> days since epoch (Date); time -> micros since midnight (MicroTime);
    bytea -> base64 string; json/jsonb/uuid/text/varchar/anything else -> string.
    """
    if text is None:
        return None
    if type_oid in _INTEGERS:
        return int(text)
    if type_oid == BOOL:
        return text == "t"
    if type_oid in (FLOAT4, FLOAT8):
        return _float(text)
    if type_oid == TIMESTAMPTZ:
        return _iso_utc(text)
    if type_oid == TIMESTAMP:
        return text if text in ("infinity", "-infinity") else _timestamp_micros(text)
    if type_oid == DATE:
        return text if text in ("infinity", "-infinity") else (date.fromisoformat(text) - _EPOCH_DATE).days
    if type_oid == TIME:
        return _time_micros(text)
    if type_oid == BYTEA:
        if not text.startswith("\\x"):
            raise ProtocolError("bytea must use bytea_output=hex")
        return base64.b64encode(bytes.fromhex(text[2:])).decode("ascii")
    return text
