"""A social world held in memory, and its writer into the ClickHouse tables the
ranker reads: the CDC replica tables in the rows the CDC consumer writes, and
`events` (whose materialized views fill the aggregates as in production).

Used by the offline evaluation (`manage.py evaluate_ranking`), the ranking
benchmark and the tests that build a known world. Production data never goes
through here: it arrives by CDC and the events consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ranking.candidates import QueryRunner
from ranking.scoring import epoch_us

INSERT_CHUNK = 50_000


@dataclass(frozen=True)
class WUser:
    id: int
    active: bool = True


@dataclass(frozen=True)
class WPost:
    id: int
    author_id: int
    created_at: datetime
    deleted: bool = False


@dataclass(frozen=True)
class WRelation:
    """A follow (user → other), like or comment (user → post id), or mute (user → author)."""

    id: int
    user_id: int
    target_id: int
    created_at: datetime


@dataclass(frozen=True)
class WEvent:
    user_id: int
    post_id: int
    author_id: int
    event_type: str
    ts: datetime
    dwell_ms: int = 0


@dataclass
class World:
    users: list[WUser] = field(default_factory=list)
    posts: list[WPost] = field(default_factory=list)
    follows: list[WRelation] = field(default_factory=list)
    likes: list[WRelation] = field(default_factory=list)
    comments: list[WRelation] = field(default_factory=list)
    mutes: list[WRelation] = field(default_factory=list)
    events: list[WEvent] = field(default_factory=list)


def _chunks(rows: Iterable[Any], size: int = INSERT_CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _insert(client: Any, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    for chunk in _chunks(rows):
        client.execute(sql, chunk)


def _naive(moment: datetime) -> datetime:
    # clickhouse-driver treats a naive datetime as UTC for a DateTime('UTC') column
    return moment.astimezone(UTC).replace(tzinfo=None)


def write_world(client: QueryRunner, world: World, *, version: int = 1) -> None:
    """Insert `world` as CDC rows (version `version`, not deleted) and raw events."""
    _insert(
        client,
        "INSERT INTO users (id, username, display_name, date_joined, date_joined_us, is_active, _deleted, "
        "_version) VALUES",
        (
            (
                u.id,
                f"user{u.id}",
                "",
                datetime(2020, 1, 1),
                epoch_us(datetime(2020, 1, 1, tzinfo=UTC)),
                int(u.active),
                0,
                version,
            )
            for u in world.users
        ),
    )
    _insert(
        client,
        "INSERT INTO posts (id, author_id, body, media_url, created_at, created_at_us, updated_at, "
        "updated_at_us, deleted_at, deleted_at_us, _deleted, _version) VALUES",
        (
            (
                p.id,
                p.author_id,
                "",
                "",
                _naive(p.created_at),
                epoch_us(p.created_at),
                _naive(p.created_at),
                epoch_us(p.created_at),
                _naive(p.created_at) if p.deleted else None,
                epoch_us(p.created_at) if p.deleted else None,
                0,
                version,
            )
            for p in world.posts
        ),
    )
    for table, columns, relations in (
        ("follows", "follower_id, followee_id", world.follows),
        ("likes", "user_id, post_id", world.likes),
        ("mutes", "user_id, muted_id", world.mutes),
    ):
        _insert(
            client,
            f"INSERT INTO {table} (id, {columns}, created_at, created_at_us, _deleted, _version) VALUES",
            (
                (r.id, r.user_id, r.target_id, _naive(r.created_at), epoch_us(r.created_at), 0, version)
                for r in relations
            ),
        )
    _insert(
        client,
        "INSERT INTO comments (id, user_id, post_id, body, created_at, created_at_us, _deleted, _version) VALUES",
        (
            (r.id, r.user_id, r.target_id, "", _naive(r.created_at), epoch_us(r.created_at), 0, version)
            for r in world.comments
        ),
    )
    _insert(
        client,
        "INSERT INTO events (event_id, user_id, post_id, author_id, event_type, ts, received_at, "
        "received_at_ms, dwell_ms, position, surface, _topic, _partition, _offset, _generation) VALUES",
        (
            (
                uuid.uuid4(),
                e.user_id,
                e.post_id,
                e.author_id,
                e.event_type,
                _naive(e.ts),
                _naive(e.ts),
                epoch_us(e.ts) // 1000,
                e.dwell_ms,
                -1,
                "world",
                "world",
                0,
                0,
                0,
            )
            for e in world.events
        ),
    )


def delete_relations(client: QueryRunner, table: str, relations: Iterable[WRelation], *, version: int = 2) -> None:
    """Deletes of follows, likes, comments or mutes (an unfollow, an unlike), as the
    CDC consumer writes them: the whole old row (REPLICA IDENTITY FULL), _deleted = 1."""
    columns = {
        "follows": "follower_id, followee_id",
        "likes": "user_id, post_id",
        "comments": "user_id, post_id",
        "mutes": "user_id, muted_id",
    }[table]
    _insert(
        client,
        f"INSERT INTO {table} (id, {columns}, created_at, created_at_us, _deleted, _version) VALUES",
        ((r.id, r.user_id, r.target_id, _naive(r.created_at), epoch_us(r.created_at), 1, version) for r in relations),
    )
