"""Hand-built pgoutput messages (protocol 1) for table-driven tests."""

from __future__ import annotations

import struct

from pipeline.cdc.pgoutput import PG_EPOCH_MICROS


def s(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(*values: str | None | bytes) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == b"u":
            out += b"u"
        else:
            raw = value.encode() if isinstance(value, str) else value
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def begin(final_lsn: int, unix_micros: int, xid: int) -> bytes:
    return b"B" + struct.pack(">Qqi", final_lsn, unix_micros - PG_EPOCH_MICROS, xid)


def commit(commit_lsn: int, end_lsn: int, unix_micros: int) -> bytes:
    return b"C" + struct.pack(">bQQq", 0, commit_lsn, end_lsn, unix_micros - PG_EPOCH_MICROS)


def relation(oid: int, namespace: str, name: str, identity: str, columns: list[tuple[str, int, bool]]) -> bytes:
    out = b"R" + struct.pack(">I", oid) + s(namespace) + s(name) + identity.encode() + struct.pack(">h", len(columns))
    for col_name, type_oid, is_key in columns:
        out += struct.pack(">b", 1 if is_key else 0) + s(col_name) + struct.pack(">Ii", type_oid, -1)
    return out


def insert(oid: int, *values: str | None | bytes) -> bytes:
    return b"I" + struct.pack(">I", oid) + b"N" + tuple_data(*values)


def update(oid: int, new: tuple, old: tuple | None = None, old_kind: str = "O") -> bytes:
    out = b"U" + struct.pack(">I", oid)
    if old is not None:
        out += old_kind.encode() + tuple_data(*old)
    return out + b"N" + tuple_data(*new)


def delete(oid: int, old: tuple, old_kind: str = "O") -> bytes:
    return b"D" + struct.pack(">I", oid) + old_kind.encode() + tuple_data(*old)


def truncate(oids: list[int], options: int = 0) -> bytes:
    return b"T" + struct.pack(">ib", len(oids), options) + b"".join(struct.pack(">I", o) for o in oids)


def type_message(oid: int, namespace: str, name: str) -> bytes:
    return b"Y" + struct.pack(">I", oid) + s(namespace) + s(name)


def origin(lsn: int, name: str) -> bytes:
    return b"O" + struct.pack(">Q", lsn) + s(name)


def logical_message(lsn: int, prefix: str, content: bytes, transactional: bool = True) -> bytes:
    return (
        b"M"
        + struct.pack(">bQ", 1 if transactional else 0, lsn)
        + s(prefix)
        + struct.pack(">i", len(content))
        + content
    )
