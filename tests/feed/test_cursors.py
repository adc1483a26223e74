"""feed/cursors.py: pure, no I/O."""

from __future__ import annotations

import pytest

from feed.cursors import BACKFILL, CHRONOLOGICAL, RANKED, Cursor, CursorError, decode, encode

KEY = b"k" * 32
NOW = 1_800_000_000
DAY = 86_400


@pytest.mark.parametrize(
    "cursor",
    [
        Cursor(RANKED, 7, snapshot_id="a1b2c3", offset=20, next_rank=21),
        Cursor(RANKED, 7, snapshot_id="a1b2c3", offset=0, exclude=(5, 9), next_rank=3),
        Cursor(BACKFILL, 7, before_us=1_700_000_000_123_456, before_id=42, exclude=(1, 2, 3), next_rank=51),
        Cursor(BACKFILL, 7, next_rank=51),
        Cursor(CHRONOLOGICAL, 2**63 - 1, before_us=1, before_id=2**63 - 1, next_rank=1),
    ],
)
def test_round_trip(cursor):
    token = encode(cursor, KEY, NOW)
    assert decode(token, KEY, cursor.user_id, NOW + 10, DAY) == cursor
    assert "=" not in token and "/" not in token and "+" not in token  # safe in a query string unescaped


@pytest.mark.parametrize(
    "token, message",
    [
        ("", "Malformed cursor"),
        ("abc", "Malformed cursor"),
        (".", "Malformed cursor"),
        ("abc.", "Malformed cursor"),
        (".abc", "Malformed cursor"),
        ("abc.###", "Malformed cursor"),
        ("abc.AAAAAAAAAAAAAAAAAAAAAA", "Invalid cursor: it was altered"),
    ],
)
def test_malformed_or_unsigned(token, message):
    with pytest.raises(CursorError, match=message):
        decode(token, KEY, 7, NOW, DAY)


def test_altered_payload_is_refused():
    token = encode(Cursor(RANKED, 7, snapshot_id="s", offset=20, next_rank=21), KEY, NOW)
    payload, mac = token.split(".")
    for i in range(len(payload)):
        flipped = payload[:i] + ("A" if payload[i] != "A" else "B") + payload[i + 1 :]
        with pytest.raises(CursorError):
            decode(f"{flipped}.{mac}", KEY, 7, NOW, DAY)


def test_another_key_is_refused():
    token = encode(Cursor(BACKFILL, 7), KEY, NOW)
    with pytest.raises(CursorError, match="altered or not issued by this server"):
        decode(token, b"other" * 8, 7, NOW, DAY)


def test_another_users_cursor_is_refused():
    token = encode(Cursor(BACKFILL, 7), KEY, NOW)
    with pytest.raises(CursorError, match="issued to another user"):
        decode(token, KEY, 8, NOW, DAY)


@pytest.mark.parametrize("age, expired", [(0, False), (DAY, False), (DAY + 1, True), (10 * DAY, True)])
def test_expiry(age, expired):
    token = encode(Cursor(BACKFILL, 7), KEY, NOW)
    if expired:
        with pytest.raises(CursorError, match="Expired cursor"):
            decode(token, KEY, 7, NOW + age, DAY)
    else:
        assert decode(token, KEY, 7, NOW + age, DAY).kind == BACKFILL


@pytest.mark.parametrize(
    "body",
    [
        b'{"v":2,"k":"b","u":7,"t":1800000000,"n":1,"b":0,"i":0}',  # another version
        b'{"v":1,"k":"z","u":7,"t":1800000000,"n":1,"b":0,"i":0}',  # unknown kind
        b'{"v":1,"k":"b","u":-7,"t":1800000000,"n":1,"b":0,"i":0}',  # negative
        b'{"v":1,"k":"b","u":7,"t":1800000000,"n":1,"b":0,"i":0,"x":"1,2"}',  # exclude not a list
        b'{"v":1,"k":"b","u":7,"t":1800000000,"n":true,"b":0,"i":0}',  # bool for int
        b'{"v":1,"k":"r","u":7,"t":1800000000,"n":1}',  # ranked without snapshot
        b"[1,2,3]",
        b"not json",
    ],
)
def test_signed_but_unreadable_is_unsupported(body):
    # what an old or buggy server might have signed: still a 400, never a 500
    import base64
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    mac = hmac.new(KEY, b"nova.feed.cursor:" + payload.encode(), hashlib.sha256).digest()[:16]
    token = f"{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(CursorError, match="Unsupported cursor"):
        decode(token, KEY, 7, NOW, DAY)
