"""Feed cursors: opaque, signed, expiring page positions. Pure: the key and
`now` come in, no settings or I/O.

A cursor is where the next page starts, in one of three kinds:
- `ranked`: an index into one ranked snapshot (its id is in the cursor, so a
  refresh that builds a new snapshot does not move the pages of the old one);
- `backfill`: after the snapshot, older posts of followed authors by
  (created_at, id) keyset, minus the posts the snapshot already served;
- `chronological`: the Postgres fallback's keyset.

Format: urlsafe base64 of compact JSON, a dot, a truncated HMAC-SHA256 of it.
A client can read but not change it; a cursor is bound to the user it was
issued to, so one user's cursor is useless to another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, field

RANKED = "ranked"
BACKFILL = "backfill"
CHRONOLOGICAL = "chronological"
_KINDS = {"r": RANKED, "b": BACKFILL, "c": CHRONOLOGICAL}
_CODES = {kind: code for code, kind in _KINDS.items()}
_VERSION = 1
_MAC_BYTES = 16


class CursorError(ValueError):
    """The cursor cannot be used; the message says why, for the 400 body."""


@dataclass(frozen=True)
class Cursor:
    kind: str
    user_id: int
    # ranked: the snapshot and the index of the next entry in it
    snapshot_id: str = ""
    offset: int = 0
    # backfill / chronological: the last post served, (created_at µs, id)
    before_us: int = 0
    before_id: int = 0
    # posts already served that the rest of the feed must skip: on a ranked
    # cursor the fresh posts of the first page, on a backfill cursor those and
    # the snapshot's (never served twice)
    exclude: tuple[int, ...] = field(default=())
    # the rank of the first item of the next page
    next_rank: int = 1


def encode(cursor: Cursor, key: bytes, now_s: int) -> str:
    body: dict[str, object] = {
        "v": _VERSION,
        "k": _CODES[cursor.kind],
        "u": cursor.user_id,
        "t": now_s,
        "n": cursor.next_rank,
    }
    if cursor.kind == RANKED:
        body.update(s=cursor.snapshot_id, o=cursor.offset)
    else:
        body.update(b=cursor.before_us, i=cursor.before_id)
    if cursor.exclude:
        body["x"] = list(cursor.exclude)
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_mac(payload, key))}"


def decode(token: str, key: bytes, user_id: int, now_s: int, max_age_s: int) -> Cursor:
    """The cursor in `token`, or CursorError saying what is wrong with it."""
    payload, dot, mac = token.partition(".")
    if not dot or not payload or not mac:
        raise CursorError("Malformed cursor: use the next_cursor value of a feed response, unchanged.")
    try:
        given_mac = _unb64(mac)
    except (binascii.Error, ValueError):
        raise CursorError("Malformed cursor: use the next_cursor value of a feed response, unchanged.") from None
    if not hmac.compare_digest(given_mac, _mac(payload, key)):
        raise CursorError("Invalid cursor: it was altered or not issued by this server.")
    try:
        body = json.loads(_unb64(payload))
        cursor = _from_body(body)
        issued_s = int(body["t"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        # signed by us but unreadable: an old format; same advice as for expiry
        raise CursorError("Unsupported cursor: start again from the first page.") from None
    if cursor.user_id != user_id:
        raise CursorError("Invalid cursor: it was issued to another user.")
    if now_s - issued_s > max_age_s:
        raise CursorError("Expired cursor: start again from the first page.")
    return cursor


def _from_body(body: object) -> Cursor:
    if not isinstance(body, dict) or body.get("v") != _VERSION:
        raise ValueError("version")
    kind = _KINDS[str(body["k"])]
    exclude = body.get("x", [])
    if not isinstance(exclude, list):
        raise ValueError("exclude")
    common = {
        "kind": kind,
        "user_id": _int(body["u"]),
        "next_rank": _int(body["n"]),
        "exclude": tuple(_int(post_id) for post_id in exclude),
    }
    if kind == RANKED:
        return Cursor(**common, snapshot_id=str(body["s"]), offset=_int(body["o"]))  # type: ignore[arg-type]
    return Cursor(**common, before_us=_int(body["b"]), before_id=_int(body["i"]))  # type: ignore[arg-type]


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("not a non-negative integer")
    return value


def _mac(payload: str, key: bytes) -> bytes:
    return hmac.new(key, b"nova.feed.cursor:" + payload.encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
