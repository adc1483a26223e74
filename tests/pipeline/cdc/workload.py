"""Random social-graph changes for CDC fault-injection tests and benchmarks, and
the row-for-row comparison of Postgres with the ClickHouse replicas."""

from __future__ import annotations

import random
from typing import Any

import psycopg

from pipeline.cdc.replica import REPLICA_TABLES


class RandomChanges:
    """Applies random inserts/updates/deletes to all six tables; counts row changes."""

    def __init__(self, conn: psycopg.Connection[Any], rng: random.Random) -> None:
        self.conn = conn
        self.rng = rng
        self.changes = 0
        self._serial = 0

    def _ids(self, table: str, limit: int = 50) -> list[int]:
        return [r[0] for r in self.conn.execute(f"SELECT id FROM {table} ORDER BY random() LIMIT {limit}").fetchall()]

    def _user(self) -> None:
        self._serial += 1
        self.conn.execute(
            "INSERT INTO users (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined, display_name, bio)"
            " VALUES ('!', false, %s, '', '', %s, false, true, now(), %s, '')",
            (
                f"u{self._serial}_{self.rng.getrandbits(40):x}",
                f"u{self._serial}@secret.example",
                f"User {self._serial}",
            ),
        )

    def step(self) -> None:
        """One transaction of 1-5 random changes."""
        with self.conn.transaction():
            for _ in range(self.rng.randint(1, 5)):
                self._one()

    def _one(self) -> None:
        rng, ex = self.rng, self.conn.execute
        users = self._ids("users", 20)
        if len(users) < 5:
            self._user()
            self.changes += 1
            return
        posts = self._ids("posts", 20)
        roll = rng.random()
        if roll < 0.08:
            self._user()
        elif roll < 0.14:
            ex(
                "UPDATE users SET display_name = %s, is_active = %s WHERE id = %s",
                (f"name {rng.random():.6f}", rng.random() < 0.9, rng.choice(users)),
            )
        elif roll < 0.34 or not posts:
            ex(
                "INSERT INTO posts (author_id, body, media_url, created_at, updated_at)"
                " VALUES (%s, %s, '', now(), now())",
                (rng.choice(users), "body " + "x" * rng.randint(0, 300)),
            )
        elif roll < 0.44:
            ex(
                "UPDATE posts SET body = %s, updated_at = now() WHERE id = %s",
                (f"edit {rng.random()}", rng.choice(posts)),
            )
        elif roll < 0.48:
            ex("UPDATE posts SET deleted_at = now() WHERE id = %s", (rng.choice(posts),))
        elif roll < 0.51:
            # cascades by hand: likes/comments reference the post
            post = rng.choice(posts)
            self.changes += ex("DELETE FROM likes WHERE post_id = %s", (post,)).rowcount
            self.changes += ex("DELETE FROM comments WHERE post_id = %s", (post,)).rowcount
            ex("DELETE FROM posts WHERE id = %s", (post,))
        elif roll < 0.63:
            a, b = rng.sample(users, 2)
            ex(
                "INSERT INTO follows (follower_id, followee_id, created_at)"
                " VALUES (%s, %s, now()) ON CONFLICT DO NOTHING",
                (a, b),
            )
        elif roll < 0.68:
            ex("DELETE FROM follows WHERE id = (SELECT id FROM follows ORDER BY random() LIMIT 1)")
        elif roll < 0.80:
            ex(
                "INSERT INTO likes (user_id, post_id, created_at) VALUES (%s, %s, now()) ON CONFLICT DO NOTHING",
                (rng.choice(users), rng.choice(posts)),
            )
        elif roll < 0.84:
            ex("DELETE FROM likes WHERE id = (SELECT id FROM likes ORDER BY random() LIMIT 1)")
        elif roll < 0.93:
            ex(
                "INSERT INTO comments (user_id, post_id, body, created_at) VALUES (%s, %s, %s, now())",
                (rng.choice(users), rng.choice(posts), f"c {rng.random()}"),
            )
        elif roll < 0.97:
            a, b = rng.sample(users, 2)
            ex(
                "INSERT INTO mutes (user_id, muted_id, created_at) VALUES (%s, %s, now()) ON CONFLICT DO NOTHING",
                (a, b),
            )
        else:
            ex("DELETE FROM mutes WHERE id = (SELECT id FROM mutes ORDER BY random() LIMIT 1)")
        self.changes += 1


def _pg_select(table: str) -> str:
    parts = []
    for name, kind in REPLICA_TABLES[table]:
        if kind.startswith("ts"):
            parts.append(f"(extract(epoch from {name}) * 1000000)::bigint")
        elif kind == "bool":
            parts.append(f"{name}::int")
        else:
            parts.append(name)
    return f"SELECT {', '.join(parts)} FROM {table}"


def _ch_select(table: str) -> str:
    parts = [f"{name}_us" if kind.startswith("ts") else name for name, kind in REPLICA_TABLES[table]]
    return f"SELECT {', '.join(parts)} FROM `{table}` FINAL WHERE _deleted = 0"


def _rows(pg: psycopg.Connection[Any], ch: Any, table: str) -> tuple[set[tuple], set[tuple]]:
    """The table's rows in Postgres and in the ClickHouse replica, in the same form."""
    pg_rows = {tuple(row) for row in pg.execute(_pg_select(table)).fetchall()}
    return pg_rows, {tuple(row) for row in ch.execute(_ch_select(table))}


def missing_in_clickhouse(pg: psycopg.Connection[Any], ch: Any) -> dict[str, set[tuple]]:
    """Per table, the rows Postgres has and the replica does not (tables without any left out)."""
    missing = {}
    for table in REPLICA_TABLES:
        pg_rows, ch_rows = _rows(pg, ch, table)
        if pg_rows - ch_rows:
            missing[table] = pg_rows - ch_rows
    return missing


def compare(pg: psycopg.Connection[Any], ch: Any) -> dict[str, dict[str, int]]:
    """Per table, rows only in Postgres / only in ClickHouse; {} when equal row for row."""
    diffs: dict[str, dict[str, int]] = {}
    for table in REPLICA_TABLES:
        pg_rows, ch_rows = _rows(pg, ch, table)
        if pg_rows != ch_rows:
            diffs[table] = {
                "only_postgres": len(pg_rows - ch_rows),
                "only_clickhouse": len(ch_rows - pg_rows),
                "postgres": len(pg_rows),
            }
    return diffs
